terraform {
  # same floor as infra/terraform/aws
  required_version = ">= 1.9.0"

  required_providers {
    prefect = {
      source = "prefecthq/prefect"
      # 2.14+: prefect_deployment with concurrency_limit and pull_steps, prefect_deployment_schedule, and
      # prefect_automation with event triggers and run-deployment actions
      version = ">= 2.14.0, < 3.0.0"
    }
  }
}
