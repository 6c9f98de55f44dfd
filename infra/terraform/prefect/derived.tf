# Values derived from data.tf and infra/work-pools: no resource here, so tests evaluate this file with terraform
# itself (no provider needed) and compare the results with the JSON templates and prefect.yaml.
locals {
  work_pools_dir = "${path.module}/../../work-pools"

  # infra/work-pools/<type>.json with var.job_variable_defaults[<type>] as variable defaults, as `mlops infra apply
  # --set` does: an object given for an object default is merged into it (given keys win), anything else replaces
  # it, and PREFECT_API_URL is dropped from a given env (the worker passes its own)
  work_pool_templates = {
    for pool_type in var.work_pool_types : pool_type => merge(
      jsondecode(file("${local.work_pools_dir}/${pool_type}.json")),
      {
        variables = merge(
          jsondecode(file("${local.work_pools_dir}/${pool_type}.json")).variables,
          {
            properties = {
              for name, prop in jsondecode(file("${local.work_pools_dir}/${pool_type}.json")).variables.properties :
              name => merge(prop, {
                for key, given in { default = try(var.job_variable_defaults[pool_type][name], null) } :
                key => try(merge(prop.default, { for k, v in given : k => v if name != "env" || k != "PREFECT_API_URL" }), given)
                if given != null
              })
            }
          },
        )
      },
    )
  }

  # one prefect_deployment_schedule per schedule of a deployment
  schedules = merge([
    for name, deployment in local.deployments : {
      for index, schedule in deployment.schedules : "${name}/${index}" => merge(schedule, { deployment = name })
    }
  ]...)

  # one automation per deployment trigger, named as `prefect deploy` names them (<deployment>__automation_<n>)
  automations = merge([
    for name, deployment in local.deployments : {
      for index, trigger in deployment.triggers : "${name}__automation_${index + 1}" => merge(trigger, { deployment = name })
    }
  ]...)
}
