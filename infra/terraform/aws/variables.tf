# ---------------------------------------------------------------------------------------------------------------
# Where and what
# ---------------------------------------------------------------------------------------------------------------

variable "environment" {
  description = "Deployment environment; part of every resource name."
  type        = string

  validation {
    condition     = contains(["staging", "prod"], var.environment)
    error_message = "environment must be one of: staging, prod."
  }
}

variable "name_prefix" {
  description = "Prefix of every name (buckets are <name_prefix>-<environment>-landing|lake|mlflow-artifacts, so it must be globally unique enough for S3)."
  type        = string

  validation {
    # 3..38 chars keeps the longest bucket name (<prefix>-staging-mlflow-artifacts) within S3's 63
    condition = alltrue([
      can(regex("^[a-z0-9][a-z0-9-]{1,36}[a-z0-9]$", var.name_prefix)),
      !strcontains(var.name_prefix, "--"),
      !startswith(var.name_prefix, "xn-"),
      !startswith(var.name_prefix, "sthree-"),
    ])
    error_message = "name_prefix must be 3-38 characters of lowercase letters, digits and single hyphens, start and end with a letter or digit, and not start with 'xn-' or 'sthree-' (S3 bucket naming rules)."
  }
}

variable "aws_region" {
  description = "AWS region of every resource."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]$", var.aws_region))
    error_message = "aws_region must look like us-east-1 or eu-west-3."
  }
}

variable "aws_endpoint_url" {
  description = "Tests only: one endpoint (e.g. a moto server) that serves every AWS API used here. null = real AWS."
  type        = string
  default     = null

  validation {
    condition     = var.aws_endpoint_url == null || can(regex("^https?://[^/]+/?$", var.aws_endpoint_url))
    error_message = "aws_endpoint_url must be null or a base URL like http://127.0.0.1:5000."
  }
}

variable "tags" {
  description = "Extra tags for every resource (Project, Environment and ManagedBy are always set)."
  type        = map(string)
  default     = {}
}

variable "usecases" {
  description = "Use cases (config/usecases/<name>.yaml names) whose data the worker may touch: the app keeps each under <bucket>/<usecase>/."
  type        = list(string)

  validation {
    condition     = length(var.usecases) > 0 && alltrue([for u in var.usecases : can(regex("^[a-z][a-z0-9_]{0,62}$", u))])
    error_message = "usecases must list at least one name of lowercase letters, digits and underscores."
  }
}

# ---------------------------------------------------------------------------------------------------------------
# Storage
# ---------------------------------------------------------------------------------------------------------------

variable "quarantine_expiration_days" {
  description = "Days after which quarantined rows (<usecase>/scores/_quarantine/ and rejected batches <usecase>/rejected/ in the lake) expire."
  type        = number
  default     = 30

  validation {
    condition     = var.quarantine_expiration_days >= 1 && var.quarantine_expiration_days <= 365 && floor(var.quarantine_expiration_days) == var.quarantine_expiration_days
    error_message = "quarantine_expiration_days must be a whole number from 1 to 365."
  }
}

variable "noncurrent_version_expiration_days" {
  description = "Days after which overwritten or deleted object versions are removed, in every bucket."
  type        = number
  default     = 90

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1 && var.noncurrent_version_expiration_days <= 3650 && floor(var.noncurrent_version_expiration_days) == var.noncurrent_version_expiration_days
    error_message = "noncurrent_version_expiration_days must be a whole number from 1 to 3650."
  }
}

variable "landing_expiration_days" {
  description = "Days after which landed raw batches expire; null keeps them (they are the replayable source of every snapshot)."
  type        = number
  default     = null

  validation {
    condition     = var.landing_expiration_days == null || try(var.landing_expiration_days >= 1 && var.landing_expiration_days <= 3650 && floor(var.landing_expiration_days) == var.landing_expiration_days, false)
    error_message = "landing_expiration_days must be null or a whole number from 1 to 3650."
  }
}

variable "access_logs_bucket" {
  description = "Name of an existing bucket that receives S3 server access logs (prefix s3/<bucket>/); null = no access logging."
  type        = string
  default     = null

  validation {
    condition     = var.access_logs_bucket == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.access_logs_bucket))
    error_message = "access_logs_bucket must be null or a valid S3 bucket name."
  }
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete non-empty buckets. Keep false outside throw-away environments."
  type        = bool
  default     = false
}

variable "mlflow_artifacts_proxied" {
  description = "true: the MLflow server proxies artifacts (mlflow-artifacts:/), so only its role touches the bucket. false: clients (the worker) read and write s3://<mlflow bucket> directly, as config/profiles/aws.yaml does."
  type        = bool
  default     = false
}

