# Production. Apply with the image built from the commit being released:
#   terraform apply -var-file=envs/prod.tfvars -var worker_image_tag=$(git rev-parse HEAD)
# Account-specific ids below are placeholders: replace them with your production account's.
environment = "prod"
name_prefix = "acme-mlops"
aws_region  = "us-east-1"
usecases    = ["flight_delay"]

# storage
quarantine_expiration_days         = 90
noncurrent_version_expiration_days = 365
force_destroy                      = false
mlflow_artifacts_proxied           = false
allow_worker_landing_writes        = false # production landing is written by the upstream producer only
access_logs_bucket                 = "acme-prod-s3-access-logs"

# secrets, by ARN only
pii_key_secret_arn         = "arn:aws:secretsmanager:us-east-1:222222222222:secret:mlops/prod/pii-key-AbCdEf"
prefect_api_key_secret_arn = "arn:aws:secretsmanager:us-east-1:222222222222:secret:mlops/prod/prefect-api-key-AbCdEf"
secrets_kms_key_arns       = ["arn:aws:kms:us-east-1:222222222222:key/00000000-0000-0000-0000-000000000000"]

# servers the worker talks to
prefect_api_url     = "https://api.prefect.cloud/api/accounts/00000000-0000-0000-0000-000000000000/workspaces/00000000-0000-0000-0000-000000000002"
mlflow_tracking_uri = "https://mlflow.prod.example.internal"

# worker
worker_image_repository         = "222222222222.dkr.ecr.us-east-1.amazonaws.com/mlops-worker"
worker_image_ecr_repository_arn = "arn:aws:ecr:us-east-1:222222222222:repository/mlops-worker"
worker_image_tag                = "0000000" # overridden on the command line with the released commit
worker_cpu                      = 2048
worker_memory                   = 8192
worker_desired_count            = 2
log_retention_days              = 365
vpc_id                          = "vpc-0fedcba9876543210"
subnet_ids                      = ["subnet-0fedcba9876543210", "subnet-0fedcba9876543211", "subnet-0fedcba9876543212"]
