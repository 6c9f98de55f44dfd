"""The model registry: the only module that talks to MLflow (tracking runs, registered models, aliases).

Flows hand each other references (``models:/<name>@champion``, run ids); this adapter turns them into
MLflow calls and MLflow's failures into ``RegistryError`` / ``RegistryUnavailable`` with one-line messages.

**Serialization and trust.** Models are stored with MLflow's sklearn flavor in the *skops* format, never as
pickles: loading a pickle runs whatever code the file names. skops only builds objects of types it is told
to trust, so the allow-list is ours, derived when the model is logged and checked again when it is loaded:

* skops' own defaults (builtins containers, numpy arrays/dtypes/ufuncs, most sklearn estimators) are trusted;
* every other type the file names must be a *class* under ``sklearn.`` (e.g. the tree predictor of
  ``HistGradientBoostingClassifier``), or anything under ``tasks.`` (this project's own, reviewed code);
* anything else (a lambda, a class from a notebook or test module, ``builtins.eval``, ``numpy.load``) makes
  ``log_training_run`` refuse the model with ``UntrustedModelError`` naming the types.

``load_model`` does not use the allow-list MLflow writes into the model's ``MLmodel`` file (a tampered model
could list anything there): it reads the types from the downloaded ``.skops`` file itself and applies the
same rule. Models in the pickle/cloudpickle formats are refused. Whoever can write to the artifact store can
still replace a model with another *allow-listed* one: the store must be writable only by the training flow.
(``mlflow.pyfunc.load_model`` elsewhere would trust the ``MLmodel`` list; consumers use ``load_model`` here.)

**MLflow's global state, contained.** Registry and run operations use an ``MlflowClient`` bound to this
instance's URIs. Two things are process-global in MLflow: the HTTP retry/timeout settings (read from
``MLFLOW_HTTP_REQUEST_*`` environment variables at each request) and the fluent tracking URI, which
``mlflow.sklearn.log_model`` needs (it has no client form). Every call into MLflow therefore runs in
``_scope``: under one process-wide lock it sets those variables (and, for model logging only, the fluent
tracking URI and an active run in the calling thread), then restores the previous values. MLflow calls from
this module are thus serialized within a process; other code must not use MLflow's fluent API concurrently.

**Alias history** is kept as registered-model tags ``alias_history.<6-digit seq>`` holding compact JSON
(at most 5000 characters: the tag column's size): it lives in the same store as the aliases, needs no
artifact store (registered models have none), survives restarts and is read with the model in one call; an
append-only file in an artifact store would need a non-atomic read-modify-write on S3.

**Every alias move and every registration holds the model's registry lock** (``adapters.registry_lock``: a
lease kept in MLflow itself, so processes on different machines exclude each other too). Under it a move
reads the alias, checks the caller's expectation (compare-and-swap: ``expected=`` the version the caller
judged against, ``None`` for "no alias yet"; ``AliasConflict`` otherwise), moves, and appends the next
sequence number: no two writers pick the same one, so no entry is lost. A move to the version the alias
already points at is no move and records nothing, except to fill in the entry a crash between move and
record left out (the last recorded move of that alias ends elsewhere).

Environment: ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` / ``MLFLOW_HTTP_REQUEST_TIMEOUT`` come from the constructor
(``http_retries`` / ``http_timeout_seconds``) for the duration of each call, whatever the process has set.
S3 artifact stores use the usual AWS variables; ``s3_endpoint_url`` sets ``MLFLOW_S3_ENDPOINT_URL`` per call.
"""

from __future__ import annotations

import getpass
import importlib
import json
import os
import re
import tempfile
import threading
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from adapters import registry_lock
from adapters.storage import S3_MAX_ATTEMPTS
from tasks.errors import (
    AliasConflict,
    ConfigError,
    MlopsError,
    RegistryError,
    RegistryUnavailable,
    UntrustedModelError,
)

if TYPE_CHECKING:  # mlflow, pandas and skops load lazily: the CLI should start fast
    import pandas as pd
    from mlflow import MlflowClient