variable "allow_worker_landing_writes" {
  description = "Let the worker write the landing prefixes: needed only by the `land` deployment that replays reference data. In production an upstream producer writes landing and the worker only reads it."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------------------------------------------------------
# Secrets: referenced by ARN, never passed as values
# ---------------------------------------------------------------------------------------------------------------

variable "pii_key_secret_arn" {
  description = "ARN of the PII hashing key: a Secrets Manager secret or an SSM SecureString parameter. ECS injects it as MLOPS_PII_KEY."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:(secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+|ssm:[a-z0-9-]+:[0-9]{12}:parameter/[A-Za-z0-9/_.-]+)$", var.pii_key_secret_arn))
    error_message = "pii_key_secret_arn must be the full ARN of a Secrets Manager secret or an SSM parameter."
  }
}

variable "prefect_api_key_secret_arn" {
  description = "ARN of PREFECT_API_KEY (Secrets Manager secret or SSM parameter); null for a self-hosted server without keys."
  type        = string
  default     = null

  validation {
    condition     = var.prefect_api_key_secret_arn == null || can(regex("^arn:aws[a-z-]*:(secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+|ssm:[a-z0-9-]+:[0-9]{12}:parameter/[A-Za-z0-9/_.-]+)$", var.prefect_api_key_secret_arn))
    error_message = "prefect_api_key_secret_arn must be null or the full ARN of a Secrets Manager secret or an SSM parameter."
  }
}

variable "secrets_kms_key_arns" {
  description = "Customer-managed KMS keys that encrypt the secrets above (empty when they use the AWS-managed keys)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for k in var.secrets_kms_key_arns : can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]+$", k))])
    error_message = "secrets_kms_key_arns must hold KMS key ARNs (arn:aws:kms:<region>:<account>:key/<id>)."
  }
}

# ---------------------------------------------------------------------------------------------------------------
# Workers and servers they talk to
# ---------------------------------------------------------------------------------------------------------------

variable "prefect_api_url" {
  description = "PREFECT_API_URL of the workspace or self-hosted server the worker polls."
  type        = string

  validation {
    condition     = can(regex("^https://[^\\s]+/api(/.*)?$", var.prefect_api_url))
    error_message = "prefect_api_url must be an https:// URL ending in /api or /api/accounts/<id>/workspaces/<id>."
  }
}

variable "mlflow_tracking_uri" {
  description = "MLFLOW_TRACKING_URI of the MLflow tracking server."
  type        = string

  validation {
    condition     = can(regex("^https://[^\\s]+$", var.mlflow_tracking_uri))
    error_message = "mlflow_tracking_uri must be an https:// URL."
  }
}

variable "work_pool_name" {
  description = "Prefect work pool the worker serves (prefect.yaml's process pool)."
  type        = string
  default     = "mlops-process"

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$", var.work_pool_name))
    error_message = "work_pool_name must be 1-100 letters, digits, '_', '.' or '-'."
  }
}

variable "worker_image_repository" {
  description = "Worker image repository without tag or digest, e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-worker."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(\\.[a-z0-9-]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)+$", var.worker_image_repository)) || can(regex("^[a-z0-9]+([._-][a-z0-9]+)*$", var.worker_image_repository))
    error_message = "worker_image_repository must be a repository reference without a tag or digest."
  }
}

variable "worker_image_tag" {
  description = "Worker image tag: the git commit SHA it was built from (7-40 hex characters). Never a moving tag like latest."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-f]{7,40}$", var.worker_image_tag)) && var.worker_image_tag != "latest"
    error_message = "worker_image_tag must be a git commit SHA (7-40 lowercase hex characters); moving tags such as 'latest' are refused."
  }
}

variable "worker_image_ecr_repository_arn" {
  description = "ARN of the ECR repository of the worker image, so the execution role may pull from it; null for a public registry."
  type        = string
  default     = null

  validation {
    condition     = var.worker_image_ecr_repository_arn == null || can(regex("^arn:aws[a-z-]*:ecr:[a-z0-9-]+:[0-9]{12}:repository/[a-z0-9._/-]+$", var.worker_image_ecr_repository_arn))
    error_message = "worker_image_ecr_repository_arn must be null or an ECR repository ARN."
  }
}

variable "worker_repo_dir" {
  description = "Directory of the repository inside the worker image: prefect.yaml's pull step sets it as working directory (MLOPS_REPO_DIR)."
  type        = string
  default     = "/opt/mlops"

  validation {
    condition     = startswith(var.worker_repo_dir, "/")
    error_message = "worker_repo_dir must be an absolute path."
  }
}

