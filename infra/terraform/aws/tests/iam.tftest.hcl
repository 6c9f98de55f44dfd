# Least privilege: which role may touch what, and nothing on "*" but the one documented exception.
mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  environment             = "prod"
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

run "worker_reads_landing_writes_lake_and_client_side_artifacts" {
  command = apply

  assert {
    condition = (
      [for s in jsondecode(aws_iam_role_policy.worker_task.policy).Statement : s.Resource if s.Sid == "ReadLandingUseCaseObjects"][0]
      == ["arn:aws:s3:::acme-mlops-prod-landing/uc_a/*"]
    )
    error_message = "the worker reads landing objects of its use cases only"
  }

  assert {
    condition     = !anytrue([for s in jsondecode(aws_iam_role_policy.worker_task.policy).Statement : s.Sid == "WriteLandingUseCaseObjects"])
    error_message = "the worker must not write landing unless allow_worker_landing_writes"
  }

  assert {
    condition = anytrue([for s in jsondecode(aws_iam_role_policy.worker_task.policy).Statement :
      s.Sid == "ReadWriteLakeUseCaseObjects" && s.Resource == ["arn:aws:s3:::acme-mlops-prod-lake/uc_a/*"]
    && contains(flatten([s.Action]), "s3:PutObject") && contains(flatten([s.Action]), "s3:DeleteObject")])
    error_message = "the worker reads and writes lake objects of its use cases"
  }

  assert {
    condition = [for s in jsondecode(aws_iam_role_policy.worker_task.policy).Statement :
      { bucket = s.Resource, prefixes = try(s.Condition.StringLike["s3:prefix"], []) }
      if s.Action == "s3:ListBucket" && s.Resource != "arn:aws:s3:::acme-mlops-prod-mlflow-artifacts"
      ] == [
      { bucket = "arn:aws:s3:::acme-mlops-prod-landing", prefixes = ["uc_a/", "uc_a/*"] },
      { bucket = "arn:aws:s3:::acme-mlops-prod-lake", prefixes = ["uc_a/", "uc_a/*"] },
    ]
    error_message = "listing landing and lake is limited to the use-case prefixes"
  }

  assert {
    condition = anytrue([for s in jsondecode(aws_iam_role_policy.worker_task.policy).Statement :
    s.Sid == "ReadWriteMlflowArtifacts" && s.Resource == "arn:aws:s3:::acme-mlops-prod-mlflow-artifacts/*"])
    error_message = "with client-side artifacts the worker writes the MLflow bucket"
  }

  assert {
    condition = anytrue([for s in jsondecode(aws_iam_role_policy.worker_task.policy).Statement :
      s.Resource == aws_kms_key.data.arn && try(s.Condition.StringEquals["kms:ViaService"], "") == "s3.us-east-1.amazonaws.com"
    && s.Action == ["kms:Decrypt", "kms:GenerateDataKey"]])
    error_message = "the worker may use the data key only through S3"
  }

  assert {
    condition = !anytrue(flatten([for s in jsondecode(aws_iam_role_policy.worker_task.policy).Statement :
    [for r in flatten([s.Resource]) : r == "*" || startswith(r, "arn:aws:s3:::*") || strcontains(r, "secretsmanager") || strcontains(r, ":ssm:")]]))
    error_message = "the worker task role has no wildcard resource and no secret access (ECS injects secrets)"
  }

  assert {
    condition = alltrue(flatten([for s in jsondecode(aws_iam_role_policy.worker_task.policy).Statement :
    [for a in flatten([s.Action]) : startswith(a, "s3:") || startswith(a, "kms:")]]))
    error_message = "the worker task role only holds S3 and KMS actions"
  }
}