MODEL_NAME_IN_RUN = "model"  # the logged model's name inside a run (``name=`` of log_model)
HISTORY_TAG_PREFIX = "alias_history."
TRUSTED_CLASS_PREFIXES = ("sklearn.",)  # classes only: a function here could be called on data at predict
TRUSTED_CODE_PREFIXES = ("tasks.",)  # this project's own code: classes and functions
_MAX_REGISTRY_TAG_VALUE = 5000  # registered_model_tags.value is VARCHAR(5000) in MLflow's SQL schema
_MAX_DATASET_DIGEST = 36  # MLflow's limit; the full digest goes into an input tag
_BATCH = 100  # MLflow accepts at most 100 params or tags per log_batch call
_NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"
_ALREADY_EXISTS = ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS")
_MLFLOW_LOCK = threading.RLock()  # see "MLflow's global state, contained" above
ANY_VERSION = "*"  # ``expected`` of an unconditional alias move


@dataclass(frozen=True)
class DatasetRef:
    """A dataset a run used, by reference: the data itself is never uploaded."""

    name: str
    uri: str
    digest: str
    rows: int
    context: str  # "training", "validation" or "holdout"


@dataclass(frozen=True)
class TrainingRun:
    """A finished training run and its logged model (``model_uri`` is ``models:/<model id>``)."""

    run_id: str
    experiment_id: str
    model_uri: str
    run_url: str | None


@dataclass(frozen=True)
class VersionRef:
    """One version of a registered model."""

    name: str
    version: str
    run_id: str
    tags: dict[str, str]
    aliases: tuple[str, ...]


@dataclass(frozen=True)
class AliasMove:
    """One move of an alias, as recorded in the model's alias history."""

    at: str  # ISO 8601, UTC
    alias: str
    from_version: str | None
    to_version: str | None
    reason: str
    flow_run_id: str | None
    actor: str
    approval: dict[str, str] | None = None  # approval mode: who approved, when, and their comment


