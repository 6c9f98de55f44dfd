terraform {
  # 1.9+: variable validations may refer to other variables (cpu/memory pairs, service inputs)
  required_version = ">= 1.9.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.80.0, < 6.0.0"
    }
  }
}