variable "enable_ecs" {
  description = "Create the ECS side: cluster, worker task definition, log group and egress-only security group. false keeps buckets, key and roles only (e.g. workers on EKS through IRSA)."
  type        = bool
  default     = true
}

variable "enable_worker_service" {
  description = "Run the worker as a long-running ECS service. false leaves the task definition unused (e.g. flow runs started by an ecs work pool's worker elsewhere)."
  type        = bool
  default     = true

  validation {
    condition     = !var.enable_worker_service || var.enable_ecs
    error_message = "enable_worker_service needs enable_ecs = true."
  }
}

variable "worker_cpu" {
  description = "Fargate task CPU units of the worker (flows run inside it)."
  type        = number
  default     = 1024

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.worker_cpu)
    error_message = "worker_cpu must be a Fargate CPU value: 256, 512, 1024, 2048, 4096, 8192 or 16384."
  }
}

variable "worker_memory" {
  description = "Fargate task memory (MiB) of the worker; must be a valid pair with worker_cpu."
  type        = number
  default     = 4096

  validation {
    # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html#fargate-tasks-size
    condition = (
      var.worker_cpu == 256 ? contains([512, 1024, 2048], var.worker_memory) :
      var.worker_cpu == 512 ? contains([1024, 2048, 3072, 4096], var.worker_memory) :
      var.worker_cpu == 1024 ? contains([2048, 3072, 4096, 5120, 6144, 7168, 8192], var.worker_memory) :
      var.worker_cpu == 2048 ? var.worker_memory >= 4096 && var.worker_memory <= 16384 && var.worker_memory % 1024 == 0 :
      var.worker_cpu == 4096 ? var.worker_memory >= 8192 && var.worker_memory <= 30720 && var.worker_memory % 1024 == 0 :
      var.worker_cpu == 8192 ? var.worker_memory >= 16384 && var.worker_memory <= 61440 && var.worker_memory % 4096 == 0 :
      var.worker_cpu == 16384 ? var.worker_memory >= 32768 && var.worker_memory <= 122880 && var.worker_memory % 8192 == 0 :
      false
    )
    error_message = "worker_memory is not a valid Fargate size for worker_cpu (e.g. 256: 512-2048; 1024: 2048-8192 in 1024 steps; 4096: 8192-30720 in 1024 steps)."
  }
}

variable "worker_ephemeral_storage_gib" {
  description = "Fargate ephemeral storage (GiB) for /tmp of the worker: flows stage snapshots and models there."
  type        = number
  default     = 30

  validation {
    condition     = var.worker_ephemeral_storage_gib >= 21 && var.worker_ephemeral_storage_gib <= 200 && floor(var.worker_ephemeral_storage_gib) == var.worker_ephemeral_storage_gib
    error_message = "worker_ephemeral_storage_gib must be a whole number from 21 to 200 (Fargate limits)."
  }
}

variable "worker_desired_count" {
  description = "Number of worker tasks. 0 parks the worker; more than 1 polls the same pool in parallel."
  type        = number
  default     = 1

  validation {
    condition     = var.worker_desired_count >= 0 && var.worker_desired_count <= 10 && floor(var.worker_desired_count) == var.worker_desired_count
    error_message = "worker_desired_count must be a whole number from 0 to 10."
  }
}

variable "log_retention_days" {
  description = "Retention of the worker's CloudWatch logs, in days (a value CloudWatch accepts)."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch retention value: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653."
  }

  validation {
    condition     = var.environment != "prod" || var.log_retention_days >= 365
    error_message = "prod keeps worker logs for at least 365 days."
  }
}

variable "vpc_id" {
  description = "VPC of the worker's security group (required when enable_ecs)."
  type        = string
  default     = null

  validation {
    condition     = var.vpc_id == null ? !var.enable_ecs : can(regex("^vpc-[0-9a-f]{8,17}$", var.vpc_id))
    error_message = "vpc_id must be a VPC id (vpc-...) when enable_ecs is true."
  }
}

variable "subnet_ids" {
  description = "Private subnets of the worker tasks (they reach S3, Prefect and MLflow through NAT or VPC endpoints)."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue(concat(
      [length(var.subnet_ids) > 0 || !var.enable_ecs],
      [for s in var.subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", s))],
    ))
    error_message = "subnet_ids must hold at least one subnet id (subnet-...) when enable_ecs is true."
  }
}

variable "worker_egress_cidr_blocks" {
  description = "Destinations the worker may open HTTPS connections to (Prefect API, MLflow, S3/AWS APIs)."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = length(var.worker_egress_cidr_blocks) > 0 && alltrue([for c in var.worker_egress_cidr_blocks : can(cidrhost(c, 0))])
    error_message = "worker_egress_cidr_blocks must hold at least one IPv4 CIDR block."
  }
}

