"""Object storage behind one interface: a local folder or S3. URIs are the only currency.

A URI is either a local path (absolute, or ``file://``) or ``s3://bucket/key``. Writes are atomic: a reader
sees the previous object or the complete new one, never half a file. Every failure is a ``StorageError``
naming the URI or bucket, so the CLI can report it in one line.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urlparse

from tasks.errors import StorageError, TransientStorageError

if TYPE_CHECKING:  # pandas, boto3 and pyarrow load lazily: the CLI should start fast
    import pandas as pd
    from pyarrow.fs import S3FileSystem


class Storage(Protocol):
    """What every flow needs from a store of files."""

    def read_bytes(self, uri: str) -> bytes: ...

    def write_bytes(self, uri: str, data: bytes) -> None: ...

    def exists(self, uri: str) -> bool: ...

    def list(self, prefix_uri: str) -> list[str]: ...

    def delete(self, uri: str) -> None: ...

    def move(self, source_uri: str, target_uri: str) -> None: ...

    def clear_temp(self, prefix_uri: str) -> int: ...


def is_s3(uri: str) -> bool:
    """Tell whether ``uri`` names an S3 object (``s3://bucket/key``)."""
    return uri.startswith("s3://")


def join_uri(base: str, *parts: str) -> str:
    """Join segments onto a local path, ``file://`` or ``s3://`` URI with exactly one ``/`` between."""
    segments = [p.strip("/") for p in parts if p.strip("/")]
    return "/".join([base.rstrip("/"), *segments]) if segments else base


def storage_for(uri: str, *, s3_endpoint_url: str | None = None) -> Storage:
    """Pick the storage serving ``uri`` by its scheme; StorageError if it is not one we serve."""
    if is_s3(uri):
        return S3Storage(endpoint_url=s3_endpoint_url)
    local_path(uri)  # validates
    return LocalStorage()


def local_path(uri: str) -> Path:
    path = Path(unquote(urlparse(uri).path)) if uri.startswith("file://") else Path(uri)
    # A relative path would depend on the worker's current directory, which differs between runs.
    if not path.is_absolute():
        raise StorageError(f"not an absolute path, file:// or s3:// URI: {uri!r}")
    return path


_TEMP = re.compile(r"\..+\.[0-9a-f]{12}\.tmp")  # LocalStorage's writes in progress


class LocalStorage:
    """Files in a local folder; URIs are absolute paths or ``file://`` URIs (percent-encoded)."""

    def read_bytes(self, uri: str) -> bytes:
        """Return a file's content; StorageError "not found: <uri>" if it is missing."""
        try:
            return local_path(uri).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            raise StorageError(f"not found: {uri}") from None
        except OSError as exc:
            raise StorageError(f"cannot read {uri}: {exc.strerror or exc}") from exc

    def write_bytes(self, uri: str, data: bytes) -> None:
        """Write atomically: temp file in the same folder, fsync, then rename over the target."""
        path = local_path(uri)
        # Same folder so the rename stays on one filesystem (atomic); named so that list() skips it.
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tmp.open("xb") as out:  # honours the umask, unlike mkstemp's 0600
                out.write(data)
                out.flush()
                os.fsync(out.fileno())  # bytes on disk before the rename can expose them
            tmp.replace(path)
        except (FileExistsError, NotADirectoryError):  # mkdir met a file where a folder should be
            raise StorageError(f"cannot write {uri}: a parent is a file, not a folder") from None
        except OSError as exc:
            raise StorageError(f"cannot write {uri}: {exc.strerror or exc}") from exc
        finally:
            with suppress(OSError):  # a failed write leaves no temp file; after a rename it is gone
                tmp.unlink()

    def exists(self, uri: str) -> bool:
        """Tell whether a file (not a folder: S3 has none) exists at ``uri``."""
        return local_path(uri).is_file()

    def list(self, prefix_uri: str) -> list[str]:
        """Return every file under the folder ``prefix_uri``, recursive and sorted, in the style given."""
        as_uri = prefix_uri.startswith("file://")
        files = (p for p in local_path(prefix_uri).rglob("*") if p.is_file() and not _TEMP.fullmatch(p.name))
        return sorted(p.as_uri() if as_uri else str(p) for p in files)

    def delete(self, uri: str) -> None:
        """Remove a file; a missing file is not an error (as in S3)."""
        try:
            local_path(uri).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot delete {uri}: {exc.strerror or exc}") from exc

    def move(self, source_uri: str, target_uri: str) -> None:
        """Rename a file over ``target_uri`` (atomic within one filesystem)."""
        target = local_path(target_uri)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            local_path(source_uri).replace(target)
        except OSError as exc:
            raise StorageError(f"cannot move {source_uri} to {target_uri}: {exc.strerror or exc}") from exc

    def clear_temp(self, prefix_uri: str) -> int:
        """Remove the temp files of writes that never finished (a killed process) under ``prefix_uri``.

        Only for folders no other process writes to at the same moment: a write in progress would lose its file.
        """
        folder, removed = local_path(prefix_uri), 0
        for path in folder.rglob(".*.tmp") if folder.is_dir() else []:
            if _TEMP.fullmatch(path.name):
                path.unlink(missing_ok=True)
                removed += 1
        return removed


def split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise StorageError(f"no bucket in S3 URI: {uri!r}")
    return bucket, key


# Retries of S3 requests, decided here once for boto3 and pyarrow alike: 500s, 503 SlowDown, throttling and
# dropped connections are retried with exponential backoff and jitter (AWS "standard" mode), at most
# S3_MAX_ATTEMPTS tries per request, each bounded by the timeouts; then the error is raised as
# TransientStorageError, and the Prefect step around it (flows.steps.io_step) decides whether to try again.
S3_MAX_ATTEMPTS = 6
S3_CONNECT_TIMEOUT_SECONDS = 10
S3_READ_TIMEOUT_SECONDS = 60


class S3Storage:
    """Objects in S3 (or an S3 API such as moto or MinIO); URIs are ``s3://bucket/key``.

    Args:
        endpoint_url: S3 API address, e.g. ``http://127.0.0.1:5000``; None for AWS itself.
        region: AWS region; None lets boto3 decide (env, config file, else us-east-1).
    """

    def __init__(self, endpoint_url: str | None = None, region: str | None = None) -> None:
        self.endpoint_url, self.region = endpoint_url, region
        self._session: Any = None
        self._client: Any = None
        self._lock = threading.Lock()  # flows share one instance across task threads

    def __getstate__(self) -> dict[str, Any]:
        # Clients and locks do not pickle; a copy sent to a Dask worker builds its own client.
        return {"endpoint_url": self.endpoint_url, "region": self.region}

    def __setstate__(self, state: dict[str, Any]) -> None:
        S3Storage.__init__(self, **state)

    def _s3(self) -> Any:
        with self._lock:
            if self._client is None:  # credentials come from boto3's default chain
                import boto3

                self._session = boto3.session.Session(region_name=self.region)
                from botocore.config import Config

                retries = Config(
                    retries={"mode": "standard", "max_attempts": S3_MAX_ATTEMPTS},
                    connect_timeout=S3_CONNECT_TIMEOUT_SECONDS,
                    read_timeout=S3_READ_TIMEOUT_SECONDS,
                )
                self._client = self._session.client("s3", endpoint_url=self.endpoint_url, config=retries)
            return self._client

    @contextmanager
    def _errors(self, uri: str, action: str) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError

        try:
            yield
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "NoSuchBucket":
                raise StorageError(f"S3 bucket '{split_s3(uri)[0]}' does not exist") from None
            if code in ("NoSuchKey", "404", "NotFound"):
                raise StorageError(f"not found: {uri}") from None
            if code in ("AccessDenied", "403", "Forbidden"):
                raise StorageError(f"access denied: cannot {action} {uri}") from exc
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500:
                raise TransientStorageError(f"cannot {action} {uri}: {exc}") from exc
            raise StorageError(f"cannot {action} {uri}: {exc}") from exc
        except HTTPClientError as exc:  # unreachable, reset, timed out, cut off mid-body: after every retry
            raise TransientStorageError(f"cannot {action} {uri}: {exc}") from exc
        except BotoCoreError as exc:  # no credentials, bad parameters
            raise StorageError(f"cannot {action} {uri}: {exc}") from exc

    def read_bytes(self, uri: str) -> bytes:
        """Return an object's content."""
        bucket, key = split_s3(uri)
        with self._errors(uri, "read"):
            return self._s3().get_object(Bucket=bucket, Key=key)["Body"].read()

    def write_bytes(self, uri: str, data: bytes) -> None:
        """Create or replace an object."""
        bucket, key = split_s3(uri)
        # A single PUT is atomic in S3: readers get the old object or the new one, never a mix,
        # so unlike LocalStorage no temp object is needed.
        with self._errors(uri, "write"):
            self._s3().put_object(Bucket=bucket, Key=key, Body=data)

    def exists(self, uri: str) -> bool:
        """Tell whether the object exists; a missing bucket raises rather than answering False."""
        bucket, key = split_s3(uri)
        # A listing from the key (the smallest name with that prefix, so it comes first if present)
        # tells a missing bucket (NoSuchBucket) from a missing key, which a HEAD's bare 404 does not.
        with self._errors(uri, "check"):
            found = self._s3().list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1).get("Contents", [])
        return bool(found) and found[0]["Key"] == key

    def list(self, prefix_uri: str) -> list[str]:
        """Return every object under the "folder" ``prefix_uri`` (all pages), sorted."""
        bucket, key = split_s3(prefix_uri)
        prefix = key.strip("/") + "/" if key.strip("/") else ""  # "a/b/": listing a/b must skip a/b2
        with self._errors(prefix_uri, "list"):
            pages = self._s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            keys = [obj["Key"] for page in pages for obj in page.get("Contents", [])]
        return sorted(f"s3://{bucket}/{k}" for k in keys if not k.endswith("/"))  # skip folder markers

    def delete(self, uri: str) -> None:
        """Remove an object; a missing key is not an error (S3 semantics)."""
        bucket, key = split_s3(uri)
        with self._errors(uri, "delete"):
            self._s3().delete_object(Bucket=bucket, Key=key)

    def move(self, source_uri: str, target_uri: str) -> None:
        """Copy the object to ``target_uri`` (server-side), then delete the source."""
        (bucket, key), (target_bucket, target_key) = split_s3(source_uri), split_s3(target_uri)
        with self._errors(source_uri, "move"):
            self._s3().copy_object(Bucket=target_bucket, Key=target_key, CopySource={"Bucket": bucket, "Key": key})
            self._s3().delete_object(Bucket=bucket, Key=key)

    def clear_temp(self, prefix_uri: str) -> int:
        """Nothing to clear: a PUT is atomic in S3, no temp object is ever written."""
        return 0

    def pyarrow_filesystem(self) -> S3FileSystem:
        """Return a pyarrow S3 filesystem on the same endpoint, region and credentials, for streaming reads.

        Paths on it are ``bucket/key`` (no scheme). Credentials are copied from the boto3 session so
        both clients agree; temporary ones are frozen at this call, so ask again rather than keep it.
        """
        from pyarrow import fs

        kwargs: dict[str, Any] = {
            "region": self._s3().meta.region_name,
            "retry_strategy": fs.AwsStandardS3RetryStrategy(max_attempts=S3_MAX_ATTEMPTS),
            "connect_timeout": S3_CONNECT_TIMEOUT_SECONDS,
            "request_timeout": S3_READ_TIMEOUT_SECONDS,
        }
        credentials = self._session.get_credentials()
        if credentials is not None:  # else pyarrow falls back to its own default chain
            frozen = credentials.get_frozen_credentials()
            kwargs.update(access_key=frozen.access_key, secret_key=frozen.secret_key, session_token=frozen.token)
        if self.endpoint_url:
            endpoint = urlparse(self.endpoint_url)
            kwargs.update(endpoint_override=endpoint.netloc, scheme=endpoint.scheme or "https")
        return fs.S3FileSystem(**kwargs)


def read_parquet(storage: Storage, uri: str, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a Parquet object (only ``columns``, if given) into a DataFrame; the object passes through memory."""
    import pandas as pd

    try:
        return pd.read_parquet(io.BytesIO(storage.read_bytes(uri)), engine="pyarrow", columns=columns)
    except ValueError as exc:  # pyarrow.ArrowInvalid is a ValueError
        raise StorageError(f"cannot read {uri} as Parquet: {exc}") from exc


def write_parquet(storage: Storage, uri: str, frame: pd.DataFrame) -> None:
    """Write a DataFrame as Parquet (pyarrow engine, index dropped)."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, engine="pyarrow", index=False)
    storage.write_bytes(uri, buffer.getvalue())


def read_json(storage: Storage, uri: str) -> Any:
    """Read a UTF-8 JSON document."""
    try:
        return json.loads(storage.read_bytes(uri).decode("utf-8"))
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise StorageError(f"cannot read {uri} as JSON: {exc}") from exc


def write_json(storage: Storage, uri: str, obj: Any) -> None:
    """Write ``obj`` as UTF-8 JSON, keys sorted and indented by 2 so that diffs stay readable."""
    text = json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    storage.write_bytes(uri, text.encode("utf-8"))
