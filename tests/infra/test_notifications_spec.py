"""infra/automations/notifications.yaml: valid as Prefect takes it, and bad declarations refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ops.notifications import NOTIFICATIONS_FILE, block_data, load_spec
from tasks.errors import ConfigError

SITUATIONS = {
    "prefect.flow-run.Failed", "prefect.flow-run.Crashed", "mlops.drift.detected", "mlops.performance.degraded",
    "mlops.contract.violated", "mlops.model.promoted", "mlops.model.rolled_back", "mlops.gate.rejected",
    "mlops.approval.requested",
}  # fmt: skip


def test_every_situation_has_an_automation():
    expected = {e for a in load_spec().automations for e in a.trigger.expect}
    assert expected == SITUATIONS


def test_no_url_or_credential_is_in_the_file():
    text = NOTIFICATIONS_FILE.read_text()
    assert "hooks.slack.com/services/" not in text and "://" not in text.split("automations:")[0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["automations"][0].pop("trigger"), "automations.0.trigger: Field required"),
        (lambda d: d["automations"][0].update(name="Failed runs"), "automations.0.name: String should match"),
        (lambda d: d["automations"][1].update(name=d["automations"][0]["name"]), "automation names repeat"),
        (lambda d: d["automations"][0].update(body="{% for x in %}"), "is not a valid template"),
        (lambda d: d["channel"].update(type="pager"), "channel.type: Input should be"),
        (lambda d: d["channel"].update(url="https://hooks.example.com"), "channel.url: Extra inputs"),
    ],
)
def test_a_bad_declaration_is_named(tmp_path: Path, change, message):
    data = yaml.safe_load(NOTIFICATIONS_FILE.read_text())
    change(data)
    path = tmp_path / "notifications.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"notifications\.yaml") as refused:
        load_spec(path)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_the_url_is_kept_as_a_secret_value():
    channel = load_spec().channel
    webhook = block_data(channel, "https://hooks.example.com/x")
    assert webhook["url"] == "{{url}}" and webhook["secrets"] == {"url": "https://hooks.example.com/x"}
    assert block_data(channel, "https://hooks.example.com/x", "slack-webhook") == {"url": "https://hooks.example.com/x"}
    with pytest.raises(ConfigError, match="unknown notification block type 'pager'"):
        block_data(channel, "https://hooks.example.com/x", "pager")
