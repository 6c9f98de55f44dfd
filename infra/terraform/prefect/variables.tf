variable "prefect_endpoint" {
  description = "Prefect API of a self-hosted server as the provider takes it (its docs: \"http://localhost:4200\"), e.g. http://prefect-server.mlops-prod.svc.cluster.local:4200. null: PREFECT_API_URL from the environment, else Prefect Cloud."
  type        = string
  default     = null

  validation {
    condition     = var.prefect_endpoint == null || can(regex("^https?://[^\\s]+$", var.prefect_endpoint))
    error_message = "prefect_endpoint must be an http(s) URL or null."
  }
}

variable "prefect_account_id" {
  description = "Prefect Cloud account (UUID); null for a self-hosted server."
  type        = string
  default     = null

  validation {
    condition     = var.prefect_account_id == null || can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.prefect_account_id))
    error_message = "prefect_account_id must be a UUID or null."
  }
}

variable "prefect_workspace_id" {
  description = "Prefect Cloud workspace (UUID); null for a self-hosted server."
  type        = string
  default     = null

  validation {
    condition     = var.prefect_workspace_id == null || can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.prefect_workspace_id))
    error_message = "prefect_workspace_id must be a UUID or null."
  }
}

variable "work_pool_types" {
  description = "Work pools to manage, by type: mlops-<type> from infra/work-pools/<type>.json."
  type        = set(string)
  default     = ["process", "docker", "kubernetes", "ecs"]

  validation {
    condition     = length(setsubtract(var.work_pool_types, ["process", "docker", "kubernetes", "ecs"])) == 0
    error_message = "work_pool_types may hold process, docker, kubernetes and ecs only."
  }
}

variable "job_variable_defaults" {
  description = "Per pool type, job-variable defaults set in its template, as `mlops infra apply --set` does: an object given for an object default (env, labels) is merged into it, anything else replaces it. E.g. { kubernetes = { image = \"<registry>/mlops-worker:<git sha>\", namespace = \"mlops-prod\" }, ecs = jsondecode(<terraform output -json work_pool_job_variables of infra/terraform/aws>) }. References only: never a secret value."
  type        = any
  default     = {}

  validation {
    condition     = can(keys(var.job_variable_defaults)) && length(setsubtract(keys(var.job_variable_defaults), ["process", "docker", "kubernetes", "ecs"])) == 0
    error_message = "job_variable_defaults must be an object keyed by pool type (process, docker, kubernetes, ecs)."
  }

  validation {
    condition = alltrue([
      for pool_type, given in var.job_variable_defaults : alltrue([
        for name in keys(try(given.env, {})) :
        !contains(["MLOPS_PII_KEY", "PREFECT_API_KEY", "PREFECT_API_AUTH_STRING"], name) && length(regexall("(?i)password|token", name)) == 0
      ])
    ])
    error_message = "job_variable_defaults: an env holds a secret (MLOPS_PII_KEY, PREFECT_API_KEY, *PASSWORD*, *TOKEN*); flows get secrets at run time, never from a pool."
  }
}

variable "deployment_work_pool" {
  description = "Pool every deployment goes to instead of the one prefect.yaml names (e.g. mlops-kubernetes); null keeps prefect.yaml's."
  type        = string
  default     = null

  validation {
    condition     = var.deployment_work_pool == null || contains(["mlops-process", "mlops-docker", "mlops-kubernetes", "mlops-ecs"], coalesce(var.deployment_work_pool, "-"))
    error_message = "deployment_work_pool must be one of mlops-process, mlops-docker, mlops-kubernetes, mlops-ecs, or null."
  }
}

variable "notification_url" {
  description = "Webhook URL of the notification channel (infra/automations/notifications.yaml): give it as TF_VAR_notification_url from the environment or a secret store, never in a file. null creates no block and no notification automation."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.notification_url == null || can(regex("^https?://[^\\s]+$", coalesce(var.notification_url, "-")))
    error_message = "notification_url must be an http(s) URL or null."
  }
}

variable "notification_type" {
  description = "Notification block type instead of the one notifications.yaml names: custom-webhook, slack-webhook or ms-teams-webhook; null keeps the file's."
  type        = string
  default     = null

  validation {
    condition     = var.notification_type == null || contains(["custom-webhook", "slack-webhook", "ms-teams-webhook"], coalesce(var.notification_type, "-"))
    error_message = "notification_type must be custom-webhook, slack-webhook, ms-teams-webhook or null."
  }
}
