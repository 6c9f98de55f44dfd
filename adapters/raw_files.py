"""Decode raw batch files (CSV or parquet bytes) into text-typed frames, with errors that say what is wrong."""

from __future__ import annotations

import io

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tasks.errors import InputDataError

MISSING_MARKERS = ["", "NA", "NaN", "null", "NULL"]


def decode_table(data: bytes, fmt: str, uri: str, missing_values: tuple[str, ...] = ()) -> pd.DataFrame:
    """Parse one raw file. CSV values stay text (types are cast later, row by row, with reasons).

    Raises:
        InputDataError: empty file, not UTF-8, malformed CSV, truncated or corrupt parquet, unknown format.
    """
    if not data:
        raise InputDataError(f"{uri}: file is empty (0 bytes)")
    if fmt == "csv":
        return _decode_csv(data, uri, missing_values)
    if fmt == "parquet":
        return _decode_parquet(data, uri)
    raise InputDataError(f"{uri}: unknown raw format '{fmt}' (csv or parquet)")


def encode_csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False, na_rep="").encode("utf-8")


def encode_parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, engine="pyarrow")
    return buffer.getvalue()


def _decode_csv(data: bytes, uri: str, missing_values: tuple[str, ...] = ()) -> pd.DataFrame:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputDataError(
            f"{uri}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); re-export the file as UTF-8"
        ) from None
    try:
        return pd.read_csv(
            io.StringIO(text),
            dtype="str",
            keep_default_na=False,
            na_values=[*MISSING_MARKERS, *missing_values],
            skipinitialspace=True,
        )
    except pd.errors.EmptyDataError:
        raise InputDataError(f"{uri}: no header and no rows") from None
    except pd.errors.ParserError as exc:
        raise InputDataError(f"{uri}: malformed CSV: {str(exc).strip()}") from None


def _decode_parquet(data: bytes, uri: str) -> pd.DataFrame:
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise InputDataError(f"{uri}: not a readable parquet file (truncated or corrupt): {exc}") from None
    return table.to_pandas()
