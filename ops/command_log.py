"""Where a command's logs and tracebacks go: a log file per command run, so the terminal shows one line on error.

Prefect logs a failed flow run with its whole traceback through the root logger's console handler; MLflow and
Great Expectations log warnings the same way. While a command runs, every handler that writes to the terminal
is swapped for one file, ``<MLOPS_HOME>/logs/<command>-<UTC time>.log``; a failure writes its traceback there
too and the one-line error names the file. ``mlops --debug <command>`` (or ``MLOPS_DEBUG=1``) leaves the
terminal's handlers in place and prints the traceback on stderr instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from flows.settings import mlops_home

KEEP_LOG_FILES = 50
_state = {"debug": False}


def set_debug(enabled: bool) -> None:
    """``mlops --debug``: logs and tracebacks on the terminal, as the libraries print them."""
    _state["debug"] = enabled


def debug_enabled() -> bool:
    return _state["debug"] or os.environ.get("MLOPS_DEBUG", "").lower() in ("1", "true", "yes")


def log_dir() -> Path:
    return mlops_home() / "logs"


def new_log_file(label: str) -> Path:
    """A fresh log file for one command run (named after its label); the oldest beyond ``KEEP_LOG_FILES`` go."""
    folder = log_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for old in sorted(folder.glob("*.log"), key=lambda p: p.stat().st_mtime)[:-KEEP_LOG_FILES]:
        old.unlink(missing_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    slug = re.sub(r"[^A-Za-z0-9]+", "-", label).strip("-").lower()[:60] or "mlops"
    return folder / f"{slug}-{stamp}.log"


def _terminal_handlers() -> list[tuple[logging.Logger, logging.Handler]]:
    """Every (logger, handler) pair that writes to a stream (stderr, stdout); file handlers are left alone."""
    loggers = [
        logging.getLogger(),
        *(v for v in logging.root.manager.loggerDict.values() if isinstance(v, logging.Logger)),
    ]
    return [
        (logger, handler)
        for logger in loggers
        for handler in logger.handlers
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
    ]


@contextlib.contextmanager
def logs_to(path: Path) -> Iterator[None]:
    """Send what the terminal handlers would print to ``path`` while the block runs (not with --debug)."""
    if debug_enabled():
        yield
        return
    from prefect.logging.configuration import ensure_logging_setup

    ensure_logging_setup()  # Prefect adds its console handlers on first use: they must exist before the swap

    target = logging.FileHandler(path, encoding="utf-8")
    target.setFormatter(logging.Formatter("%(asctime)s | %(levelname)-7s | %(name)s - %(message)s"))
    swapped = _terminal_handlers()
    logging.captureWarnings(True)  # library warnings too: they reach the root logger, hence the file
    for logger, handler in swapped:
        logger.removeHandler(handler)
        if target not in logger.handlers:
            logger.addHandler(target)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        for logger, handler in swapped:
            logger.removeHandler(target)
            logger.addHandler(handler)
        target.close()


def record_failure(path: Path, exc: BaseException) -> None:
    """Append the traceback to the command's log file; with --debug print it on stderr as well."""
    text = "".join(traceback.format_exception(exc))
    with path.open("a", encoding="utf-8") as log:
        log.write(f"{datetime.now(UTC).isoformat()} | command failed\n{text}")
    if debug_enabled():
        sys.stderr.write(text)
