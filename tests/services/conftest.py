"""Service tests: print the timings they recorded (with the machine's load) in the terminal summary."""

from __future__ import annotations

import os
from typing import Any

from conftest_timings import TIMINGS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TIMINGS:
        return
    load = os.getloadavg()
    terminalreporter.section(f"service timings (load {load[0]:.1f} on {os.cpu_count()} cores, OMP_NUM_THREADS=1)")
    for name, seconds in TIMINGS.items():
        terminalreporter.write_line(f"{name:<48} {seconds:8.2f}")