variable "worker_assign_public_ip" {
  description = "Give worker tasks a public IP (only for subnets without NAT; the security group still admits no inbound traffic)."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------------------------------------------------------
# Optional: EKS (IRSA) trust for the same roles
# ---------------------------------------------------------------------------------------------------------------

variable "eks_oidc_provider_arn" {
  description = "ARN of an EKS cluster's IAM OIDC provider: when set, the worker and MLflow roles also trust the service accounts below (IRSA)."
  type        = string
  default     = null

  validation {
    condition     = var.eks_oidc_provider_arn == null || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/.+$", var.eks_oidc_provider_arn))
    error_message = "eks_oidc_provider_arn must be null or an IAM OIDC provider ARN."
  }
}

variable "eks_service_accounts" {
  description = "Kubernetes service accounts (namespace/name) allowed to assume each role through IRSA."
  type = object({
    worker = string
    mlflow = string
  })
  default = {
    worker = "prefect/prefect-worker"
    mlflow = "mlflow/mlflow"
  }

  validation {
    condition     = alltrue([for sa in [var.eks_service_accounts.worker, var.eks_service_accounts.mlflow] : can(regex("^[a-z0-9-]+/[a-z0-9.-]+$", sa))])
    error_message = "eks_service_accounts values must be <namespace>/<service account name>."
  }
}

variable "enable_api_service" {
  description = "Run the REST scoring API (`mlops api`) as an ECS service (needs enable_ecs)."
  type        = bool
  default     = false

  validation {
    condition     = !var.enable_api_service || var.enable_ecs
    error_message = "enable_api_service needs enable_ecs = true."
  }
}

variable "api_port" {
  description = "Port the API listens on inside its task."
  type        = number
  default     = 8000

  validation {
    condition     = var.api_port >= 1024 && var.api_port <= 65535 && floor(var.api_port) == var.api_port
    error_message = "api_port must be a whole number from 1024 to 65535 (the container runs as a non-root user)."
  }
}

variable "api_workers" {
  description = "uvicorn worker processes per API task (one OpenMP thread each): about one per vCPU."
  type        = number
  default     = 2

  validation {
    condition     = var.api_workers >= 1 && var.api_workers <= 16 && floor(var.api_workers) == var.api_workers
    error_message = "api_workers must be a whole number from 1 to 16."
  }
}

variable "api_cpu" {
  description = "Fargate task CPU units of an API task."
  type        = number
  default     = 2048

  validation {
    condition     = contains([512, 1024, 2048, 4096], var.api_cpu)
    error_message = "api_cpu must be 512, 1024, 2048 or 4096."
  }
}

variable "api_memory" {
  description = "Fargate task memory (MiB) of an API task; a valid pair with api_cpu."
  type        = number
  default     = 4096

  validation {
    condition = (
      var.api_cpu == 512 ? contains([1024, 2048, 3072, 4096], var.api_memory) :
      var.api_cpu == 1024 ? var.api_memory >= 2048 && var.api_memory <= 8192 && var.api_memory % 1024 == 0 :
      var.api_cpu == 2048 ? var.api_memory >= 4096 && var.api_memory <= 16384 && var.api_memory % 1024 == 0 :
      var.api_memory >= 8192 && var.api_memory <= 30720 && var.api_memory % 1024 == 0
    )
    error_message = "api_memory is not a valid Fargate size for api_cpu."
  }
}

variable "api_desired_count" {
  description = "Number of API tasks (2 or more keeps the API up during deploys and zone failures)."
  type        = number
  default     = 2

  validation {
    condition     = var.api_desired_count >= 0 && var.api_desired_count <= 50 && floor(var.api_desired_count) == var.api_desired_count
    error_message = "api_desired_count must be a whole number from 0 to 50."
  }
}

variable "api_ingress_cidr_blocks" {
  description = "Networks allowed to reach the API's port (a load balancer's subnets); empty: no inbound rule."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.api_ingress_cidr_blocks : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "api_ingress_cidr_blocks must be CIDR blocks, and never 0.0.0.0/0: put a load balancer in front."
  }
}

variable "api_target_group_arn" {
  description = "Target group of a load balancer to register the API tasks in; null: none (service discovery elsewhere)."
  type        = string
  default     = null
}

variable "api_eks_service_account" {
  description = "Kubernetes service account (namespace/name) of the API allowed to assume its role through IRSA."
  type        = string
  default     = "mlops-prod/mlops-api-irsa"

  validation {
    condition     = can(regex("^[a-z0-9-]+/[a-z0-9.-]+$", var.api_eks_service_account))
    error_message = "api_eks_service_account must be <namespace>/<service account name>."
  }
}