class MlflowRegistry:
    """Runs, models, versions and aliases in one MLflow tracking server / registry.

    Args:
        tracking_uri: absolute URI: ``sqlite:////abs/path.db``, ``http(s)://host:port``, ``postgresql+...://``.
        artifact_uri: where new experiments keep their artifacts (absolute folder, ``file://`` or ``s3://``),
            as ``<artifact_uri>/<experiment>``; existing experiments keep theirs. None leaves it to the
            tracking server (which then proxies artifacts: clients need no S3 credentials) or MLflow's default.
        http_retries: retries of a failed HTTP request to the tracking server (MLflow's default is 7, with
            exponential backoff: minutes before a dead server is reported).
        http_timeout_seconds: timeout of one HTTP request to the tracking server.
        s3_endpoint_url: S3 API address for ``s3://`` artifacts (moto, MinIO); None for AWS itself.
        actor: who moves aliases, as recorded in the history; None means the OS user name.
        lock_lease_seconds: how long a registry lock stays valid if its holder dies without releasing it.
        lock_wait_seconds: how long to wait for another holder before giving up with ``RegistryBusy``.
    """

    def __init__(
        self,
        tracking_uri: str,
        artifact_uri: str | None = None,
        *,
        http_retries: int = 2,
        http_timeout_seconds: int = 30,
        s3_endpoint_url: str | None = None,
        actor: str | None = None,
        lock_lease_seconds: float = 30.0,
        lock_wait_seconds: float = 300.0,
    ) -> None:
        self.tracking_uri = _checked_tracking_uri(tracking_uri)
        self.artifact_uri = _checked_artifact_uri(artifact_uri) if artifact_uri is not None else None
        if http_retries < 0 or http_timeout_seconds <= 0:
            raise ConfigError("http_retries must be >= 0 and http_timeout_seconds > 0")
        self.http_retries, self.http_timeout_seconds = http_retries, http_timeout_seconds
        self.s3_endpoint_url = s3_endpoint_url
        self.actor = actor or _os_user()
        self.lock_lease_seconds, self.lock_wait_seconds = lock_lease_seconds, lock_wait_seconds
        self._client: MlflowClient | None = None
        self._holder: str | None = None
        self._held: set[str] = set()

    def __repr__(self) -> str:
        return f"MlflowRegistry({_redact(self.tracking_uri)!r})"

    def __getstate__(self) -> dict[str, Any]:
        # The client holds connections; a copy in another process builds its own.
        return {**self.__dict__, "_client": None, "_holder": None, "_held": set()}

    # --- runs ------------------------------------------------------------------------------------------

    def log_training_run(
        self,
        *,
        experiment: str,
        run_name: str,
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
        tags: Mapping[str, str],
        model: Any,
        input_example: pd.DataFrame,
        datasets: list[DatasetRef],
        artifacts: Mapping[str, bytes],
        pip_requirements: list[str],
    ) -> TrainingRun:
        """Log a finished training run: params, metrics, tags, dataset references, artifacts, the model.

        The model (a fitted sklearn Pipeline with ``predict_proba``) is stored in skops format with a
        signature inferred from ``input_example`` and its ``predict_proba`` output; pyfunc consumers get
        probabilities. Datasets are logged as references (URI, name, digest, row count, context) with the
        schema of ``input_example``: no data rows are uploaded.

        Raises:
            UntrustedModelError: the model holds a type outside the allow-list (see module docstring).
            RegistryUnavailable: the tracking server cannot be reached.
            RegistryError: MLflow refused a value or the experiment is deleted.
        """
        trusted = _vetted_types(_untrusted_types_of(model))  # refuse before anything is written
        files = {_checked_artifact_path(path): data for path, data in artifacts.items()}
        signature = _infer_signature(model, input_example)
        with self._new_run(experiment, run_name, tags) as (client, experiment_id, run_id):
            self._log_values(client, run_id, params=params, metrics=metrics)
            client.log_inputs(run_id, datasets=[_dataset_input(d, input_example) for d in datasets])
            self._log_files(client, run_id, files)
            model_uri = self._log_model(run_id, model, input_example, signature, trusted, pip_requirements)
        return TrainingRun(run_id, experiment_id, model_uri, self.run_url(experiment_id, run_id))

    def log_metrics_run(
        self,
        *,
        experiment: str,
        run_name: str,
        metrics: Mapping[str, float],
        tags: Mapping[str, str],
        artifacts: Mapping[str, bytes],
    ) -> str:
        """Log a finished run without a model (an evaluation, a monitoring window) and return its id."""
        files = {_checked_artifact_path(path): data for path, data in artifacts.items()}
        with self._new_run(experiment, run_name, tags) as (client, _, run_id):
            from mlflow.entities import RunStatus

            self._log_values(client, run_id, params={}, metrics=metrics)
            self._log_files(client, run_id, files)
            client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
        return run_id

    @contextmanager
    def _new_run(self, experiment: str, run_name: str, tags: Mapping[str, str]) -> Iterator[tuple[Any, str, str]]:
        """A new run in ``experiment`` (created if missing), marked FAILED if the block raises."""
        with self._scope(f"log run {run_name!r} in experiment {experiment!r}"):
            from mlflow.entities import RunStatus

            client = self._mlflow()
            experiment_id = self._experiment_id(client, experiment)
            run_id = client.create_run(experiment_id, run_name=run_name, tags=dict(tags)).info.run_id
            try:
                yield client, experiment_id, run_id
            except BaseException:
                with suppress(Exception):  # the original failure is the one to report
                    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
                raise

    def run_summary(self, run_id: str) -> dict[str, Any]:
        """Return a run's name, experiment, status, params, metrics (latest values) and tags."""
        with self._scope(f"read run {run_id}"):
            run = self._mlflow().get_run(run_id)
        return {
            "run_id": run.info.run_id,
            "run_name": run.info.run_name,
            "experiment_id": run.info.experiment_id,
            "status": run.info.status,
            "params": dict(run.data.params),
            "metrics": dict(run.data.metrics),
            "tags": dict(run.data.tags),
        }

    def training_run(self, run_id: str) -> TrainingRun:
        """The training run ``run_id`` with the URI of the model it logged.

        Raises:
            RegistryError: the run does not exist or logged no model.
        """
        with self._scope(f"read run {run_id}"):
            run = self._mlflow().get_run(run_id)
        outputs = run.outputs.model_outputs if run.outputs else []
        if not outputs:
            raise RegistryError(f"run {run_id} logged no model: is it a training run?")
        experiment_id = run.info.experiment_id
        return TrainingRun(
            run_id, experiment_id, f"models:/{outputs[-1].model_id}", self.run_url(experiment_id, run_id)
        )

    def read_run_artifact(self, run_id: str, path: str) -> bytes:
        """Return the content of one artifact file of a run; RegistryError if it does not exist."""
        path = _checked_artifact_path(path)
        with self._scope(f"read artifact {path!r} of run {run_id}"), tempfile.TemporaryDirectory() as tmp:
            try:
                local = self._mlflow().download_artifacts(run_id, path, dst_path=tmp)
                return Path(local).read_bytes()
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                raise RegistryError(f"no artifact file {path!r} in run {run_id}") from None

    def log_run_artifact(self, run_id: str, path: str, data: bytes) -> None:
        """Write one artifact file into a run (finished or not), replacing a file of the same path."""
        path = _checked_artifact_path(path)
        with self._scope(f"write artifact {path!r} to run {run_id}"):
            self._log_files(self._mlflow(), run_id, {path: data})

    # --- registered models, versions, aliases ----------------------------------------------------------

    def register_version(self, name: str, run: TrainingRun, tags: Mapping[str, str]) -> VersionRef:
        """Register the run's model as a version of ``name`` (created if missing) and set ``tags`` on it.

        Idempotent: if a version of ``name`` already comes from ``run.run_id``, that version is returned
        (with ``tags`` set) instead of a duplicate, also when two processes register the same run at once
        (both hold the model's registry lock in turn).
        """
        model_id = _model_id(run.model_uri)
        with self._scope(f"register run {run.run_id} as model {name!r}"), self._locked(name):
            client = self._mlflow()
            try:
                client.create_registered_model(name)
            except _mlflow_exception() as exc:
                if exc.error_code not in _ALREADY_EXISTS:
                    raise
            same_run = [v for v in client.search_model_versions(f"run_id='{run.run_id}'") if v.name == name]
            if same_run:
                version = min(same_run, key=lambda v: int(v.version)).version
                for key, value in tags.items():
                    client.set_model_version_tag(name, version, key, value)
            else:  # the source is the storage location: given "models:/<id>", a SQL registry would look the
                # logged model up through MLflow's *global* tracking URI (a TODO in MLflow's SqlAlchemyStore)
                source = client.get_logged_model(model_id).artifact_location
                version = client.create_model_version(
                    name, source=source, run_id=run.run_id, tags=dict(tags), model_id=model_id
                ).version
            return _version_ref(client.get_model_version(name, str(version)))

    def find_training_runs(self, experiment: str, tags: Mapping[str, str]) -> list[str]:
        """Ids of the finished runs of ``experiment`` carrying every tag in ``tags``, newest first."""
        with self._scope(f"search runs of experiment {experiment!r}"):
            client = self._mlflow()
            found = client.get_experiment_by_name(experiment)
            if found is None:
                return []
            clauses = [f"tags.`{k}` = '{_quoted(v)}'" for k, v in tags.items()]
            runs = client.search_runs(
                [found.experiment_id],
                filter_string=" and ".join([*clauses, "attributes.status = 'FINISHED'"]),
                order_by=["attributes.start_time DESC"],
                max_results=50,
            )
        return [r.info.run_id for r in runs]

    def version_of_run(self, name: str, run_id: str) -> VersionRef | None:
        """The (first) version of ``name`` registered from ``run_id``, if any."""
        with self._scope(f"find the version of {name!r} from run {run_id}"):
            versions = [v for v in self._mlflow().search_model_versions(f"run_id='{run_id}'") if v.name == name]
        return _version_ref(min(versions, key=lambda v: int(v.version))) if versions else None

    def list_versions(self, name: str) -> list[VersionRef]:
        """Every version of a registered model, oldest first; [] when the model does not exist."""
        with self._scope(f"list versions of model {name!r}"):
            found = self._mlflow().search_model_versions(f"name='{_quoted(name)}'")
        return sorted((_version_ref(v) for v in found), key=lambda v: int(v.version))

    def get_version(self, name: str, version: str) -> VersionRef:
        """Return one version of a registered model; RegistryError if the model or version does not exist."""
        with self._scope(f"read version {version} of model {name!r}"):
            return _version_ref(self._mlflow().get_model_version(name, str(version)))

    def set_version_tags(self, name: str, version: str, tags: Mapping[str, str]) -> None:
        """Set (add or overwrite) tags on a model version."""
        with self._scope(f"tag version {version} of model {name!r}"):
            client = self._mlflow()
            for key, value in tags.items():
                client.set_model_version_tag(name, str(version), key, value)

    def get_alias(self, name: str, alias: str) -> VersionRef | None:
        """Return the version ``name@alias`` points to, or None when the alias or the model does not exist."""
        with self._scope(f"read alias {alias!r} of model {name!r}"):
            client = self._mlflow()
            try:  # a missing alias is INVALID_PARAMETER_VALUE in MLflow: look it up in the model instead
                version = client.get_registered_model(name).aliases.get(alias)
            except _mlflow_exception() as exc:
                if exc.error_code == _NOT_FOUND:
                    return None
                raise
            return None if version is None else _version_ref(client.get_model_version(name, str(version)))

    def set_alias(
        self,
        name: str,
        alias: str,
        version: str,
        *,
        reason: str,
        flow_run_id: str | None,
        expected: str | None = ANY_VERSION,
        approval: Mapping[str, str] | None = None,
    ) -> AliasMove | None:
        """Point ``name@alias`` at ``version`` under the model's lock and append the move to the alias history.

        Args:
            expected: compare-and-swap: move only if the alias still points at this version (None: only if
                it points nowhere); ``ANY_VERSION`` moves unconditionally.

        Returns:
            The recorded move, or None when the alias already pointed at ``version`` (no move).

        Raises:
            AliasConflict: the alias points elsewhere than ``expected``.
            RegistryBusy: the lock stayed held by another process for ``lock_wait_seconds``.
        """
        if not reason.strip():
            raise RegistryError(f"moving alias {alias!r} of model {name!r} needs a reason")
        version = str(version)
        with self._scope(f"move alias {alias!r} of model {name!r} to version {version}"), self._locked(name):
            client = self._mlflow()
            previous = self.get_alias(name, alias)
            current = previous.version if previous else None
            # already there (e.g. a retry whose first attempt moved it): no move, whatever was expected
            if expected != ANY_VERSION and current not in (expected, version):
                raise AliasConflict(
                    f"@{alias} of model {name!r} points at version {current or 'none'}, not {expected or 'none'} "
                    f"as expected: it was moved meanwhile, version {version} was judged against a stale {alias}"
                )
            tags = client.get_registered_model(name).tags
            if current == version:
                recorded = [_decode_move(name, k, tags[k]) for k in _history_keys(tags)]
                last = next((m.to_version for m in reversed(recorded) if m.alias == alias), None)
                if last == version:
                    return None  # no move, nothing to record
                current, reason = last, f"{reason} (recorded late: a crash interrupted the first attempt)"
            else:
                client.set_registered_model_alias(name, alias, version)
            move = AliasMove(
                at=datetime.now(UTC).isoformat(timespec="milliseconds"),
                alias=alias,
                from_version=current,
                to_version=version,
                reason=reason,
                flow_run_id=flow_run_id,
                actor=self.actor,
                approval=dict(approval) if approval else None,
            )
            seq = max((int(k.removeprefix(HISTORY_TAG_PREFIX)) for k in _history_keys(tags)), default=0) + 1
            client.set_registered_model_tag(name, f"{HISTORY_TAG_PREFIX}{seq:06d}", _encode_move(move))
        return move

    @contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        """Hold the registry lock of model ``name`` (re-entrant within this instance)."""
        if name in self._held:
            yield
            return
        if self._holder is None:
            self._holder = registry_lock.new_holder(self.actor)
        with registry_lock.held(
            self._mlflow(),
            name,
            self._holder,
            lease_seconds=self.lock_lease_seconds,
            wait_seconds=self.lock_wait_seconds,
        ):
            self._held.add(name)
            try:
                yield
            finally:
                self._held.discard(name)

    def alias_history(self, name: str) -> list[AliasMove]:
        """Return every recorded alias move of a model, oldest first; [] if the model does not exist."""
        with self._scope(f"read alias history of model {name!r}"):
            try:
                tags = self._mlflow().get_registered_model(name).tags
            except _mlflow_exception() as exc:
                if exc.error_code == _NOT_FOUND:
                    return []
                raise
        return [_decode_move(name, k, tags[k]) for k in _history_keys(tags)]

    def load_model(self, name: str, version: str, dst_dir: str) -> Any:
        """Download a model version into ``dst_dir`` and return the fitted model, built once.

        ``dst_dir`` is created if missing; use one folder per version (files are overwritten, not cleared).
        The skops file's types are checked against the allow-list before anything is built (see module
        docstring); the model's own ``MLmodel`` allow-list is ignored.

        Raises:
            UntrustedModelError: the file names types outside the allow-list, or is not in skops format.
        """
        import mlflow
        import skops.io

        with self._scope(f"load version {version} of model {name!r}"):
            source = self._mlflow().get_model_version_download_uri(name, str(version))
            Path(dst_dir).mkdir(parents=True, exist_ok=True)
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=source, dst_path=dst_dir, tracking_uri=self.tracking_uri
            )
            flavor = mlflow.models.Model.load(local).flavors.get("sklearn", {})
        if flavor.get("serialization_format") != "skops":
            found = flavor.get("serialization_format", "no sklearn flavor")
            raise UntrustedModelError(f"model {name!r} version {version} is stored as {found}, not skops: refused")
        model_file = str(Path(local) / flavor["pickled_model"])
        try:
            found = skops.io.get_untrusted_types(file=model_file)
        except Exception as exc:  # not a zip, no schema: a damaged or foreign file
            raise RegistryError(f"model {name!r} version {version} is not a readable skops file: {exc}") from exc
        types = _vetted_types(found)
        try:
            return skops.io.load(model_file, trusted=types)
        except Exception as exc:  # e.g. a class that no longer exists in this code base
            raise RegistryError(
                f"cannot rebuild model {name!r} version {version}: {type(exc).__name__}: {exc}"
            ) from exc

    # --- internals -------------------------------------------------------------------------------------

    def _mlflow(self) -> MlflowClient:
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        return self._client

    @contextmanager
    def _scope(self, action: str) -> Iterator[None]:
        """Hold the MLflow lock with this instance's HTTP settings; turn failures into RegistryErrors."""
        env = {
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(self.http_retries),
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(self.http_timeout_seconds),
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
            "MLFLOW_UV_AUTO_DETECT": "false",  # requirements are explicit: the worker's cwd must not matter
        }
        if self.s3_endpoint_url:
            env["MLFLOW_S3_ENDPOINT_URL"] = self.s3_endpoint_url
        # MLflow's own S3 client for artifacts: the same retry policy as adapters.storage (boto3 reads these)
        env.update(AWS_RETRY_MODE="standard", AWS_MAX_ATTEMPTS=str(S3_MAX_ATTEMPTS))
        with _MLFLOW_LOCK, _environ(env):
            try:
                yield
            except MlopsError:
                raise
            except Exception as exc:
                error = _translated(exc, action, _redact(self.tracking_uri))
                if error is None:
                    raise
                raise error from exc

    def _experiment_id(self, client: MlflowClient, name: str) -> str:
        found = client.get_experiment_by_name(name)
        if found is None:
            location = f"{self.artifact_uri.rstrip('/')}/{name}" if self.artifact_uri else None
            try:
                return client.create_experiment(name, artifact_location=location)
            except _mlflow_exception() as exc:  # created meanwhile by another run
                if exc.error_code not in _ALREADY_EXISTS or (found := client.get_experiment_by_name(name)) is None:
                    raise
        if found.lifecycle_stage != "active":
            raise RegistryError(f"experiment {name!r} is deleted: restore it or use another name")
        return found.experiment_id

    @staticmethod
    def _log_values(
        client: MlflowClient, run_id: str, *, params: Mapping[str, Any], metrics: Mapping[str, float]
    ) -> None:
        from mlflow.entities import Metric, Param

        now_ms = int(datetime.now(UTC).timestamp() * 1000)
        param_list = [Param(k, str(v)) for k, v in params.items()]
        metric_list = [Metric(k, float(v), now_ms, 0) for k, v in metrics.items()]
        for i in range(0, max(len(param_list), len(metric_list)), _BATCH):
            client.log_batch(run_id, metrics=metric_list[i : i + _BATCH], params=param_list[i : i + _BATCH])

    @staticmethod
    def _log_files(client: MlflowClient, run_id: str, files: Mapping[str, bytes]) -> None:
        if not files:
            return
        with tempfile.TemporaryDirectory() as tmp:
            for path, data in files.items():
                local = Path(tmp, path)
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_bytes(data)
            client.log_artifacts(run_id, tmp)  # one upload of the whole tree, paths preserved

    def _log_model(
        self, run_id: str, model: Any, example: pd.DataFrame, signature: Any, trusted: list[str], pip: list[str]
    ) -> str:
        """Log the model into the run with the fluent API (it has no client form), then end the run."""
        import mlflow
        import mlflow.sklearn

        with _fluent_tracking_uri(self.tracking_uri), mlflow.start_run(run_id=run_id):
            info = mlflow.sklearn.log_model(
                model,
                name=MODEL_NAME_IN_RUN,
                serialization_format="skops",
                skops_trusted_types=trusted,
                signature=signature,
                input_example=example,
                pip_requirements=pip,
                pyfunc_predict_fn="predict_proba",
            )
        return info.model_uri

    def run_url(self, experiment_id: str, run_id: str) -> str | None:
        """The run's page in the MLflow UI (None for a tracking store that has no UI: a local SQLite file)."""
        if not self.tracking_uri.startswith(("http://", "https://")):
            return None
        return f"{_redact(self.tracking_uri).rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


