"""Notifications as code: the block and automations of infra/automations/notifications.yaml on a Prefect API.

``apply_notifications`` saves the notification block (its URL from the environment or a Prefect Secret block,
never from a file) and creates, updates or deletes the automations so the server holds exactly what the file
declares; applying twice reports everything ``unchanged``. infra/terraform/prefect reads the same file, and
``block_data`` / ``automation_payload`` are what both send (tests compare them with Terraform's evaluation).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flows.settings import REPO_ROOT
from tasks.errors import ConfigError, MlopsError

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

NOTIFICATIONS_FILE = REPO_ROOT / "infra" / "automations" / "notifications.yaml"
MANAGED_TAG = "mlops-notify"
TYPE_ENV = "MLOPS_NOTIFY_TYPE"
BLOCK_TYPES = ("custom-webhook", "slack-webhook", "ms-teams-webhook")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CustomWebhook(_Strict):
    method: Literal["GET", "POST", "PUT", "PATCH"] = "POST"
    headers: dict[str, str] = {}
    json_data: dict[str, Any] = Field(min_length=1)


class Channel(_Strict):
    block: str = Field(min_length=1)
    type: Literal["custom-webhook", "slack-webhook", "ms-teams-webhook"]
    url_env: str = Field(min_length=1)
    url_block: str = Field(min_length=1)  # name of the Prefect Secret block holding the URL (never the URL)
    custom_webhook: CustomWebhook


class Trigger(_Strict):
    posture: Literal["Reactive"] = "Reactive"
    match: dict[str, str | list[str]]
    match_related: dict[str, str | list[str]] = {}
    expect: list[str] = Field(min_length=1)
    for_each: list[str] = []
    threshold: int = Field(default=1, ge=1)
    within: int = Field(ge=0)


class AutomationSpec(_Strict):
    name: str = Field(pattern=r"^mlops-notify-[a-z0-9-]+$")
    description: str
    enabled: bool = True
    trigger: Trigger
    subject: str = Field(min_length=1)
    body: str = Field(min_length=1)


class NotificationSpec(_Strict):
    channel: Channel
    automations: list[AutomationSpec] = Field(min_length=1)


def load_spec(path: Path = NOTIFICATIONS_FILE) -> NotificationSpec:
    """The declared channel and automations; every trigger and template checked as Prefect would.

    Raises:
        ConfigError: the file is unreadable, a field is missing or unknown, a name repeats, a trigger or template
            is refused.
    """
    try:
        spec = NotificationSpec.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path.name}: {exc}") from None
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        raise ConfigError(f"{path.name}: {where}: {error['msg']}") from None
    names = [a.name for a in spec.automations]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"{path.name}: automation names repeat: {', '.join(repeated)}")
    for automation in spec.automations:
        _check_templates(path, automation)
        try:
            automation_core(automation, UUID(int=0))
        except (ValidationError, ValueError) as exc:
            raise ConfigError(f"{path.name}: automation {automation.name}: {str(exc).splitlines()[0]}") from None
    return spec


def _check_templates(path: Path, automation: AutomationSpec) -> None:
    """The server renders subject and body with Jinja: a syntax error is refused here, not at the first event."""
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import SandboxedEnvironment

    for field in ("subject", "body"):
        try:
            SandboxedEnvironment().parse(getattr(automation, field))
        except TemplateSyntaxError as exc:
            raise ConfigError(
                f"{path.name}: automation {automation.name}: {field} is not a valid template: {exc.message} "
                f"(line {exc.lineno})"
            ) from None


def block_data(channel: Channel, url: str, block_type: str | None = None) -> dict[str, Any]:
    """The notification block's fields for ``block_type`` (default: the channel's), the URL as its secret value."""
    kind = block_type or channel.type
    if kind == "custom-webhook":
        hook = channel.custom_webhook
        # the URL is a secret value substituted at send time: the block's plain fields never show it
        return {
            "name": channel.block,
            "url": "{{url}}",
            "method": hook.method,
            "headers": dict(hook.headers),
            "json_data": dict(hook.json_data),
            "secrets": {"url": url},
        }
    if kind in ("slack-webhook", "ms-teams-webhook"):
        return {"url": url}
    raise ConfigError(f"unknown notification block type '{kind}' (known: {', '.join(BLOCK_TYPES)})")


def automation_payload(automation: AutomationSpec, block_document_id: UUID) -> dict[str, Any]:
    """The automation as the Prefect API takes it (JSON), sending through the block ``block_document_id``."""
    return automation_core(automation, block_document_id).model_dump(mode="json")


def automation_core(automation: AutomationSpec, block_document_id: UUID) -> Any:
    from datetime import timedelta

    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    t = automation.trigger
    trigger = EventTrigger(
        posture=Posture(t.posture),
        match=dict(t.match),
        match_related=dict(t.match_related),
        expect=set(t.expect),
        for_each=set(t.for_each),
        threshold=t.threshold,
        within=timedelta(seconds=t.within),
    )
    action = SendNotification(block_document_id=block_document_id, subject=automation.subject, body=automation.body)
    return AutomationCore(
        name=automation.name,
        description=automation.description,
        enabled=automation.enabled,
        tags=[MANAGED_TAG],
        trigger=trigger,
        actions=[action],
    )


def resolve_url(channel: Channel) -> str | None:
    """The channel's URL: the environment variable, else the Prefect Secret block; None when neither is set."""
    from_env = os.environ.get(channel.url_env, "").strip()
    if from_env:
        return from_env
    from prefect.blocks.system import Secret

    try:
        secret = Secret.load(channel.url_block)
    except ValueError:  # no such block document
        return None
    value = secret.get()
    return str(value).strip() or None


