# Real AWS by default. Setting var.aws_endpoint_url (tests: a moto server on 127.0.0.1) sends every service
# used here to that one endpoint and skips the checks that only real AWS can answer.
locals {
  custom_endpoint = var.aws_endpoint_url != null
}

provider "aws" {
  region = var.aws_region

  skip_credentials_validation = local.custom_endpoint
  skip_requesting_account_id  = local.custom_endpoint
  skip_metadata_api_check     = local.custom_endpoint
  skip_region_validation      = local.custom_endpoint
  s3_use_path_style           = local.custom_endpoint

  dynamic "endpoints" {
    for_each = local.custom_endpoint ? [var.aws_endpoint_url] : []
    content {
      ec2            = endpoints.value
      ecs            = endpoints.value
      iam            = endpoints.value
      kms            = endpoints.value
      logs           = endpoints.value
      s3             = endpoints.value
      secretsmanager = endpoints.value
      ssm            = endpoints.value
      sts            = endpoints.value
    }
  }

  default_tags {
    tags = merge(var.tags, {
      Project     = var.name_prefix
      Environment = var.environment
      ManagedBy   = "terraform"
    })
  }
}