# --- serialization allow-list -------------------------------------------------------------------------


def _untrusted_types_of(model: Any) -> list[str]:
    """Dump the model with skops and list the types its file names beyond skops' defaults."""
    import skops.io

    try:
        return skops.io.get_untrusted_types(data=skops.io.dumps(model))
    except Exception as exc:  # skops raises assorted errors for objects it cannot represent
        raise UntrustedModelError(f"model cannot be stored in skops format: {type(exc).__name__}: {exc}") from exc


# functions a fitted sklearn pipeline stores by reference (a HistGradientBoosting model keeps its input
# validator as partial(check_array, ...)); skops lists whatever a partial wraps on its own, so an allowed
# partial around eval is still refused
TRUSTED_FUNCTIONS = frozenset({"functools.partial", "sklearn.utils.validation.check_array"})


def _vetted_types(names: list[str]) -> list[str]:
    """Return ``names`` if every one is allow-listed (see module docstring); UntrustedModelError otherwise."""
    refused = [
        n for n in names if not (n in TRUSTED_FUNCTIONS or n.startswith(TRUSTED_CODE_PREFIXES) or _is_trusted_class(n))
    ]
    if refused:
        raise UntrustedModelError(
            f"model holds types outside the allow-list (classes under {', '.join(TRUSTED_CLASS_PREFIXES)} or "
            f"code under {', '.join(TRUSTED_CODE_PREFIXES)}): {', '.join(sorted(refused))}"
        )
    return sorted(names)


