# Variable validation: bad inputs fail at plan time, before anything is created.
mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  environment             = "staging"
  name_prefix             = "acme-mlops"
  usecases                = ["uc_a"]
  pii_key_secret_arn      = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mlops/pii-key-AbCdEf"
  prefect_api_url         = "https://prefect.example.com/api"
  mlflow_tracking_uri     = "https://mlflow.example.com"
  worker_image_repository = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-worker"
  worker_image_tag        = "0123abc"
  vpc_id                  = "vpc-0123456789abcdef0"
  subnet_ids              = ["subnet-0123456789abcdef0"]
}

run "valid_inputs_plan" {
  command = plan
}

run "full_length_sha_is_accepted" {
  command = plan
  variables {
    worker_image_tag = "0123456789abcdef0123456789abcdef01234567"
  }
}

run "latest_tag_is_refused" {
  command = plan
  variables {
    worker_image_tag = "latest"
  }
  expect_failures = [var.worker_image_tag]
}

run "short_tag_is_refused" {
  command = plan
  variables {
    worker_image_tag = "abc12"
  }
  expect_failures = [var.worker_image_tag]
}

run "uppercase_tag_is_refused" {
  command = plan
  variables {
    worker_image_tag = "ABCDEF0"
  }
  expect_failures = [var.worker_image_tag]
}

run "over_long_tag_is_refused" {
  command = plan
  variables {
    worker_image_tag = "0123456789abcdef0123456789abcdef012345678"
  }
  expect_failures = [var.worker_image_tag]
}

run "repository_with_a_tag_is_refused" {
  command = plan
  variables {
    worker_image_repository = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-worker:latest"
  }
  expect_failures = [var.worker_image_repository]
}

run "unknown_environment_is_refused" {
  command = plan
  variables {
    environment = "dev"
  }
  expect_failures = [var.environment]
}

run "bucket_prefix_with_uppercase_is_refused" {
  command = plan
  variables {
    name_prefix = "Acme_MLOps"
  }
  expect_failures = [var.name_prefix]
}

run "bucket_prefix_too_long_for_s3_is_refused" {
  command = plan
  variables {
    name_prefix = "a-very-long-prefix-that-would-overflow-s3"
  }
  expect_failures = [var.name_prefix]
}

run "log_retention_not_offered_by_cloudwatch_is_refused" {
  command = plan
  variables {
    log_retention_days = 10
  }
  expect_failures = [var.log_retention_days]
}

run "short_log_retention_in_prod_is_refused" {
  command = plan
  variables {
    environment        = "prod"
    log_retention_days = 30
  }
  expect_failures = [var.log_retention_days]
}

run "quarantine_expiry_out_of_range_is_refused" {
  command = plan
  variables {
    quarantine_expiration_days = 0
  }
  expect_failures = [var.quarantine_expiration_days]
}

run "noncurrent_expiry_out_of_range_is_refused" {
  command = plan
  variables {
    noncurrent_version_expiration_days = 5000
  }
  expect_failures = [var.noncurrent_version_expiration_days]
}

run "fargate_memory_not_valid_for_cpu_is_refused" {
  command = plan
  variables {
    worker_cpu    = 256
    worker_memory = 4096
  }
  expect_failures = [var.worker_memory]
}

run "fargate_cpu_that_does_not_exist_is_refused" {
  command = plan
  variables {
    worker_cpu = 1000
  }
  expect_failures = [var.worker_cpu]
}

run "large_fargate_size_is_accepted" {
  command = plan
  variables {
    worker_cpu    = 4096
    worker_memory = 30720
  }
}

run "secret_value_instead_of_arn_is_refused" {
  command = plan
  variables {
    pii_key_secret_arn = "s3cr3t-value-pasted-by-mistake"
  }
  expect_failures = [var.pii_key_secret_arn]
}

run "plain_http_prefect_api_is_refused" {
  command = plan
  variables {
    prefect_api_url = "http://prefect.example.com/api"
  }
  expect_failures = [var.prefect_api_url]
}

run "ecs_without_subnets_is_refused" {
  command = plan
  variables {
    subnet_ids = []
  }
  expect_failures = [var.subnet_ids]
}

run "service_without_ecs_is_refused" {
  command = plan
  variables {
    enable_ecs = false
  }
  expect_failures = [var.enable_worker_service]
}
