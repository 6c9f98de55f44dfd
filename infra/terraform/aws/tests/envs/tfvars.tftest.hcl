# Run once per environment file:
#   terraform test -test-directory=tests/envs -var-file=envs/<staging|prod>.tfvars
# Every value of the file passes validation and plans, and the environment's guard rails hold.
mock_provider "aws" {
  source = "./tests/mocks"
}

run "environment_file_plans" {
  command = apply

  assert {
    condition     = output.landing_bucket == "${var.name_prefix}-${var.environment}-landing"
    error_message = "the environment file must plan to the expected bucket names"
  }

  assert {
    condition     = var.environment != "prod" || (!var.force_destroy && !var.allow_worker_landing_writes)
    error_message = "prod buckets survive destroy, and prod landing is written by the producer only"
  }

  assert {
    condition     = var.environment != "prod" || (var.access_logs_bucket != null && var.log_retention_days >= 365 && var.worker_desired_count >= 2)
    error_message = "prod logs S3 access, keeps worker logs a year, and runs at least two workers"
  }

  assert {
    condition     = var.environment != "staging" || var.quarantine_expiration_days <= 30
    error_message = "staging quarantine does not outlive a month"
  }
}
