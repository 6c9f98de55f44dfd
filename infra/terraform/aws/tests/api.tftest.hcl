# The REST scoring API service: same image with `mlops api`, its own least-privilege role, its port only from
# the given networks, health on /ready, deploys that never drop below the desired count.
mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  environment             = "staging"
  name_prefix             = "acme-mlops"
  usecases                = ["uc_a"]
  pii_key_secret_arn      = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mlops/pii-key-AbCdEf"
  prefect_api_url         = "https://api.prefect.cloud/api/accounts/a/workspaces/w"
  mlflow_tracking_uri     = "https://mlflow.example.com"
  worker_image_repository = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-worker"
  worker_image_tag        = "4f2c1e9a0b7d"
  log_retention_days      = 90
  vpc_id                  = "vpc-0123456789abcdef0"
  subnet_ids              = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
  enable_api_service      = true
  api_ingress_cidr_blocks = ["10.0.0.0/24"]
}

run "api_service_runs_the_worker_image_with_mlops_api" {
  command = apply

  assert {
    condition     = jsondecode(aws_ecs_task_definition.api[0].container_definitions)[0].command == ["mlops", "api", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
    error_message = "the API task runs `mlops api` on its port with 2 workers"
  }

  assert {
    condition     = jsondecode(aws_ecs_task_definition.api[0].container_definitions)[0].image == "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-worker:4f2c1e9a0b7d"
    error_message = "the API uses the worker image of the given commit"
  }

  assert {
    condition     = strcontains(jsondecode(aws_ecs_task_definition.api[0].container_definitions)[0].healthCheck.command[3], "/ready")
    error_message = "the container's health is the API's readiness (a version loaded)"
  }

  assert {
    condition     = jsondecode(aws_ecs_task_definition.api[0].container_definitions)[0].readonlyRootFilesystem
    error_message = "read-only root filesystem"
  }

  assert {
    condition     = aws_ecs_service.api[0].desired_count == 2 && aws_ecs_service.api[0].deployment_minimum_healthy_percent == 100
    error_message = "two tasks, and a deploy never goes below them"
  }

  assert {
    condition     = aws_ecs_task_definition.api[0].task_role_arn == aws_iam_role.api_task.arn
    error_message = "the API runs as its own task role, not the worker's"
  }

  assert {
    condition     = [for r in aws_vpc_security_group_ingress_rule.api : r.cidr_ipv4] == ["10.0.0.0/24"] && [for r in aws_vpc_security_group_ingress_rule.api : r.from_port] == [8000]
    error_message = "inbound only on the API port from the given networks"
  }
}

run "api_role_reads_models_and_appends_the_prediction_log_only" {
  command = apply

  assert {
    condition = (
      [for s in jsondecode(aws_iam_role_policy.api_task.policy).Statement : s.Resource if s.Sid == "AppendPredictionLog"][0]
      == ["arn:aws:s3:::acme-mlops-staging-lake/uc_a/predictions/*", "arn:aws:s3:::acme-mlops-staging-lake/uc_a/predictions_shadow/*"]
    )
    error_message = "the API writes only under the use cases' prediction log prefixes"
  }

  assert {
    condition     = alltrue([for s in jsondecode(aws_iam_role_policy.api_task.policy).Statement : !contains(flatten([s.Action]), "s3:DeleteObject")])
    error_message = "the API never deletes objects"
  }
}

run "api_is_off_by_default" {
  command = plan

  variables {
    enable_api_service = false
  }

  assert {
    condition     = length(aws_ecs_service.api) == 0 && length(aws_ecs_task_definition.api) == 0
    error_message = "no API service unless enabled"
  }
}

run "api_refuses_an_open_ingress" {
  command = plan

  variables {
    api_ingress_cidr_blocks = ["0.0.0.0/0"]
  }

  expect_failures = [var.api_ingress_cidr_blocks]
}
