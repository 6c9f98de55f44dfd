"""Source tables as files: local paths or ``s3://`` URIs, one or several per table, each may be a glob.

The files of one table are read in the order their patterns are listed (a glob's matches in name order) and
stacked, e.g. a reference file and a later one. CSV values stay text, as the source holds them (types are cast
at ingestion, row by row, with reasons); ``.gz`` and ``.zip`` are decompressed; Parquet keeps its types.
"""

from __future__ import annotations

import fnmatch
import glob
import gzip
import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from adapters.package_source import package_dir, package_version
from adapters.raw_files import decode_table
from adapters.storage import is_s3, split_s3, storage_for
from tasks.errors import InputDataError, StorageError
from tasks.usecase import SourceSpec

_GLOB_CHARS = "*?["


@dataclass(frozen=True)
class SourceFile:
    """One file read into a table: where, how many rows, and its content hash (the batch's provenance)."""

    uri: str
    rows: int
    sha256: str

    def to_dict(self) -> dict:
        return {"uri": self.uri, "rows": self.rows, "sha256": self.sha256}


def resolve(
    patterns: tuple[str, ...], table: str, *, base: Path | None = None, s3_endpoint_url: str | None = None
) -> list[str]:
    """Every file the patterns name, in order, each once.

    Raises:
        InputDataError: a pattern matches no file (the message names the table and the pattern).
    """
    found: list[str] = []
    for pattern in patterns:
        matches = _s3_matches(pattern, s3_endpoint_url) if is_s3(pattern) else _local_matches(pattern, base)
        if not matches:
            raise InputDataError(f"source table '{table}': no file matches '{pattern}'")
        found += [m for m in matches if m not in found]
    return found


def read_files(
    uris: list[str], table: str, *, missing_values: tuple[str, ...] = (), s3_endpoint_url: str | None = None
) -> tuple[pd.DataFrame, list[SourceFile]]:
    """The stacked rows of a table's files and what each file was.

    Raises:
        InputDataError: no file at all, an unreadable file, or files whose columns differ.
    """
    if not uris:
        raise InputDataError(f"source table '{table}': the file list is empty")
    frames, files = [], []
    for uri in uris:
        data = _read_bytes(uri, s3_endpoint_url)
        frame = decode_table(_decompress(data, uri), _format_of(uri), uri, missing_values=missing_values)
        if frames and list(frame.columns) != list(frames[0].columns):
            raise InputDataError(
                f"source table '{table}': {uri} has columns {list(frame.columns)}, "
                f"the first file {files[0].uri} has {list(frames[0].columns)}"
            )
        frames.append(frame)
        files.append(SourceFile(uri, len(frame), hashlib.sha256(data).hexdigest()))
    return pd.concat(frames, ignore_index=True), files


def _local_matches(pattern: str, base: Path | None) -> list[str]:
    path = Path(pattern).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    if not any(c in pattern for c in _GLOB_CHARS):
        return [str(path)] if path.is_file() else []
    matches = glob.glob(str(path), recursive=True)  # noqa: PTH207 - an absolute pattern, which Path.glob refuses
    return sorted(p for p in matches if Path(p).is_file())


def _s3_matches(pattern: str, s3_endpoint_url: str | None) -> list[str]:
    storage = storage_for(pattern, s3_endpoint_url=s3_endpoint_url)
    if not any(c in pattern for c in _GLOB_CHARS):
        return [pattern] if storage.exists(pattern) else []
    bucket, key = split_s3(pattern)
    fixed = key[: min(key.index(c) for c in _GLOB_CHARS if c in key)]
    prefix = f"s3://{bucket}/{fixed.rsplit('/', 1)[0] + '/' if '/' in fixed else ''}"
    try:
        listed = storage.list(prefix)
    except StorageError:
        return []
    return sorted(u for u in listed if fnmatch.fnmatchcase(u, pattern))


def _read_bytes(uri: str, s3_endpoint_url: str | None) -> bytes:
    if is_s3(uri):
        return storage_for(uri, s3_endpoint_url=s3_endpoint_url).read_bytes(uri)
    try:
        return Path(uri).read_bytes()
    except OSError as exc:
        raise InputDataError(f"{uri}: cannot be read ({exc.strerror})") from None


def _format_of(uri: str) -> str:
    name = uri.lower().removesuffix(".gz").removesuffix(".zip")
    if name.endswith(".parquet") or name.endswith(".pq"):
        return "parquet"
    if name.endswith(".csv") or name.endswith(".txt"):
        return "csv"
    raise InputDataError(f"{uri}: unknown file type (.csv, .csv.gz, .csv.zip or .parquet)")


def _decompress(data: bytes, uri: str) -> bytes:
    try:
        if uri.lower().endswith(".gz"):
            return gzip.decompress(data)
        if uri.lower().endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                members = [m for m in archive.namelist() if not m.endswith("/")]
                if len(members) != 1:
                    raise InputDataError(f"{uri}: a zip source holds exactly one file (it holds {len(members)})")
                return archive.read(members[0])
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputDataError(f"{uri}: not a readable compressed file: {exc}") from None
    return data


def read_source_table(
    source: SourceSpec, table: str, *, s3_endpoint_url: str | None = None
) -> tuple[pd.DataFrame, list[SourceFile]]:
    """One table of a use case's source: files inside an installed package, or paths / globs / S3 URIs."""
    base = package_dir(source.package or "") if source.adapter == "python_package" else None
    uris = resolve(source.paths(table), table, base=base, s3_endpoint_url=s3_endpoint_url)
    return read_files(uris, table, missing_values=source.missing_values, s3_endpoint_url=s3_endpoint_url)


def source_provenance(source: SourceSpec) -> dict:
    """What a landed batch came from: the package and its version, or the files adapter."""
    if source.adapter == "python_package":
        return {"adapter": source.adapter, "package": source.package, "version": package_version(source.package or "")}
    return {"adapter": source.adapter}