run "secrets_are_readable_by_exact_arn_by_the_execution_role_only" {
  command = apply

  variables {
    prefect_api_key_secret_arn      = "arn:aws:ssm:us-east-1:123456789012:parameter/mlops/prefect-api-key"
    worker_image_ecr_repository_arn = "arn:aws:ecr:us-east-1:123456789012:repository/mlops-worker"
  }

  assert {
    condition = anytrue([for s in jsondecode(aws_iam_role_policy.worker_execution.policy).Statement :
      s.Action == "secretsmanager:GetSecretValue"
    && s.Resource == ["arn:aws:secretsmanager:us-east-1:123456789012:secret:mlops/pii-key-AbCdEf"]])
    error_message = "the execution role reads the PII key secret by its ARN"
  }

  assert {
    condition = anytrue([for s in jsondecode(aws_iam_role_policy.worker_execution.policy).Statement :
    s.Action == "ssm:GetParameters" && s.Resource == ["arn:aws:ssm:us-east-1:123456789012:parameter/mlops/prefect-api-key"]])
    error_message = "an SSM parameter ARN gets ssm:GetParameters on that ARN"
  }

  assert {
    condition     = [for s in jsondecode(aws_iam_role_policy.worker_execution.policy).Statement : s.Sid if s.Resource == "*"] == ["EcrLoginHasNoResourceLevelPermission"]
    error_message = "the only '*' resource is ecr:GetAuthorizationToken, which has no resource-level permissions"
  }

  assert {
    condition = anytrue([for s in jsondecode(aws_iam_role_policy.worker_execution.policy).Statement :
    s.Action == ["logs:CreateLogStream", "logs:PutLogEvents"] && s.Resource == "arn:aws:logs:us-east-1:123456789012:log-group:/ecs/acme-mlops-prod-worker:log-stream:*"])
    error_message = "the execution role writes the worker's log group only"
  }
}

run "mlflow_server_role_touches_its_bucket_only" {
  command = apply

  assert {
    condition = toset(flatten([for s in jsondecode(aws_iam_role_policy.mlflow_server.policy).Statement : flatten([s.Resource])])) == toset([
      "arn:aws:s3:::acme-mlops-prod-mlflow-artifacts",
      "arn:aws:s3:::acme-mlops-prod-mlflow-artifacts/*",
      aws_kms_key.data.arn,
    ])
    error_message = "the MLflow server role reaches its artifacts bucket (and the key, through S3) only"
  }
}

run "proxied_artifacts_and_replay_landing_change_the_worker_grants" {
  command = apply

  variables {
    mlflow_artifacts_proxied    = true
    allow_worker_landing_writes = true
  }

  assert {
    condition     = !anytrue([for s in jsondecode(aws_iam_role_policy.worker_task.policy).Statement : strcontains(jsonencode(s.Resource), "mlflow-artifacts")])
    error_message = "with proxied artifacts the worker has no access to the MLflow bucket"
  }

  assert {
    condition = anytrue([for s in jsondecode(aws_iam_role_policy.worker_task.policy).Statement :
    s.Sid == "WriteLandingUseCaseObjects" && s.Resource == ["arn:aws:s3:::acme-mlops-prod-landing/uc_a/*"]])
    error_message = "allow_worker_landing_writes grants landing writes under the use-case prefixes"
  }
}

run "roles_trust_ecs_tasks_of_this_account_and_optionally_one_service_account" {
  command = apply

  variables {
    eks_oidc_provider_arn = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC123"
  }

  assert {
    condition = alltrue([for r in [aws_iam_role.worker_task, aws_iam_role.mlflow_server] : anytrue([
      for s in jsondecode(r.assume_role_policy).Statement :
      s.Principal == { Service = "ecs-tasks.amazonaws.com" } && try(s.Condition.StringEquals["aws:SourceAccount"], "") == "123456789012"
    ])])
    error_message = "the task roles trust ECS tasks of this account only"
  }

  assert {
    condition = anytrue([for s in jsondecode(aws_iam_role.worker_task.assume_role_policy).Statement :
      s.Action == "sts:AssumeRoleWithWebIdentity"
    && try(s.Condition.StringEquals["oidc.eks.us-east-1.amazonaws.com/id/ABC123:sub"], "") == "system:serviceaccount:prefect:prefect-worker"])
    error_message = "IRSA trusts the worker's service account only"
  }

  assert {
    condition = anytrue([for s in jsondecode(aws_iam_role.mlflow_server.assume_role_policy).Statement :
    try(s.Condition.StringEquals["oidc.eks.us-east-1.amazonaws.com/id/ABC123:sub"], "") == "system:serviceaccount:mlflow:mlflow"])
    error_message = "IRSA trusts the MLflow service account for the MLflow role"
  }

  assert {
    condition     = [for s in jsondecode(aws_iam_role.worker_execution.assume_role_policy).Statement : s.Principal] == [{ Service = "ecs-tasks.amazonaws.com" }]
    error_message = "the execution role is for ECS only, never for a pod"
  }
}