def _is_trusted_class(name: str) -> bool:
    if not name.startswith(TRUSTED_CLASS_PREFIXES):
        return False  # never import a module outside the allow-list just to inspect a name
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr, None)
        return isinstance(obj, type)
    return False


# --- helpers ------------------------------------------------------------------------------------------


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user without a name
        return "unknown"


def _infer_signature(model: Any, example: pd.DataFrame) -> Any:
    from mlflow.models import infer_signature

    try:
        return infer_signature(example, model.predict_proba(example))
    except Exception as exc:  # an unfitted model or an example it cannot score
        raise RegistryError(f"cannot infer the model signature from the input example: {exc}") from exc


def _dataset_input(ref: DatasetRef, example: pd.DataFrame) -> Any:
    """A dataset reference for ``log_inputs``: URI, name, digest, rows, context; schema from the example."""
    import mlflow.data
    from mlflow.entities import Dataset, DatasetInput, InputTag

    with warnings.catch_warnings():  # a local path "can be interpreted in multiple ways", all of them local
        warnings.simplefilter("ignore", UserWarning)
        described = mlflow.data.from_pandas(  # an empty frame: only its schema is kept
            example.iloc[:0], source=ref.uri, name=ref.name, digest=ref.digest[:_MAX_DATASET_DIGEST]
        ).to_dict()
    dataset = Dataset(
        name=described["name"],
        digest=described["digest"],
        source_type=described["source_type"],
        source=described["source"],
        schema=described.get("schema"),
        profile=json.dumps({"num_rows": ref.rows}),
    )
    tags = [
        InputTag("mlflow.data.context", ref.context),
        InputTag("digest", ref.digest),
        InputTag("rows", str(ref.rows)),
    ]
    return DatasetInput(dataset, tags)


