"""Wiring: settings + use case + adapters, chosen by one profile setting. Flows call ``build_context`` first."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from adapters import compute
from adapters.registry import MlflowRegistry
from adapters.secrets import resolve_secret
from adapters.storage import Storage, storage_for
from flows.settings import Settings, load_settings, load_usecase
from tasks.usecase import UseCase


@dataclass(frozen=True)
class Context:
    """What a flow run works with; built once per run, never at import time."""

    settings: Settings
    usecase: UseCase

    def storage(self, uri: str) -> Storage:
        return storage_for(uri, s3_endpoint_url=self.settings.storage.s3_endpoint_url)

    def model_threads(self) -> AbstractContextManager[None]:
        """The thread policy around a model fit or predict: ``with ctx.model_threads(): model.fit(...)``."""
        return compute.model_threads(self.settings.compute.model_threads)

    def pii_key(self, columns: Iterable[str] | None = None) -> bytes | None:
        """The keyed-hash secret, fetched only when the PII policy hashes a column (of ``columns``, if given)."""
        names = self.usecase.pii if columns is None else columns
        if not any(self.usecase.pii.get(name) == "hash" for name in names):
            return None
        ref = self.settings.secrets.pii_key
        return resolve_secret(ref.source, ref.env_var, ref.prefect_block, ref.file)

    def registry(self) -> MlflowRegistry:
        mlflow = self.settings.mlflow
        return MlflowRegistry(
            mlflow.tracking_uri,
            mlflow.artifact_uri,
            http_retries=mlflow.http_retries,
            http_timeout_seconds=mlflow.http_timeout_seconds,
            s3_endpoint_url=self.settings.storage.s3_endpoint_url,
        )

    @property
    def landing_root(self) -> str:
        return f"{self.settings.storage.landing_uri.rstrip('/')}/{self.usecase.name}"

    @property
    def lake_root(self) -> str:
        return f"{self.settings.storage.lake_uri.rstrip('/')}/{self.usecase.name}"


def build_context(profile: str | None = None, usecase: str | None = None) -> Context:
    settings = load_settings(profile)
    return Context(settings=settings, usecase=load_usecase(usecase or settings.usecase))
