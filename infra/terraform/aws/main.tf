data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  name       = "${var.name_prefix}-${var.environment}"
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = var.aws_region

  # The app keeps each use case under <bucket>/<usecase>/ (flows/context.py): these prefixes scope the worker.
  usecase_prefixes = [for u in var.usecases : "${u}/"]

  # Quarantined rows of scoring and rejected ingest batches are evidence, not data: they expire.
  # (A snapshot's own quarantine.parquet stays with its snapshot: it is part of that version's lineage.)
  quarantine_prefixes = flatten([for u in var.usecases : ["${u}/scores/_quarantine/", "${u}/rejected/"]])

  worker_name = "${local.name}-worker"
}
