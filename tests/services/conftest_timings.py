"""Timings the dashboard tests record; printed in pytest's terminal summary (never asserted)."""

from __future__ import annotations

TIMINGS: dict[str, float] = {}
