# Three roles, each with only what its holder does:
#   worker task role       the flows: read landing (write it only for the replay `land` deployment), read/write
#                          the lake, read/write MLflow artifacts only when clients write them directly
#   worker execution role  ECS itself: pull the image, write the log group, inject the two secrets by ARN
#   mlflow server role     the MLflow tracking server: its artifacts bucket only
# Every resource is a named ARN. The wildcards that remain, and why:
#   - object ARNs end in /* under a use-case prefix (objects are created at run time);
#   - log stream ARNs end in :log-stream:* (ECS names a stream per task);
#   - ecr:GetAuthorizationToken has no resource-level permissions (only when an ECR repository is given);
#   - the task roles' trust has aws:SourceArn arn:...:ecs:<region>:<account>:* (any task of this account and region).

locals {
  # "oidc.eks.<region>.amazonaws.com/id/<id>": the prefix of the token's condition keys ("" when IRSA is off)
  irsa_issuer = try(split("oidc-provider/", var.eks_oidc_provider_arn)[1], "")

  secret_arns = compact([var.pii_key_secret_arn, var.prefect_api_key_secret_arn])
  # an SSM parameter referenced with a ":<version>" or a Secrets Manager JSON key would need trimming; full ARNs only
  secretsmanager_arns = [for a in local.secret_arns : a if strcontains(a, ":secretsmanager:")]
  ssm_parameter_arns  = [for a in local.secret_arns : a if strcontains(a, ":ssm:")]

  s3_via_service = { StringEquals = { "kms:ViaService" = "s3.${local.region}.amazonaws.com" } }
}

# ---------------------------------------------------------------------------------------------------------------
# Trust of the task roles: ECS tasks of this account (confused-deputy guarded), optionally one EKS service account
# ---------------------------------------------------------------------------------------------------------------

