# The notification block and the automations that send through it (infra/automations/notifications.yaml), the
# same state `mlops infra apply` produces. Nothing is created while var.notification_url is null.

resource "prefect_block" "notify" {
  count = local.notify ? 1 : 0

  name      = local.notifications.channel.block
  type_slug = local.notification_type
  data      = jsonencode(local.notification_block_data[local.notification_type])
}

resource "prefect_automation" "notify" {
  for_each = local.notification_automations

  name        = each.key
  description = each.value.description
  enabled     = each.value.enabled

  trigger = {
    event = {
      posture       = each.value.trigger.posture
      match         = jsonencode(each.value.trigger.match)
      match_related = jsonencode(try(each.value.trigger.match_related, {}))
      expect        = each.value.trigger.expect
      for_each      = each.value.trigger.for_each
      threshold     = each.value.trigger.threshold
      within        = each.value.trigger.within
    }
  }

  actions = [
    {
      type              = "send-notification"
      block_document_id = prefect_block.notify[0].id
      subject           = each.value.subject
      body              = each.value.body
    },
  ]
}