def apply_notifications(api_url: str, path: Path = NOTIFICATIONS_FILE, *, required: bool = False) -> dict[str, str]:
    """Save the block and make the server's mlops-notify automations exactly the declared ones.

    Returns ``block <name>`` / ``automation <name>`` → ``created`` / ``updated`` / ``unchanged`` / ``deleted``,
    or one ``skipped: ...`` entry when no URL is configured and ``required`` is False.

    Raises:
        MlopsError: no URL while ``required``; the server refused the block or an automation.
    """
    from ops.infra import _api  # one way to point the client at an API

    spec = load_spec(path)
    channel = spec.channel
    block_type = os.environ.get(TYPE_ENV, "").strip() or channel.type
    with _api(api_url):
        url = resolve_url(channel)
        if url is None:
            where = f"set {channel.url_env} or the Prefect Secret block '{channel.url_block}'"
            if required:
                raise MlopsError(f"no notification URL for block '{channel.block}': {where}")
            return {f"block {channel.block}": f"skipped: no URL ({where})"}
        outcome, block_id = _apply_block(channel, block_type, url)
        report = {f"block {channel.block}": outcome}
        report |= _apply_automations(spec.automations, block_id)
    return report


def _apply_block(channel: Channel, block_type: str, url: str) -> tuple[str, UUID]:
    from prefect.blocks.core import Block

    data = block_data(channel, url, block_type)
    cls = Block.get_block_class_from_key(block_type)
    try:
        stored = cls.load(channel.block)
    except ValueError:
        stored = None
    wanted = cls(**data)
    if stored is not None and type(stored) is cls and _block_values(stored) == _block_values(wanted):
        return "unchanged", stored._block_document_id
    try:
        block_id = wanted.save(channel.block, overwrite=True)
    except Exception as exc:  # the API's refusal, whatever its type
        raise MlopsError(f"notification block '{channel.block}' refused: {str(exc).splitlines()[0]}") from None
    return ("created" if stored is None else "updated"), block_id


def _block_values(block: Any) -> dict[str, Any]:
    """Field values with secrets revealed, to compare a stored block with the wanted one."""
    values = {}
    for name in type(block).model_fields:
        value = getattr(block, name)
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        values[name] = value
    return values


def _apply_automations(declared: list[AutomationSpec], block_id: UUID) -> dict[str, str]:
    from prefect.client.orchestration import get_client

    report: dict[str, str] = {}
    with get_client(sync_client=True) as client:
        held = {a.name: a for a in client.read_automations() if MANAGED_TAG in (a.tags or [])}
        for automation in declared:
            report[f"automation {automation.name}"] = _apply_automation(client, automation, block_id, held)
        for name, stale in sorted(held.items()):
            if name not in {a.name for a in declared}:
                client.delete_automation(stale.id)
                report[f"automation {name}"] = "deleted"
    return report


def _apply_automation(client: SyncPrefectClient, automation: AutomationSpec, block_id: UUID, held: dict) -> str:
    core = automation_core(automation, block_id)
    existing = held.get(automation.name)
    if existing is None:
        client.create_automation(core)
        return "created"
    fields = set(type(core).model_fields)
    if existing.model_dump(mode="json", include=fields) == core.model_dump(mode="json"):
        return "unchanged"
    client.update_automation(existing.id, core)
    return "updated"
