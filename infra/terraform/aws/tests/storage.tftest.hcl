# Buckets: encryption, versioning, public access, ownership, TLS-only policy, lifecycle. Mocked provider, offline.
mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  environment                = "staging"
  name_prefix                = "acme-mlops"
  usecases                   = ["uc_a", "uc_b"]
  quarantine_expiration_days = 21
  pii_key_secret_arn         = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mlops/pii-key-AbCdEf"
  prefect_api_url            = "https://prefect.example.com/api"
  mlflow_tracking_uri        = "https://mlflow.example.com"
  worker_image_repository    = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-worker"
  worker_image_tag           = "0123abc"
  vpc_id                     = "vpc-0123456789abcdef0"
  subnet_ids                 = ["subnet-0123456789abcdef0"]
}

run "buckets_are_named_per_environment" {
  command = apply

  assert {
    condition     = output.landing_bucket == "acme-mlops-staging-landing" && output.lake_bucket == "acme-mlops-staging-lake" && output.mlflow_artifacts_bucket == "acme-mlops-staging-mlflow-artifacts"
    error_message = "bucket names must be <name_prefix>-<environment>-landing|lake|mlflow-artifacts"
  }
}

run "every_bucket_is_kms_encrypted_with_the_data_key" {
  command = apply

  assert {
    condition = alltrue([for k, c in aws_s3_bucket_server_side_encryption_configuration.this :
      one(c.rule).apply_server_side_encryption_by_default[0].sse_algorithm == "aws:kms"
      && one(c.rule).apply_server_side_encryption_by_default[0].kms_master_key_id == aws_kms_key.data.arn
      && one(c.rule).bucket_key_enabled
    ])
    error_message = "every bucket must default to SSE-KMS with the environment's key and an S3 bucket key"
  }

  assert {
    condition     = length(aws_s3_bucket_server_side_encryption_configuration.this) == 3
    error_message = "landing, lake and mlflow buckets must all be encrypted"
  }

  assert {
    condition     = aws_kms_key.data.enable_key_rotation
    error_message = "the data key must rotate"
  }
}

run "every_bucket_is_versioned_private_and_owner_enforced" {
  command = apply

  assert {
    condition     = alltrue([for v in aws_s3_bucket_versioning.this : v.versioning_configuration[0].status == "Enabled"]) && length(aws_s3_bucket_versioning.this) == 3
    error_message = "every bucket must be versioned"
  }

  assert {
    condition = alltrue([for b in aws_s3_bucket_public_access_block.this :
    b.block_public_acls && b.block_public_policy && b.ignore_public_acls && b.restrict_public_buckets]) && length(aws_s3_bucket_public_access_block.this) == 3
    error_message = "every bucket must block all public access"
  }

  assert {
    condition     = alltrue([for o in aws_s3_bucket_ownership_controls.this : o.rule[0].object_ownership == "BucketOwnerEnforced"]) && length(aws_s3_bucket_ownership_controls.this) == 3
    error_message = "every bucket must disable ACLs (BucketOwnerEnforced)"
  }
}

run "every_bucket_denies_plain_http" {
  command = apply

  assert {
    condition = alltrue([for k, p in aws_s3_bucket_policy.this : anytrue([
      for s in jsondecode(p.policy).Statement :
      s.Effect == "Deny" && s.Principal == "*" && s.Action == "s3:*"
      && try(s.Condition.Bool["aws:SecureTransport"], "") == "false"
      && contains(s.Resource, "arn:aws:s3:::${aws_s3_bucket.this[k].bucket}")
      && contains(s.Resource, "arn:aws:s3:::${aws_s3_bucket.this[k].bucket}/*")
    ])]) && length(aws_s3_bucket_policy.this) == 3
    error_message = "every bucket policy must deny any request without TLS, on the bucket and its objects"
  }
}

run "quarantine_expires_and_noncurrent_versions_expire" {
  command = apply

  assert {
    condition = (
      sort([for r in aws_s3_bucket_lifecycle_configuration.this["lake"].rule : r.filter[0].prefix if length(r.expiration) > 0])
      == sort(["uc_a/scores/_quarantine/", "uc_a/rejected/", "uc_b/scores/_quarantine/", "uc_b/rejected/"])
    )
    error_message = "the lake must expire every use case's scoring quarantine and rejected batches"
  }

  assert {
    condition = alltrue([for r in aws_s3_bucket_lifecycle_configuration.this["lake"].rule :
    r.expiration[0].days == 21 && r.status == "Enabled" if length(r.expiration) > 0])
    error_message = "quarantine expiry must follow var.quarantine_expiration_days"
  }

  assert {
    condition = alltrue([for k, lc in aws_s3_bucket_lifecycle_configuration.this : anytrue([
      for r in lc.rule : r.status == "Enabled"
      && try(r.noncurrent_version_expiration[0].noncurrent_days, 0) == var.noncurrent_version_expiration_days
      && try(r.abort_incomplete_multipart_upload[0].days_after_initiation, 0) == 7
    ])])
    error_message = "every bucket must expire noncurrent versions and abort stale multipart uploads"
  }

  assert {
    condition     = !anytrue([for r in aws_s3_bucket_lifecycle_configuration.this["landing"].rule : length(r.expiration) > 0])
    error_message = "landing keeps raw batches unless landing_expiration_days is set"
  }

  assert {
    condition     = length(aws_s3_bucket_logging.this) == 0
    error_message = "access logging is off unless access_logs_bucket is set"
  }
}

run "access_logging_and_landing_expiry_when_configured" {
  command = apply

  variables {
    access_logs_bucket      = "acme-s3-access-logs"
    landing_expiration_days = 400
  }

  assert {
    condition = length(aws_s3_bucket_logging.this) == 3 && alltrue([for k, l in aws_s3_bucket_logging.this :
    l.target_bucket == "acme-s3-access-logs" && l.target_prefix == "s3/${aws_s3_bucket.this[k].bucket}/"])
    error_message = "every bucket must log to the access-log bucket under s3/<bucket>/"
  }

  assert {
    condition     = anytrue([for r in aws_s3_bucket_lifecycle_configuration.this["landing"].rule : try(r.expiration[0].days, 0) == 400])
    error_message = "landing_expiration_days must expire landed batches"
  }
}
