output "landing_bucket" {
  description = "MLOPS_LANDING_BUCKET: raw batches as delivered."
  value       = aws_s3_bucket.this["landing"].bucket
}

output "lake_bucket" {
  description = "MLOPS_LAKE_BUCKET: curated snapshots, rejected batches, scores."
  value       = aws_s3_bucket.this["lake"].bucket
}

output "mlflow_artifacts_bucket" {
  description = "MLOPS_MLFLOW_BUCKET: MLflow artifacts (the tracking server's --default-artifact-root / --artifacts-destination)."
  value       = aws_s3_bucket.this["mlflow"].bucket
}

output "data_kms_key_arn" {
  description = "KMS key encrypting the buckets and the worker logs."
  value       = aws_kms_key.data.arn
}

output "worker_task_role_arn" {
  description = "Role of the flows (ECS task role; the `task_role_arn` of an ecs work pool; IRSA role of a Kubernetes worker)."
  value       = aws_iam_role.worker_task.arn
}

output "worker_execution_role_arn" {
  description = "ECS execution role (image pull, logs, secret injection)."
  value       = aws_iam_role.worker_execution.arn
}

output "mlflow_server_role_arn" {
  description = "Role of the MLflow tracking server (ECS task role or IRSA)."
  value       = aws_iam_role.mlflow_server.arn
}

output "ecs_cluster_name" {
  description = "ECS cluster of the worker (null when enable_ecs is false)."
  value       = one(aws_ecs_cluster.this[*].name)
}

output "ecs_service_name" {
  description = "ECS service running the worker (null when enable_worker_service is false)."
  value       = one(aws_ecs_service.worker[*].name)
}

output "worker_task_definition_arn" {
  description = "Task definition of the worker, at the image tag it was applied with."
  value       = one(aws_ecs_task_definition.worker[*].arn)
}

output "worker_log_group_name" {
  description = "CloudWatch log group of the worker."
  value       = one(aws_cloudwatch_log_group.worker[*].name)
}

output "worker_security_group_id" {
  description = "Egress-only security group of the worker tasks."
  value       = one(aws_security_group.worker[*].id)
}

output "worker_image" {
  description = "Image the worker runs: repository tagged by git SHA."
  value       = local.worker_image
}

output "worker_environment" {
  description = "Plain environment of the worker and of any flow-run container (the `env` job variable of a work pool). No secrets."
  value       = local.worker_environment
}

output "worker_secret_arns" {
  description = "Environment variables injected from secrets, as name -> ARN (references only, never values)."
  value       = local.worker_secrets
}

output "work_pool_job_variables" {
  description = "Job variables for an `ecs` work pool whose flow runs get the same role, network and environment as this worker."
  value = {
    image              = local.worker_image
    cpu                = var.worker_cpu
    memory             = var.worker_memory
    cluster            = one(aws_ecs_cluster.this[*].arn)
    task_role_arn      = aws_iam_role.worker_task.arn
    execution_role_arn = aws_iam_role.worker_execution.arn
    vpc_id             = var.vpc_id
    network_configuration = {
      subnets        = var.subnet_ids
      securityGroups = aws_security_group.worker[*].id
      assignPublicIp = var.worker_assign_public_ip ? "ENABLED" : "DISABLED"
    }
    env = local.worker_environment
  }
}
