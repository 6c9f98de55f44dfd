# One customer-managed key per environment encrypts the three buckets and the worker's logs.
# Why SSE-KMS with our own key rather than SSE-S3: its key policy is a second gate next to IAM (data stays
# unreadable to a principal that is granted s3:GetObject by mistake), every decrypt is in CloudTrail, and access
# can be revoked in one place. S3 bucket keys keep the KMS request cost low.
resource "aws_kms_key" "data" {
  description             = "${local.name}: MLOps lake, landing, MLflow artifacts and worker logs"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = jsonencode(local.kms_key_policy)
}

resource "aws_kms_alias" "data" {
  name          = "alias/${local.name}-data"
  target_key_id = aws_kms_key.data.key_id
}

locals {
  log_group_name = "/ecs/${local.worker_name}"

  kms_key_policy = {
    Version = "2012-10-17"
    Statement = [
      {
        # Standard key-policy root statement: lets IAM policies of this account grant use of the key (the roles
        # below do, scoped to S3). "Resource": "*" in a key policy means this key only.
        Sid       = "AccountAdministersKeyThroughIam"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogsEncryptsWorkerLogs"
        Effect    = "Allow"
        Principal = { Service = "logs.${local.region}.amazonaws.com" }
        Action    = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnEquals = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${local.log_group_name}"
          }
        }
      },
    ]
  }
}
