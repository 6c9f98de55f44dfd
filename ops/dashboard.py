"""Wiring of the monitoring dashboard: which use cases, where their results are, what the registry knows.

The service (services/dashboard.py) only gets two callables; this module builds them from the config profile,
so the dashboard reads exactly what the flows of that profile write (local folder or S3, SQLite or server
MLflow).
"""

from __future__ import annotations

import os
from functools import cache

from adapters import monitoring_store
from flows.context import Context, build_context
from flows.settings import config_dir
from tasks.dashboard import Bundle
from tasks.errors import MlopsError


def usecase_names() -> list[str]:
    """Every use case in config/usecases/ (the default one first)."""
    return sorted(p.stem for p in (config_dir() / "usecases").glob("*.yaml"))


def prefect_ui_url() -> str | None:
    """Where the Prefect UI of this environment is (for flow-run links), if one is configured."""
    from prefect.settings import PREFECT_UI_URL

    return os.environ.get("PREFECT_UI_URL") or PREFECT_UI_URL.value() or None


class Loader:
    """``load(usecase) -> Bundle`` and ``report(usecase, version, window) -> bytes`` for one config profile."""

    def __init__(self, profile: str | None) -> None:
        self.profile = profile
        self.prefect_ui = prefect_ui_url()

    @cache  # noqa: B019 - one context per use case for the life of the process; the loader lives as long
    def context(self, usecase: str) -> Context:
        return build_context(self.profile, usecase)

    def load(self, usecase: str) -> Bundle:
        ctx = self.context(usecase)
        storage, lake, uc = ctx.storage(ctx.lake_root), ctx.lake_root, ctx.usecase
        registry = ctx.registry()
        versions = []
        for v in registry.list_versions(uc.registered_model):
            run = registry.run_summary(v.run_id) if v.run_id else {"tags": {}, "experiment_id": None}
            versions.append(
                {
                    "version": v.version,
                    "periods": run["tags"].get("periods", ""),
                    "gate_outcome": v.tags.get("gate.outcome"),
                    "gate_reasons": v.tags.get("gate.reasons"),
                    "run_url": registry.run_url(run["experiment_id"], v.run_id) if run["experiment_id"] else None,
                }
            )
        moves = [
            {
                "at": m.at,
                "alias": m.alias,
                "from_version": m.from_version,
                "to_version": m.to_version,
                "reason": m.reason,
            }
            for m in registry.alias_history(uc.registered_model)
        ]
        return Bundle(
            usecase=uc.name,
            manifests=monitoring_store.scoring_manifests(storage, lake),
            drift=monitoring_store.check_results(storage, lake, "drift"),
            performance=monitoring_store.check_results(storage, lake, "performance"),
            versions=versions,
            alias_moves=moves,
            value_unit=None if uc.value is None else uc.value.unit,
            metric="roc_auc",
            links={"prefect_ui": self.prefect_ui or ""},
        )

    def report(self, usecase: str, version: str, window: str) -> bytes:
        ctx = self.context(usecase)
        try:
            return monitoring_store.read_report(ctx.storage(ctx.lake_root), ctx.lake_root, version, window)
        except (MlopsError, ValueError) as exc:
            raise MlopsError(f"no drift report for {usecase} version {version} window {window}: {exc}") from None
