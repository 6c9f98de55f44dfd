output "work_pools" {
  description = "Work pool name -> id."
  value       = { for pool in prefect_work_pool.this : pool.name => pool.id }
}

output "deployments" {
  description = "flow/deployment -> deployment id (the names `prefect deployment run` takes)."
  value       = { for name, deployment in prefect_deployment.this : "${local.deployments[name].flow}/${name}" => deployment.id }
}

output "automations" {
  description = "Automation name -> id (the deployment triggers of prefect.yaml)."
  value       = { for name, automation in prefect_automation.this : name => automation.id }
}

output "notification_automations" {
  description = "Notification automation name -> id (infra/automations/notifications.yaml)."
  value       = { for name, automation in prefect_automation.notify : name => automation.id }
}
