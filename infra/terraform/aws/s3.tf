# Three buckets, one hardening for all:
#   landing           raw batches as delivered (written by the producer, read by ingest)
#   lake              <usecase>/curated, <usecase>/rejected, <usecase>/scores (+ scores/_quarantine)
#   mlflow-artifacts  MLflow run and model artifacts
# Separate landing and lake buckets keep the producer's write access and the lake's contents apart.
locals {
  buckets = {
    landing = {
      name = "${local.name}-landing"
      # raw deliveries are the replayable source of every snapshot: kept unless an expiry is configured
      expiring_prefixes = var.landing_expiration_days == null ? {} : { "all" = { prefix = "", days = var.landing_expiration_days } }
    }
    lake = {
      name              = "${local.name}-lake"
      expiring_prefixes = { for i, p in local.quarantine_prefixes : "quarantine-${i}" => { prefix = p, days = var.quarantine_expiration_days } }
    }
    mlflow = {
      name              = "${local.name}-mlflow-artifacts"
      expiring_prefixes = {}
    }
  }
  bucket_arns = { for k, b in local.buckets : k => "arn:${local.partition}:s3:::${b.name}" }
}

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_144:Cross-region replication is a disaster-recovery decision (second region, key, role, twice the storage) left to each organisation; the lake is rebuilt from versioned landing, models by retraining.
  #checkov:skip=CKV2_AWS_62:Nothing consumes S3 event notifications: flows are chained by Prefect events and deployment triggers, not by bucket events.
  for_each = local.buckets

  bucket        = each.value.name
  force_destroy = var.force_destroy
}

resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.bucket
  rule {
    object_ownership = "BucketOwnerEnforced" # ACLs off: the account owns every object, whoever wrote it
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each = aws_s3_bucket.this

  bucket                  = each.value.bucket
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.bucket
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.bucket
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.data.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_policy" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.bucket
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [local.bucket_arns[each.key], "${local.bucket_arns[each.key]}/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
      {
        Sid       = "DenyTlsOlderThan12"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [local.bucket_arns[each.key], "${local.bucket_arns[each.key]}/*"]
        Condition = { NumericLessThan = { "s3:TlsVersion" = "1.2" } }
      },
    ]
  })

  # a policy on a bucket whose public access block is still being written fails intermittently
  depends_on = [aws_s3_bucket_public_access_block.this]
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.bucket

  rule {
    id     = "noncurrent-versions-and-incomplete-uploads"
    status = "Enabled"
    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  dynamic "rule" {
    for_each = local.buckets[each.key].expiring_prefixes
    content {
      id     = "expire-${rule.key}"
      status = "Enabled"
      filter {
        prefix = rule.value.prefix
      }
      expiration {
        days = rule.value.days
      }
    }
  }

  # lifecycle rules on noncurrent versions need versioning to exist first
  depends_on = [aws_s3_bucket_versioning.this]
}

resource "aws_s3_bucket_logging" "this" {
  for_each = var.access_logs_bucket == null ? {} : aws_s3_bucket.this

  bucket        = each.value.bucket
  target_bucket = var.access_logs_bucket
  target_prefix = "s3/${each.value.bucket}/"
}
