# The worker: a long-running Prefect *process* worker on Fargate. Flow runs are subprocesses of the worker,
# inside the same container and under the worker task role, from the code baked into the image (prefect.yaml's
# pull step sets MLOPS_REPO_DIR as working directory). The same roles, network and env feed an `ecs` work pool
# (output work_pool_job_variables) for platforms that want one task per flow run.
locals {
  ecs_count     = var.enable_ecs ? 1 : 0
  service_count = var.enable_ecs && var.enable_worker_service ? 1 : 0
  worker_image  = "${var.worker_image_repository}:${var.worker_image_tag}"

  # Plain configuration only. Secrets are in worker_secrets, as references ECS resolves at task start.
  worker_environment = {
    PREFECT_API_URL      = var.prefect_api_url
    MLOPS_PROFILE        = "aws"
    MLOPS_LANDING_BUCKET = aws_s3_bucket.this["landing"].bucket
    MLOPS_LAKE_BUCKET    = aws_s3_bucket.this["lake"].bucket
    MLOPS_MLFLOW_BUCKET  = aws_s3_bucket.this["mlflow"].bucket
    MLFLOW_TRACKING_URI  = var.mlflow_tracking_uri
    AWS_REGION           = local.region
    AWS_DEFAULT_REGION   = local.region
    MLOPS_REPO_DIR       = var.worker_repo_dir
  }

  # the root filesystem is read-only: everything that writes goes to the task's ephemeral /tmp
  worker_scratch_environment = {
    TMPDIR       = "/tmp"
    HOME         = "/tmp/home"
    PREFECT_HOME = "/tmp/prefect"
    MLOPS_HOME   = "/tmp/mlops"
  }

  # name -> ARN; MLOPS_PII_KEY is the variable the aws profile's pii_key secret reads first (adapters/secrets.py)
  worker_secrets = merge(
    { MLOPS_PII_KEY = var.pii_key_secret_arn },
    var.prefect_api_key_secret_arn == null ? {} : { PREFECT_API_KEY = var.prefect_api_key_secret_arn },
  )

  worker_container = {
    name      = "prefect-worker"
    image     = local.worker_image
    essential = true
    command   = ["prefect", "worker", "start", "--pool", var.work_pool_name, "--type", "process"]
    environment = [
      for k, v in merge(local.worker_environment, local.worker_scratch_environment) : { name = k, value = v }
    ]
    secrets                = [for k, arn in local.worker_secrets : { name = k, valueFrom = arn }]
    readonlyRootFilesystem = true
    mountPoints            = [{ sourceVolume = "scratch", containerPath = "/tmp", readOnly = false }]
    # an init process forwards SIGTERM so the worker stops cleanly on deploys and scale-in
    linuxParameters = { initProcessEnabled = true }
    stopTimeout     = 120
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = local.log_group_name
        awslogs-region        = local.region
        awslogs-stream-prefix = "worker"
      }
    }
  }
}

resource "aws_cloudwatch_log_group" "worker" {
  #checkov:skip=CKV_AWS_338:Retention is var.log_retention_days (default 365); its validation forces >= 365 days in prod, staging may keep less.
  count = local.ecs_count

  name              = local.log_group_name
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.data.arn
}

resource "aws_ecs_cluster" "this" {
  count = local.ecs_count

  name = local.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_ecs_task_definition" "worker" {
  count = local.ecs_count

  family                   = local.worker_name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = tostring(var.worker_cpu)
  memory                   = tostring(var.worker_memory)
  execution_role_arn       = aws_iam_role.worker_execution.arn
  task_role_arn            = aws_iam_role.worker_task.arn
  container_definitions    = jsonencode([local.worker_container])

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  ephemeral_storage {
    size_in_gib = var.worker_ephemeral_storage_gib
  }

  volume {
    name = "scratch"
  }

  depends_on = [aws_cloudwatch_log_group.worker]
}

resource "aws_security_group" "worker" {
  count = local.ecs_count

  name        = local.worker_name
  description = "Prefect worker of ${local.name}: no inbound traffic, outbound HTTPS only"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_egress_rule" "worker_https" {
  for_each = var.enable_ecs ? toset(var.worker_egress_cidr_blocks) : toset([])

  security_group_id = aws_security_group.worker[0].id
  description       = "HTTPS to Prefect API, MLflow and AWS APIs"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
}

resource "aws_ecs_service" "worker" {
  count = local.service_count

  name                               = local.worker_name
  cluster                            = aws_ecs_cluster.this[0].arn
  task_definition                    = aws_ecs_task_definition.worker[0].arn
  desired_count                      = var.worker_desired_count
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  propagate_tags                     = "SERVICE"
  enable_execute_command             = false
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.worker[0].id]
    assign_public_ip = var.worker_assign_public_ip
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
}
