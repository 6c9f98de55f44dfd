"""A failing command prints one line naming its log file; the traceback and the libraries' logs go there."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

from typer.testing import CliRunner

from ops.commands import app

runner = CliRunner()
MISSING = ["ingest", "--input", "/nonexistent/batch", "--month", "2013-01"]


def test_failure_names_a_log_file_holding_the_traceback_and_prefects_logs(home):
    terminal = io.StringIO()
    handler = logging.StreamHandler(terminal)  # stands for the console handler Prefect puts on the root logger
    logging.getLogger().addHandler(handler)
    try:
        result = runner.invoke(app, [*MISSING, "--json"])
    finally:
        logging.getLogger().removeHandler(handler)
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert set(payload) == {"ok", "error"} and payload["ok"] is False
    assert "input not found" in payload["error"] and "\n" not in payload["error"]
    log = Path(re.search(r"traceback and logs: (\S+\.log)\)", payload["error"]).group(1))
    assert log.parent == home / "logs" and log.is_file()
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "StorageError: input not found" in text
    assert "Finished in state Failed" in text, "the flow run's own error log went to the file"
    assert "Traceback" not in result.stderr and "Finished in state" not in terminal.getvalue()


def test_terminal_handlers_are_swapped_for_the_file_and_put_back(home, tmp_path):
    from ops import command_log

    terminal = io.StringIO()
    handler = logging.StreamHandler(terminal)
    logger = logging.getLogger("mlops.test")
    logger.addHandler(handler)
    try:
        with command_log.logs_to(tmp_path / "run.log"):
            logger.error("inside the command")
        logger.error("after the command")
    finally:
        logger.removeHandler(handler)
    assert "inside the command" in (tmp_path / "run.log").read_text()
    assert terminal.getvalue() == "after the command\n"


def test_debug_shows_the_traceback_on_the_terminal(home):
    result = runner.invoke(app, ["--debug", *MISSING])
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("error: input not found")
    assert "traceback and logs" not in result.stderr
