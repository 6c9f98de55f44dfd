"""PII policy per column: keyed hash, drop, or keep. The key is passed in; this module never looks for it."""

from __future__ import annotations

import hashlib
import hmac

import pandas as pd

from tasks.usecase import PiiAction

HASH_PREFIX = "h_"
_DIGEST_CHARS = 20  # 80 bits: no collisions at fleet sizes, short enough to read in a UI


def keyed_hash(value: str, key: bytes) -> str:
    """HMAC-SHA256 of ``value``; without the key the raw value cannot be recovered by a dictionary attack."""
    digest = hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()
    return HASH_PREFIX + digest[:_DIGEST_CHARS]


def apply_pii_policy(frame: pd.DataFrame, policy: dict[str, PiiAction], key: bytes | None) -> pd.DataFrame:
    """A copy of ``frame`` where every PII column is hashed or dropped as its policy says.

    Raises:
        ValueError: a column must be hashed but no key was given, or the key is too short.
    """
    hashed: dict[str, pd.Series] = {}
    dropped: list[str] = []
    for column, action in policy.items():
        if column not in frame.columns or action == "keep":
            continue
        if action == "drop":
            dropped.append(column)
            continue
        if key is None or len(key) < 16:
            raise ValueError(
                f"PII column '{column}' must be hashed but the PII key is missing or shorter than 16 bytes"
            )
        values = frame[column]
        unique = values.dropna().astype("str").unique()
        mapping = {v: keyed_hash(v, key) for v in unique}
        hashed[column] = values.astype("str").map(mapping).where(values.notna()).astype("str")
    return frame.assign(**hashed).drop(columns=dropped)
