# The REST scoring API (`mlops api`, services/api.py) as a long-running ECS service: the worker image with
# another command, its own task role (read the models' artifacts, append to the prediction log; nothing else),
# inbound only on its port from the given networks (a load balancer's subnets), egress HTTPS only.
# Off by default (enable_api_service); the API follows @champion by polling MLflow and by Prefect events.

locals {
  api_count = var.enable_ecs && var.enable_api_service ? 1 : 0
  api_name  = "${local.name}-api"

  # the prediction log of each use case: <lake>/<usecase>/predictions/ and .../predictions_shadow/
  prediction_prefixes = flatten([for u in var.usecases : ["${u}/predictions/", "${u}/predictions_shadow/"]])

  api_container = {
    name         = "api"
    image        = local.worker_image
    essential    = true
    command      = ["mlops", "api", "--host", "0.0.0.0", "--port", tostring(var.api_port), "--workers", tostring(var.api_workers)]
    portMappings = [{ containerPort = var.api_port, protocol = "tcp" }]
    environment = [
      for k, v in merge(local.worker_environment, local.worker_scratch_environment) : { name = k, value = v }
    ]
    secrets                = [for k, arn in local.worker_secrets : { name = k, valueFrom = arn }]
    readonlyRootFilesystem = true
    mountPoints            = [{ sourceVolume = "scratch", containerPath = "/tmp", readOnly = false }]
    healthCheck = {
      command     = ["CMD", "python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:${var.api_port}/ready', timeout=4).status != 200)"]
      interval    = 10
      timeout     = 5
      retries     = 3
      startPeriod = 60
    }
    # uvicorn drains requests in flight and the prediction log flushes on SIGTERM
    linuxParameters = { initProcessEnabled = true }
    stopTimeout     = 40
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = local.log_group_name
        awslogs-region        = local.region
        awslogs-stream-prefix = "api"
      }
    }
  }

  api_statements = concat(
    [
      {
        Sid       = "ListLakePredictionLogPrefixes"
        Effect    = "Allow"
        Action    = "s3:ListBucket"
        Resource  = local.bucket_arns["lake"]
        Condition = { StringLike = { "s3:prefix" = flatten([for p in local.prediction_prefixes : [p, "${p}*"]]) } }
      },
      {
        # parts and manifests only; never a delete, never the curated data or the batch scores
        Sid      = "AppendPredictionLog"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]
        Resource = [for p in local.prediction_prefixes : "${local.bucket_arns["lake"]}/${p}*"]
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
        Sid      = "ReadMlflowArtifacts"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:GetObjectVersion"]
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

  api_irsa_trust = {
    Sid       = "EksServiceAccount"
    Effect    = "Allow"
    Principal = { Federated = var.eks_oidc_provider_arn }
    Action    = "sts:AssumeRoleWithWebIdentity"
    Condition = {
      StringEquals = {
        "${local.irsa_issuer}:sub" = "system:serviceaccount:${replace(var.api_eks_service_account, "/", ":")}"
        "${local.irsa_issuer}:aud" = "sts.amazonaws.com"
      }
    }
  }
}

resource "aws_iam_role" "api_task" {
  name        = "${local.api_name}-task"
  description = "REST scoring API of ${local.name}: read model artifacts, append the prediction log"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = concat([local.ecs_tasks_trust], var.eks_oidc_provider_arn == null ? [] : [local.api_irsa_trust])
  })
  max_session_duration = 3600
}

resource "aws_iam_role_policy" "api_task" {
  name   = "prediction-log"
  role   = aws_iam_role.api_task.id
  policy = jsonencode({ Version = "2012-10-17", Statement = local.api_statements })
}

resource "aws_ecs_task_definition" "api" {
  count = local.api_count

  family                   = local.api_name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = tostring(var.api_cpu)
  memory                   = tostring(var.api_memory)
  execution_role_arn       = aws_iam_role.worker_execution.arn
  task_role_arn            = aws_iam_role.api_task.arn
  container_definitions    = jsonencode([local.api_container])

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  volume {
    name = "scratch"
  }

  depends_on = [aws_cloudwatch_log_group.worker]
}

resource "aws_security_group" "api" {
  count = local.api_count

  name        = local.api_name
  description = "REST scoring API of ${local.name}: its port from the given networks, outbound HTTPS only"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "api" {
  for_each = local.api_count == 1 ? toset(var.api_ingress_cidr_blocks) : toset([])

  security_group_id = aws_security_group.api[0].id
  description       = "Scoring requests (from the load balancer's networks)"
  ip_protocol       = "tcp"
  from_port         = var.api_port
  to_port           = var.api_port
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "api_https" {
  for_each = local.api_count == 1 ? toset(var.worker_egress_cidr_blocks) : toset([])

  security_group_id = aws_security_group.api[0].id
  description       = "HTTPS to MLflow, the Prefect API (events) and AWS APIs"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
}

resource "aws_ecs_service" "api" {
  count = local.api_count

  name                               = local.api_name
  cluster                            = aws_ecs_cluster.this[0].arn
  task_definition                    = aws_ecs_task_definition.api[0].arn
  desired_count                      = var.api_desired_count
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  propagate_tags                     = "SERVICE"
  enable_execute_command             = false
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  health_check_grace_period_seconds  = var.api_target_group_arn == null ? null : 60

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.api[0].id]
    assign_public_ip = false
  }

  dynamic "load_balancer" {
    for_each = var.api_target_group_arn == null ? [] : [var.api_target_group_arn]
    content {
      target_group_arn = load_balancer.value
      container_name   = "api"
      container_port   = var.api_port
    }
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
}