locals {
  ecs_tasks_trust = {
    Sid       = "EcsTasksOfThisAccount"
    Effect    = "Allow"
    Principal = { Service = "ecs-tasks.amazonaws.com" }
    Action    = "sts:AssumeRole"
    Condition = {
      StringEquals = { "aws:SourceAccount" = local.account_id }
      ArnLike      = { "aws:SourceArn" = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:*" }
    }
  }

  irsa_trust = {
    for role, sa in var.eks_service_accounts : role => {
      Sid       = "EksServiceAccount"
      Effect    = "Allow"
      Principal = { Federated = var.eks_oidc_provider_arn }
      Action    = "sts:AssumeRoleWithWebIdentity"
      Condition = {
        StringEquals = {
          "${local.irsa_issuer}:sub" = "system:serviceaccount:${replace(sa, "/", ":")}"
          "${local.irsa_issuer}:aud" = "sts.amazonaws.com"
        }
      }
    }
  }

  trust_policies = {
    for role in ["worker", "mlflow"] : role => jsonencode({
      Version   = "2012-10-17"
      Statement = concat([local.ecs_tasks_trust], var.eks_oidc_provider_arn == null ? [] : [local.irsa_trust[role]])
    })
  }
}

# ---------------------------------------------------------------------------------------------------------------
# Worker task role: what the flows may do
# ---------------------------------------------------------------------------------------------------------------

resource "aws_iam_role" "worker_task" {
  name                 = "${local.worker_name}-task"
  description          = "Prefect worker flows of ${local.name}: landing (read), lake (read/write), MLflow artifacts when client-side"
  assume_role_policy   = local.trust_policies["worker"]
  max_session_duration = 3600
}

locals {
  usecase_prefix_condition = { StringLike = { "s3:prefix" = flatten([for p in local.usecase_prefixes : [p, "${p}*"]]) } }

  worker_statements = concat(
    [
      {
        Sid       = "ListLandingUseCasePrefixes"
        Effect    = "Allow"
        Action    = "s3:ListBucket"
        Resource  = local.bucket_arns["landing"]
        Condition = local.usecase_prefix_condition
      },
      {
        Sid      = "ReadLandingUseCaseObjects"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:GetObjectVersion"]
        Resource = [for p in local.usecase_prefixes : "${local.bucket_arns["landing"]}/${p}*"]
      },
    ],
    [for s in [
      {
        Sid      = "WriteLandingUseCaseObjects"
        Effect   = "Allow"
        Action   = ["s3:PutObject", "s3:AbortMultipartUpload"]
        Resource = [for p in local.usecase_prefixes : "${local.bucket_arns["landing"]}/${p}*"]
      },
    ] : s if var.allow_worker_landing_writes],
    [
      {
        Sid       = "ListLakeUseCasePrefixes"
        Effect    = "Allow"
        Action    = "s3:ListBucket"
        Resource  = local.bucket_arns["lake"]
        Condition = local.usecase_prefix_condition
      },
      {
        # delete: scoring replaces its output atomically and removes stale files and probes
        Sid      = "ReadWriteLakeUseCaseObjects"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
        Resource = [for p in local.usecase_prefixes : "${local.bucket_arns["lake"]}/${p}*"]
      },
    ],
    [for s in [
      {
        Sid      = "ListMlflowArtifacts"
        Effect   = "Allow"
        Action   = "s3:ListBucket"
        Resource = local.bucket_arns["mlflow"]
      },
      {
        Sid      = "ReadWriteMlflowArtifacts"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
        Resource = "${local.bucket_arns["mlflow"]}/*"
      },
    ] : s if !var.mlflow_artifacts_proxied],
    [
      {
        Sid       = "UseDataKeyThroughS3Only"
        Effect    = "Allow"
        Action    = ["kms:Decrypt", "kms:GenerateDataKey"]
        Resource  = aws_kms_key.data.arn
        Condition = local.s3_via_service
      },
    ],
  )
}

resource "aws_iam_role_policy" "worker_task" {
  name   = "data-access"
  role   = aws_iam_role.worker_task.id
  policy = jsonencode({ Version = "2012-10-17", Statement = local.worker_statements })
}

# ---------------------------------------------------------------------------------------------------------------
# Worker execution role: what ECS does on the worker's behalf
# ---------------------------------------------------------------------------------------------------------------

resource "aws_iam_role" "worker_execution" {
  name        = "${local.worker_name}-execution"
  description = "ECS agent for the ${local.name} worker: image pull, logs, secret injection by ARN"
  # AWS documents this trust without confused-deputy conditions: the ECS agent assumes it before any task exists
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "EcsAgent"
      Effect    = "Allow"
      Principal = { Service = "ecs-tasks.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
  max_session_duration = 3600
}

locals {
  log_group_arn = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${local.log_group_name}"

  execution_statements = concat(
    [
      {
        Sid      = "WriteWorkerLogStreams"
        Effect   = "Allow"
        Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
        Resource = "${local.log_group_arn}:log-stream:*"
      },
    ],
    [for s in [
      {
        Sid      = "InjectSecretsManagerSecretsByArn"
        Effect   = "Allow"
        Action   = "secretsmanager:GetSecretValue"
        Resource = local.secretsmanager_arns
      },
    ] : s if length(local.secretsmanager_arns) > 0],
    [for s in [
      {
        Sid      = "InjectSsmParametersByArn"
        Effect   = "Allow"
        Action   = "ssm:GetParameters"
        Resource = local.ssm_parameter_arns
      },
    ] : s if length(local.ssm_parameter_arns) > 0],
    [for s in [
      {
        Sid       = "DecryptSecretsThroughTheirServiceOnly"
        Effect    = "Allow"
        Action    = "kms:Decrypt"
        Resource  = var.secrets_kms_key_arns
        Condition = { StringEquals = { "kms:ViaService" = ["secretsmanager.${local.region}.amazonaws.com", "ssm.${local.region}.amazonaws.com"] } }
      },
    ] : s if length(var.secrets_kms_key_arns) > 0],
    [for s in [
      {
        Sid      = "PullWorkerImage"
        Effect   = "Allow"
        Action   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
        Resource = var.worker_image_ecr_repository_arn
      },
      {
        Sid      = "EcrLoginHasNoResourceLevelPermission"
        Effect   = "Allow"
        Action   = "ecr:GetAuthorizationToken"
        Resource = "*"
      },
    ] : s if var.worker_image_ecr_repository_arn != null],
  )
}

resource "aws_iam_role_policy" "worker_execution" {
  name   = "ecs-agent"
  role   = aws_iam_role.worker_execution.id
  policy = jsonencode({ Version = "2012-10-17", Statement = local.execution_statements })
}

# ---------------------------------------------------------------------------------------------------------------
# MLflow server role: its artifacts bucket, nothing else (the server itself is deployed elsewhere: Helm / ECS)
# ---------------------------------------------------------------------------------------------------------------

resource "aws_iam_role" "mlflow_server" {
  name                 = "${local.name}-mlflow-server"
  description          = "MLflow tracking server of ${local.name}: its artifacts bucket only"
  assume_role_policy   = local.trust_policies["mlflow"]
  max_session_duration = 3600
}

resource "aws_iam_role_policy" "mlflow_server" {
  name = "artifacts"
  role = aws_iam_role.mlflow_server.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "ListArtifacts"
        Effect   = "Allow"
        Action   = "s3:ListBucket"
        Resource = local.bucket_arns["mlflow"]
      },
      {
        Sid      = "ReadWriteArtifacts"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
        Resource = "${local.bucket_arns["mlflow"]}/*"
      },
      {
        Sid       = "UseDataKeyThroughS3Only"
        Effect    = "Allow"
        Action    = ["kms:Decrypt", "kms:GenerateDataKey"]
        Resource  = aws_kms_key.data.arn
        Condition = local.s3_via_service
      },
    ]
  })
}
