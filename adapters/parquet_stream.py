"""Streaming Parquet reads, local or S3: what an input holds (from its footers) and row-group ranges in chunks.

Nothing here loads a whole input: ``describe_parquet`` reads only the footers (row groups, schema, null counts),
``read_chunks`` reads a range of row groups and hands it back in tables of at most ``chunk_rows`` rows, so
memory follows the chunk size, not the input size. S3 is read with pyarrow's own client on the endpoint and
credentials of ``S3Storage``. Failures are ``StorageError`` (cannot reach or find) or ``InputDataError``
(found, but not Parquet, or the files disagree), naming the URI.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from adapters.storage import S3Storage, is_s3, local_path, split_s3
from tasks.errors import InputDataError, StorageError, TransientStorageError
from tasks.scoring import ColumnProfile, InputProfile

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

_TRANSIENT = ("NETWORK_CONNECTION", "Timeout", "timed out", "SlowDown", "ServiceUnavailable", "InternalError")


def describe_parquet(
    uris: Sequence[str], *, s3_endpoint_url: str | None = None
) -> tuple[InputProfile, tuple[tuple[int, ...], ...]]:
    """Rows, columns (kind, type, null count) of the files together, and the row count of each row group.

    Null counts come from the footers' statistics; a column whose footers lack them is counted by reading
    that column alone, one row group at a time.

    Raises:
        StorageError: a file is missing or unreadable.
        InputDataError: a file is not Parquet, or the files disagree on a column's type.
    """
    schema: pa.Schema | None = None
    nulls: dict[str, int] = {}
    groups: list[tuple[int, ...]] = []
    for uri in uris:
        with _parquet_file(uri, s3_endpoint_url) as parquet:
            here = parquet.schema_arrow
            _check_unique_names(here, uri)
            if schema is None:
                schema = here
            _check_same_columns(schema, here, uris[0], uri)
            meta = parquet.metadata
            groups.append(tuple(meta.row_group(i).num_rows for i in range(meta.num_row_groups)))
            for name, count in _null_counts(parquet, uri).items():
                nulls[name] = nulls.get(name, 0) + count
    if schema is None:
        raise InputDataError("no Parquet file to describe")
    columns = {f.name: ColumnProfile(_kind(f.type), str(f.type), nulls.get(f.name, 0)) for f in schema}
    return InputProfile(sum(sum(g) for g in groups), columns), tuple(groups)


def read_chunks(
    uri: str,
    row_groups: tuple[int, int],
    chunk_rows: int,
    *,
    types: dict[str, str] | None = None,
    s3_endpoint_url: str | None = None,
) -> Iterator[pa.Table]:
    """Row groups ``[start, stop)`` of one file as tables of at most ``chunk_rows`` rows, in order.

    Args:
        uri: The Parquet file.
        row_groups: Range of row groups to read.
        chunk_rows: Most rows per table; a range within the limit comes back as one table.
        types: Contract type per column (``float64``, ``Int64``, ``str``, ``datetime64``, ``bool``): columns
            stored otherwise (int as float, dictionary-encoded or all-null columns) are cast to it.
        s3_endpoint_url: S3 API address for ``s3://`` URIs (None for AWS).
    """
    start, stop = row_groups
    groups = list(range(start, stop))
    with _parquet_file(uri, s3_endpoint_url) as parquet:
        meta = parquet.metadata
        if sum(meta.row_group(i).num_rows for i in groups) <= chunk_rows:
            yield _cast(_read(uri, lambda: parquet.read_row_groups(groups)), types or {}, uri)
            return
        batches = parquet.iter_batches(batch_size=chunk_rows, row_groups=groups)
        import pyarrow as pa

        while (batch := _read(uri, lambda: next(batches, None))) is not None:
            yield _cast(pa.Table.from_batches([batch]), types or {}, uri)


def read_column(uri: str, column: str, *, s3_endpoint_url: str | None = None) -> pa.ChunkedArray:
    """One column of a whole Parquet file (e.g. the id column: a few bytes per row)."""
    with _parquet_file(uri, s3_endpoint_url) as parquet:
        return _read(uri, lambda: parquet.read(columns=[column])).column(0)


def _check_unique_names(schema: pa.Schema, uri: str) -> None:
    """pyarrow reads a file whose columns share a name, then fails on the name deep in a read: refuse it here."""
    seen: set[str] = set()
    for name in schema.names:
        if name in seen:
            count = schema.names.count(name)
            raise InputDataError(f"{uri} has {count} columns named '{name}': column names must be unique")
        seen.add(name)


@contextmanager
def _parquet_file(uri: str, s3_endpoint_url: str | None) -> Iterator[pq.ParquetFile]:
    import pyarrow.parquet as pq

    filesystem, path = _filesystem(uri, s3_endpoint_url)
    handle = _read(uri, lambda: filesystem.open_input_file(path))
    try:
        yield _read(uri, lambda: pq.ParquetFile(handle))
    finally:
        handle.close()


def _filesystem(uri: str, s3_endpoint_url: str | None) -> tuple[Any, str]:
    from pyarrow import fs

    if is_s3(uri):
        bucket, key = split_s3(uri)
        return S3Storage(endpoint_url=s3_endpoint_url).pyarrow_filesystem(), f"{bucket}/{key}"
    return fs.LocalFileSystem(), str(local_path(uri))


def _read(uri: str, action: Any) -> Any:
    """Run one pyarrow read, its failures as StorageError / InputDataError naming ``uri``."""
    import pyarrow as pa

    try:
        return action()
    except FileNotFoundError:
        raise StorageError(f"input not found: {uri}") from None
    except pa.ArrowInvalid as exc:  # not Parquet, truncated, corrupt
        raise InputDataError(f"{uri} is not a readable Parquet file: {exc}") from exc
    except OSError as exc:
        text = str(exc)
        if "NoSuchBucket" in text or "bucket does not exist" in text.lower():
            raise StorageError(f"S3 bucket '{split_s3(uri)[0]}' does not exist") from None
        if "ACCESS_DENIED" in text or "AccessDenied" in text:
            raise StorageError(f"access denied: cannot read {uri}") from exc
        if any(marker in text for marker in _TRANSIENT):
            raise TransientStorageError(f"cannot read {uri}: {text}") from exc
        raise StorageError(f"cannot read {uri}: {text}") from exc


def _check_same_columns(first: pa.Schema, other: pa.Schema, first_uri: str, uri: str) -> None:
    mine = {f.name: f.type for f in first}
    theirs = {f.name: f.type for f in other}
    if mine.keys() != theirs.keys():
        differ = sorted(mine.keys() ^ theirs.keys())
        raise InputDataError(f"the files of the input disagree on columns {differ}: {first_uri} vs {uri}")
    for name, kind in mine.items():
        if kind != theirs[name] and _kind(kind) != _kind(theirs[name]):
            raise InputDataError(f"column '{name}' is {kind} in {first_uri} but {theirs[name]} in {uri}")


def _null_counts(parquet: pq.ParquetFile, uri: str) -> dict[str, int]:
    """Null count of each top-level column, from the footer statistics where every row group has them."""
    meta = parquet.metadata
    position = {meta.schema.column(j).path: j for j in range(meta.num_columns)}
    counts: dict[str, int] = {}
    for name in parquet.schema_arrow.names:
        j = position.get(name)
        stats = [meta.row_group(i).column(j).statistics if j is not None else None for i in range(meta.num_row_groups)]
        if all(s is not None and s.has_null_count for s in stats):
            counts[name] = sum(s.null_count for s in stats if s is not None)
        else:  # no statistics: count from the column itself, one row group at a time
            counts[name] = sum(
                _read(uri, lambda i=i, name=name: parquet.read_row_group(i, columns=[name])).column(0).null_count
                for i in range(meta.num_row_groups)
            )
    return counts


def _kind(arrow_type: pa.DataType) -> str:
    import pyarrow as pa

    t = arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type
    checks = (
        ("null", pa.types.is_null),
        ("bool", pa.types.is_boolean),
        ("int", pa.types.is_integer),
        ("float", pa.types.is_floating),
        ("str", lambda x: pa.types.is_string(x) or pa.types.is_large_string(x) or pa.types.is_string_view(x)),
        ("datetime", pa.types.is_timestamp),
    )
    return next((kind for kind, check in checks if check(t)), "other")


def _target(type_name: str, current: pa.DataType) -> pa.DataType | None:
    """The Arrow type a column of contract type ``type_name`` is read as (None: keep it as stored)."""
    import pyarrow as pa

    if type_name == "datetime64":
        return pa.timestamp("us") if pa.types.is_null(current) else None
    return {
        "float64": pa.float64(),
        "Int64": pa.int64(),
        "int64": pa.int64(),
        "str": pa.large_string(),
        "bool": pa.bool_(),
    }.get(type_name)


def _cast(table: pa.Table, types: dict[str, str], uri: str) -> pa.Table:
    import pyarrow as pa

    for name, type_name in types.items():
        index = table.schema.get_field_index(name)
        if index < 0:
            continue
        current = table.schema.field(index).type
        target = _target(type_name, current)
        if target is None or current == target:
            continue
        try:
            table = table.set_column(index, name, table.column(index).cast(target))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InputDataError(f"{uri}: column '{name}' cannot be read as {type_name}: {exc}") from exc
    return table
