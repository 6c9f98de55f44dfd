# Work pools, deployments, schedules and the deployments' event triggers (automations) on a Prefect API: the same
# state `mlops infra apply` (ops/infra.py: pools from infra/work-pools, then `prefect deploy --all`) produces.

resource "prefect_work_pool" "this" {
  for_each = local.work_pool_templates

  name              = "mlops-${each.key}"
  type              = each.key
  paused            = false
  base_job_template = jsonencode(each.value)
}

resource "prefect_flow" "this" {
  for_each = toset([for deployment in local.deployments : deployment.flow])

  name = each.key
}

resource "prefect_deployment" "this" {
  for_each = local.deployments

  name                     = each.key
  flow_id                  = prefect_flow.this[each.value.flow].id
  description              = each.value.description
  entrypoint               = each.value.entrypoint
  work_pool_name           = coalesce(var.deployment_work_pool, each.value.work_pool)
  work_queue_name          = each.value.work_queue
  tags                     = each.value.tags
  parameters               = jsonencode(each.value.parameters)
  concurrency_limit        = each.value.concurrency_limit
  enforce_parameter_schema = true
  pull_steps               = local.pull_steps

  # the pool must exist before a deployment names it (when this configuration manages that pool)
  depends_on = [prefect_work_pool.this]
}

resource "prefect_deployment_schedule" "this" {
  for_each = local.schedules

  deployment_id = prefect_deployment.this[each.value.deployment].id
  active        = true
  cron          = each.value.cron
  timezone      = each.value.timezone
}

resource "prefect_automation" "this" {
  for_each = local.automations

  name        = each.key
  description = "Runs deployment ${each.value.deployment} on ${join(", ", each.value.expect)} (prefect.yaml trigger)"
  enabled     = each.value.enabled

  trigger = {
    event = {
      posture       = each.value.posture
      match         = jsonencode(each.value.match)
      match_related = jsonencode(try(each.value.match_related, {}))
      expect        = each.value.expect
      for_each      = each.value.for_each
      threshold     = each.value.threshold
      within        = each.value.within
    }
  }

  actions = [
    {
      type          = "run-deployment"
      source        = "selected"
      deployment_id = prefect_deployment.this[each.value.deployment].id
      parameters    = jsonencode(each.value.parameters)
    },
  ]
}
