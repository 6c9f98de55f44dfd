# Staging. Apply with the image built from the commit being deployed:
#   terraform apply -var-file=envs/staging.tfvars -var worker_image_tag=$(git rev-parse HEAD)
# Account-specific ids below are placeholders: replace them with your staging account's.
environment = "staging"
name_prefix = "acme-mlops"
aws_region  = "us-east-1"
usecases    = ["flight_delay"]

# storage
quarantine_expiration_days         = 14
noncurrent_version_expiration_days = 30
force_destroy                      = true # staging buckets are rebuilt from landing replays
mlflow_artifacts_proxied           = false
allow_worker_landing_writes        = true # the `land` deployment replays reference months into landing

# secrets, by ARN only
pii_key_secret_arn         = "arn:aws:secretsmanager:us-east-1:111111111111:secret:mlops/staging/pii-key-AbCdEf"
prefect_api_key_secret_arn = "arn:aws:secretsmanager:us-east-1:111111111111:secret:mlops/staging/prefect-api-key-AbCdEf"

# servers the worker talks to
prefect_api_url     = "https://api.prefect.cloud/api/accounts/00000000-0000-0000-0000-000000000000/workspaces/00000000-0000-0000-0000-000000000001"
mlflow_tracking_uri = "https://mlflow.staging.example.internal"

# worker
worker_image_repository         = "111111111111.dkr.ecr.us-east-1.amazonaws.com/mlops-worker"
worker_image_ecr_repository_arn = "arn:aws:ecr:us-east-1:111111111111:repository/mlops-worker"
worker_image_tag                = "0000000" # overridden on the command line with the deployed commit
worker_cpu                      = 1024
worker_memory                   = 4096
worker_desired_count            = 1
log_retention_days              = 30
vpc_id                          = "vpc-0123456789abcdef0"
subnet_ids                      = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
