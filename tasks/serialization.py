"""JSON-safe forms of result values (reports, event payloads, artifacts logged as JSON)."""

from __future__ import annotations

import math

import numpy as np


def json_safe(value: object) -> object:
    """Tuples as lists, numpy scalars as Python numbers, NaN and infinities as null, recursively."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