def _quoted(value: str) -> str:
    """A value inside a single-quoted MLflow filter string."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _version_ref(mv: Any) -> VersionRef:
    return VersionRef(
        name=mv.name,
        version=str(mv.version),
        run_id=mv.run_id or "",
        tags=dict(mv.tags or {}),
        aliases=tuple(sorted(mv.aliases or ())),
    )


def _model_id(model_uri: str) -> str:
    match = re.fullmatch(r"models:/(m-[0-9a-f]+)", model_uri)
    if match is None:
        raise RegistryError(f"not a logged-model URI (models:/m-<id>): {model_uri!r}")
    return match.group(1)


def _is_history_key(key: str) -> bool:
    return key.startswith(HISTORY_TAG_PREFIX) and key.removeprefix(HISTORY_TAG_PREFIX).isdigit()


def _history_keys(tags: Mapping[str, str]) -> list[str]:
    """The alias history's tag keys in the order of their sequence numbers."""
    return sorted((k for k in tags if _is_history_key(k)), key=lambda k: int(k.removeprefix(HISTORY_TAG_PREFIX)))


def _encode_move(move: AliasMove) -> str:
    """Compact JSON of a move; a reason too long for the tag column is cut and marked with an ellipsis."""
    record = {
        "at": move.at,
        "alias": move.alias,
        "from": move.from_version,
        "to": move.to_version,
        "reason": move.reason,
        "flow_run_id": move.flow_run_id,
        "actor": move.actor,
    }
    if move.approval:
        record["approval"] = move.approval
    reason = move.reason
    while len(text := json.dumps(record, separators=(",", ":"), ensure_ascii=False)) > _MAX_REGISTRY_TAG_VALUE:
        reason = reason[: max(0, len(reason) - (len(text) - _MAX_REGISTRY_TAG_VALUE) - 1)]
        record["reason"] = reason + "…"
    return text


