# Streaming scoring (`mlops stream`, services/stream_consumer.py): the input stream, an optional output stream,
# the checkpoint + lease table, and the consumer's role with only what the consumer does:
#   read the input stream's shards; put onto the output stream (if any); read and conditionally write the items
#   of its own application and stream in the table (dynamodb:LeadingKeys); write predictions and dead-letter
#   objects under <usecase>/predictions/ of the lake; read MLflow artifacts (model downloads).
# Streams and table are encrypted with the environment's data key; the table has point-in-time recovery and
# deletion protection (losing checkpoints would make every consumer start over at TRIM_HORIZON).

variable "stream_name" {
  description = "Input stream of the consumer (stream.name / --stream). Empty: no streaming resources."
  type        = string
  default     = ""

  validation {
    condition     = var.stream_name == "" || can(regex("^[a-zA-Z0-9_.-]{1,128}$", var.stream_name))
    error_message = "stream_name: 1-128 letters, digits, '_', '.', '-'."
  }
}

variable "stream_shard_count" {
  description = "Shards of the input stream (each takes 1 MB/s or 1000 records/s of writes)."
  type        = number
  default     = 4

  validation {
    condition     = var.stream_shard_count >= 1 && var.stream_shard_count <= 500
    error_message = "stream_shard_count must be between 1 and 500."
  }
}

variable "stream_retention_hours" {
  description = "How long records stay readable: a consumer down longer than this loses records (24-8760)."
  type        = number
  default     = 168

  validation {
    condition     = var.stream_retention_hours >= 24 && var.stream_retention_hours <= 8760
    error_message = "stream_retention_hours must be between 24 and 8760."
  }
}

variable "stream_output_name" {
  description = "Output stream the consumer also puts its results on (stream.output_stream); empty: none."
  type        = string
  default     = ""
}

variable "stream_application" {
  description = "The consumer's application name (stream.application): the leading key of its table items."
  type        = string
  default     = "mlops-stream-scorer"
}

variable "stream_consumer_service_account" {
  description = "Kubernetes service account (namespace/name) of the consumer Deployment, trusted through IRSA."
  type        = string
  default     = "mlops/stream-consumer"

  validation {
    condition     = can(regex("^[a-z0-9-]+/[a-z0-9.-]+$", var.stream_consumer_service_account))
    error_message = "stream_consumer_service_account must be namespace/name."
  }
}

locals {
  streaming      = var.stream_name != ""
  stream_outputs = local.streaming && var.stream_output_name != "" ? toset([var.stream_output_name]) : toset([])
  stream_arn     = "arn:${local.partition}:kinesis:${local.region}:${local.account_id}:stream/${var.stream_name}"
  stream_table   = "${local.name}-stream-checkpoints"
}

resource "aws_kinesis_stream" "input" {
  count            = local.streaming ? 1 : 0
  name             = var.stream_name
  shard_count      = var.stream_shard_count
  retention_period = var.stream_retention_hours
  encryption_type  = "KMS"
  kms_key_id       = aws_kms_key.data.arn

  stream_mode_details {
    stream_mode = "PROVISIONED"
  }
}

resource "aws_kinesis_stream" "output" {
  for_each         = local.stream_outputs
  name             = each.key
  shard_count      = var.stream_shard_count
  retention_period = var.stream_retention_hours
  encryption_type  = "KMS"
  kms_key_id       = aws_kms_key.data.arn

  stream_mode_details {
    stream_mode = "PROVISIONED"
  }
}

resource "aws_dynamodb_table" "stream_checkpoints" {
  count                       = local.streaming ? 1 : 0
  name                        = local.stream_table
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "lease_key"
  range_key                   = "shard_id"
  deletion_protection_enabled = true

  attribute {
    name = "lease_key"
    type = "S"
  }

  attribute {
    name = "shard_id"
    type = "S"
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.data.arn
  }

  point_in_time_recovery {
    enabled = true
  }
}

# ---------------------------------------------------------------------------------------------------------------
# The consumer's role
# ---------------------------------------------------------------------------------------------------------------

