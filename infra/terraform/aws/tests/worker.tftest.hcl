# The worker service: image by git SHA, env wiring, secrets by reference, logs, egress-only network.
mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  environment                = "staging"
  name_prefix                = "acme-mlops"
  usecases                   = ["uc_a"]
  pii_key_secret_arn         = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mlops/pii-key-AbCdEf"
  prefect_api_key_secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mlops/prefect-api-key-AbCdEf"
  prefect_api_url            = "https://api.prefect.cloud/api/accounts/a/workspaces/w"
  mlflow_tracking_uri        = "https://mlflow.example.com"
  worker_image_repository    = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-worker"
  worker_image_tag           = "4f2c1e9a0b7d"
  worker_cpu                 = 2048
  worker_memory              = 8192
  worker_desired_count       = 2
  log_retention_days         = 90
  vpc_id                     = "vpc-0123456789abcdef0"
  subnet_ids                 = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
}

run "task_runs_the_image_of_one_commit_as_a_process_worker" {
  command = apply

  assert {
    condition     = jsondecode(aws_ecs_task_definition.worker[0].container_definitions)[0].image == "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-worker:4f2c1e9a0b7d"
    error_message = "the worker image must be tagged with the git SHA given"
  }

  assert {
    condition     = jsondecode(aws_ecs_task_definition.worker[0].container_definitions)[0].command == ["prefect", "worker", "start", "--pool", "mlops-process", "--type", "process"]
    error_message = "the container runs a process worker of the mlops-process pool"
  }

  assert {
    condition = (
      aws_ecs_task_definition.worker[0].requires_compatibilities == toset(["FARGATE"]) && aws_ecs_task_definition.worker[0].network_mode == "awsvpc"
      && aws_ecs_task_definition.worker[0].cpu == "2048" && aws_ecs_task_definition.worker[0].memory == "8192"
    )
    error_message = "Fargate task of the requested size"
  }

  assert {
    condition     = aws_ecs_task_definition.worker[0].task_role_arn == aws_iam_role.worker_task.arn && aws_ecs_task_definition.worker[0].execution_role_arn == aws_iam_role.worker_execution.arn
    error_message = "the task runs as the worker task role; ECS acts as the execution role"
  }

  assert {
    condition     = jsondecode(aws_ecs_task_definition.worker[0].container_definitions)[0].readonlyRootFilesystem
    error_message = "the root filesystem is read-only (scratch goes to the task volume on /tmp)"
  }
}

run "environment_is_wired_and_secrets_are_references" {
  command = apply

  assert {
    condition = {
      for e in jsondecode(aws_ecs_task_definition.worker[0].container_definitions)[0].environment : e.name => e.value
      if contains(["PREFECT_API_URL", "MLOPS_PROFILE", "MLOPS_LANDING_BUCKET", "MLOPS_LAKE_BUCKET", "MLOPS_MLFLOW_BUCKET", "MLFLOW_TRACKING_URI"], e.name)
      } == {
      PREFECT_API_URL      = "https://api.prefect.cloud/api/accounts/a/workspaces/w"
      MLOPS_PROFILE        = "aws"
      MLOPS_LANDING_BUCKET = "acme-mlops-staging-landing"
      MLOPS_LAKE_BUCKET    = "acme-mlops-staging-lake"
      MLOPS_MLFLOW_BUCKET  = "acme-mlops-staging-mlflow-artifacts"
      MLFLOW_TRACKING_URI  = "https://mlflow.example.com"
    }
    error_message = "the worker gets the aws profile, the three bucket names and both server URLs"
  }

  assert {
    condition = {
      for s in jsondecode(aws_ecs_task_definition.worker[0].container_definitions)[0].secrets : s.name => s.valueFrom
      } == {
      MLOPS_PII_KEY   = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mlops/pii-key-AbCdEf"
      PREFECT_API_KEY = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mlops/prefect-api-key-AbCdEf"
    }
    error_message = "secrets are injected by ECS from their ARNs"
  }

  assert {
    condition = !anytrue([for e in jsondecode(aws_ecs_task_definition.worker[0].container_definitions)[0].environment :
    strcontains(e.name, "KEY") || strcontains(e.name, "SECRET") || strcontains(e.name, "PASSWORD") || strcontains(e.name, "TOKEN")])
    error_message = "no secret travels as a plain environment value"
  }

  assert {
    condition     = output.worker_environment == output.work_pool_job_variables.env && output.work_pool_job_variables.task_role_arn == aws_iam_role.worker_task.arn
    error_message = "the work pool job variables carry the same env and task role as the worker"
  }

  assert {
    condition     = output.work_pool_job_variables.network_configuration.assignPublicIp == "DISABLED" && output.work_pool_job_variables.network_configuration.securityGroups == [aws_security_group.worker[0].id]
    error_message = "flow-run tasks of an ecs pool use the same private, egress-only network"
  }
}

run "logs_are_retained_and_encrypted" {
  command = apply

  assert {
    condition     = aws_cloudwatch_log_group.worker[0].retention_in_days == 90 && aws_cloudwatch_log_group.worker[0].kms_key_id == aws_kms_key.data.arn
    error_message = "the log group keeps logs for log_retention_days, encrypted with the data key"
  }

  assert {
    condition = jsondecode(aws_ecs_task_definition.worker[0].container_definitions)[0].logConfiguration == {
      logDriver = "awslogs"
      options   = { awslogs-group = "/ecs/acme-mlops-staging-worker", awslogs-region = "us-east-1", awslogs-stream-prefix = "worker" }
    }
    error_message = "the container logs to the worker's log group"
  }
}

run "service_is_private_and_egress_only" {
  command = apply

  assert {
    condition     = aws_ecs_service.worker[0].desired_count == 2 && aws_ecs_service.worker[0].launch_type == "FARGATE"
    error_message = "the service runs worker_desired_count Fargate tasks"
  }

  assert {
    condition     = one(aws_ecs_service.worker[0].network_configuration).assign_public_ip == false && one(aws_ecs_service.worker[0].network_configuration).subnets == toset(var.subnet_ids)
    error_message = "worker tasks run in the given subnets without public IPs"
  }

  assert {
    condition     = length(aws_security_group.worker[0].ingress) == 0
    error_message = "the worker's security group admits no inbound traffic"
  }

  assert {
    condition = alltrue([for r in aws_vpc_security_group_egress_rule.worker_https :
    r.ip_protocol == "tcp" && r.from_port == 443 && r.to_port == 443]) && length(aws_vpc_security_group_egress_rule.worker_https) == 1
    error_message = "egress is HTTPS only"
  }
}

run "worker_service_can_be_left_out" {
  command = apply

  variables {
    enable_worker_service = false
  }

  assert {
    condition     = length(aws_ecs_service.worker) == 0 && length(aws_ecs_task_definition.worker) == 1 && output.ecs_service_name == null
    error_message = "enable_worker_service = false keeps the task definition and drops the service"
  }
}

run "ecs_can_be_left_out" {
  command = apply

  variables {
    enable_ecs            = false
    enable_worker_service = false
    vpc_id                = null
    subnet_ids            = []
  }

  assert {
    condition     = length(aws_ecs_cluster.this) == 0 && length(aws_ecs_task_definition.worker) == 0 && length(aws_security_group.worker) == 0 && length(aws_cloudwatch_log_group.worker) == 0
    error_message = "enable_ecs = false creates buckets, key and roles only"
  }
}