def _decode_move(name: str, key: str, text: str) -> AliasMove:
    try:
        r = json.loads(text)
        return AliasMove(
            r["at"], r["alias"], r["from"], r["to"], r["reason"], r["flow_run_id"], r["actor"], r.get("approval")
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise RegistryError(f"model {name!r} has a malformed alias history tag {key!r}: {exc}") from None


def _checked_artifact_path(path: str) -> str:
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts or "\\" in path:
        raise RegistryError(f"artifact path must be relative, with '/' and without '..': {path!r}")
    return str(pure)


def _checked_tracking_uri(uri: str) -> str:
    scheme = urlsplit(uri).scheme
    if scheme == "sqlite":
        if not uri.startswith("sqlite:////"):
            raise ConfigError(f"SQLite tracking URI must hold an absolute path (sqlite:////abs/mlflow.db): {uri!r}")
    elif scheme == "file":
        if not uri.startswith("file:///"):
            raise ConfigError(f"file tracking URI must be absolute (file:///abs/dir): {uri!r}")
    elif not scheme or len(scheme) == 1:  # a bare path, or a Windows drive letter
        raise ConfigError(f"tracking URI needs a scheme (sqlite:////..., http://..., postgresql://...): {uri!r}")
    return uri


def _checked_artifact_uri(uri: str) -> str:
    if uri.startswith(("s3://", "file:///")):
        return uri
    if Path(uri).is_absolute():
        return Path(uri).as_uri()
    raise ConfigError(f"artifact URI must be an absolute folder, file:/// or s3:// URI: {uri!r}")


def _redact(uri: str) -> str:
    """The URI without a password, for messages."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def _mlflow_exception() -> type[Exception]:
    from mlflow.exceptions import MlflowException

    return MlflowException


_UNREACHABLE = re.compile(
    r"ConnectionError|ConnectTimeout|ReadTimeout|Timeout|RetryError|MaxRetryError|NewConnectionError"
    r"|EndpointConnectionError|ConnectionClosedError|ConnectionRefusedError|ConnectionResetError|TimeoutError"
)


def _translated(exc: BaseException, action: str, uri: str) -> MlopsError | None:
    """The MlopsError for a failure inside MLflow, or None for a programming error to let through."""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    innermost = _one_line(chain[-1])
    if any(_UNREACHABLE.fullmatch(type(e).__name__) for e in chain):
        return RegistryUnavailable(f"MLflow at {uri} is unreachable ({action}): {innermost}")
    code = getattr(exc, "error_code", None)
    if code == "TEMPORARILY_UNAVAILABLE" or getattr(exc, "get_http_status_code", lambda: 0)() in (502, 503, 504):
        return RegistryUnavailable(f"MLflow at {uri} is unavailable ({action}): {_one_line(exc)}")
    if isinstance(exc, _mlflow_exception()):
        return RegistryError(f"cannot {action} at MLflow {uri}: {_one_line(exc)}")
    if isinstance(exc, OSError) or type(exc).__module__.startswith(("botocore", "sqlalchemy")):
        return RegistryError(f"cannot {action} at MLflow {uri}: {type(exc).__name__}: {innermost}")
    return None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(getattr(exc, "message", None) or exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


@contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def _fluent_tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API at ``uri`` for the block; afterwards ``mlflow.get_tracking_uri()`` is as before.

    ``set_tracking_uri`` also writes ``MLFLOW_TRACKING_URI`` (for subprocesses): both are put back. A URI that
    came from that variable is restored as "unset", so that it keeps following the variable.
    """
    import mlflow
    import mlflow.tracking

    saved_env = os.environ.get("MLFLOW_TRACKING_URI")
    before = mlflow.get_tracking_uri() if mlflow.tracking.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(None if before == saved_env else before)  # type: ignore[arg-type]  # None: unset
        if saved_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = saved_env