resource "aws_iam_role" "stream_consumer" {
  count       = local.streaming ? 1 : 0
  name        = "${local.name}-stream-consumer"
  description = "Stream consumer of ${local.name}: reads ${var.stream_name}, checkpoints, writes predictions"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat([local.ecs_tasks_trust], var.eks_oidc_provider_arn == null ? [] : [{
      Sid       = "EksServiceAccount"
      Effect    = "Allow"
      Principal = { Federated = var.eks_oidc_provider_arn }
      Action    = "sts:AssumeRoleWithWebIdentity"
      Condition = {
        StringEquals = {
          "${local.irsa_issuer}:sub" = "system:serviceaccount:${replace(var.stream_consumer_service_account, "/", ":")}"
          "${local.irsa_issuer}:aud" = "sts.amazonaws.com"
        }
      }
    }])
  })
  max_session_duration = 3600
}

locals {
  stream_prediction_prefixes = [for u in var.usecases : "${u}/predictions/"]

  stream_consumer_statements = concat(
    [
      {
        Sid      = "ReadInputStream"
        Effect   = "Allow"
        Action   = ["kinesis:DescribeStreamSummary", "kinesis:ListShards", "kinesis:GetShardIterator", "kinesis:GetRecords"]
        Resource = local.stream_arn
      },
      {
        Sid      = "OwnCheckpointsAndLeases"
        Effect   = "Allow"
        Action   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Query"]
        Resource = "arn:${local.partition}:dynamodb:${local.region}:${local.account_id}:table/${local.stream_table}"
        Condition = {
          "ForAllValues:StringEquals" = { "dynamodb:LeadingKeys" = ["${var.stream_application}|${var.stream_name}"] }
        }
      },
      {
        Sid       = "ListPredictionPrefixes"
        Effect    = "Allow"
        Action    = "s3:ListBucket"
        Resource  = local.bucket_arns["lake"]
        Condition = { StringLike = { "s3:prefix" = flatten([for p in local.stream_prediction_prefixes : [p, "${p}*"]]) } }
      },
      {
        Sid      = "WritePredictionsAndDeadLetter"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
        Resource = [for p in local.stream_prediction_prefixes : "${local.bucket_arns["lake"]}/${p}*"]
      },
      {
        Sid      = "ReadModelArtifacts"
        Effect   = "Allow"
        Action   = ["s3:GetObject"]
        Resource = "${local.bucket_arns["mlflow"]}/*"
      },
      {
        Sid      = "ListModelArtifacts"
        Effect   = "Allow"
        Action   = "s3:ListBucket"
        Resource = local.bucket_arns["mlflow"]
      },
      {
        Sid      = "UseDataKeyThroughItsServicesOnly"
        Effect   = "Allow"
        Action   = ["kms:Decrypt", "kms:GenerateDataKey"]
        Resource = aws_kms_key.data.arn
        Condition = {
          StringEquals = {
            "kms:ViaService" = [for s in ["s3", "kinesis", "dynamodb"] : "${s}.${local.region}.amazonaws.com"]
          }
        }
      },
    ],
    [for name in local.stream_outputs : {
      Sid      = "PutOutputStream"
      Effect   = "Allow"
      Action   = ["kinesis:PutRecords", "kinesis:DescribeStreamSummary"]
      Resource = "arn:${local.partition}:kinesis:${local.region}:${local.account_id}:stream/${name}"
    }],
  )
}

resource "aws_iam_role_policy" "stream_consumer" {
  count  = local.streaming ? 1 : 0
  name   = "stream-consumer"
  role   = aws_iam_role.stream_consumer[0].id
  policy = jsonencode({ Version = "2012-10-17", Statement = local.stream_consumer_statements })
}

output "stream_name" {
  description = "MLOPS_STREAM_NAME: the consumer's input stream (null when streaming is off)."
  value       = local.streaming ? aws_kinesis_stream.input[0].name : null
}

output "stream_checkpoint_table" {
  description = "MLOPS_STREAM_CHECKPOINT_TABLE: the consumer's checkpoints and leases."
  value       = local.streaming ? aws_dynamodb_table.stream_checkpoints[0].name : null
}

output "stream_consumer_role_arn" {
  description = "Role of the consumer (ECS task role, or the IRSA role of its Kubernetes service account)."
  value       = local.streaming ? aws_iam_role.stream_consumer[0].arn : null
}
