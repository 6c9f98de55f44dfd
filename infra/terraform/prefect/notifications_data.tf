# infra/automations/notifications.yaml, read as it is (the file `mlops infra apply` applies, ops/notifications.py):
# no copy to keep in step. No resource here, so tests evaluate this file with terraform itself and compare the
# result with what ops/notifications.py sends to the Prefect API.
locals {
  notifications = yamldecode(file("${path.module}/../../automations/notifications.yaml"))

  notification_type = coalesce(var.notification_type, local.notifications.channel.type)
  # whether a URL is given is no secret (the URL is): for_each and count may not depend on a sensitive value
  notify = nonsensitive(var.notification_url != null)

  # the notification block's fields per block type, as ops.notifications.block_data builds them: a custom webhook
  # keeps the URL as a secret value it substitutes at send time, the Slack and Teams blocks store it as a secret
  notification_block_data = {
    "custom-webhook" = {
      name      = local.notifications.channel.block
      url       = "{{url}}"
      method    = local.notifications.channel.custom_webhook.method
      headers   = local.notifications.channel.custom_webhook.headers
      json_data = local.notifications.channel.custom_webhook.json_data
      secrets   = { url = var.notification_url }
    }
    "slack-webhook"    = { url = var.notification_url }
    "ms-teams-webhook" = { url = var.notification_url }
  }

  # one automation per entry, keyed by its name; none without a URL to send to
  notification_automations = {
    for automation in local.notifications.automations : automation.name => automation if local.notify
  }
}
