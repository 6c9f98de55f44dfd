# A self-hosted Prefect server (endpoint) or Prefect Cloud (account + workspace). The API key is never a Terraform
# value: for Prefect Cloud the provider reads PREFECT_API_KEY from the environment of whoever runs terraform.
provider "prefect" {
  endpoint     = var.prefect_endpoint
  account_id   = var.prefect_account_id
  workspace_id = var.prefect_workspace_id
}
