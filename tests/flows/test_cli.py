"""The `mlops` command: --help everywhere, exactly one JSON object with --json, one-line errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ops.commands import app

runner = CliRunner()
COMMANDS = [
    "land",
    "ingest",
    "train",
    "register",
    "retrain",
    "history",
    "rollback",
    "score",
    "demo",
    "drift-check",
    "performance-check",
    "replay",
    "api",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "--json" in result.output


def test_serve_has_help_naming_its_deployment_option():
    # serve runs until stopped: it prints no JSON summary
    result = runner.invoke(app, ["serve", "--help"])
    assert result.exit_code == 0 and "--deployment" in result.output


def test_ingest_json_prints_exactly_one_object(home, fixture_batch):
    result = runner.invoke(app, ["ingest", "--input", str(fixture_batch), "--json"])
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)  # fails if anything else was printed on stdout
    assert payload["ok"] is True
    assert payload["result"]["rows_in"] == payload["result"]["rows_curated"] + payload["result"]["rows_quarantined"]


def test_relative_landing_folder_is_resolved(home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["land", "--month", "2013-03", "--to", "raw", "--format", "parquet", "--json"])
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)["result"]
    assert payload["batch_uri"] == str(tmp_path / "raw" / "2013-03")
    assert (tmp_path / "raw" / "2013-03" / "flights.parquet").is_file()
    assert payload["tables"]["flights"]["rows"] == 28834


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["land", "--month", "2013-13"], "period '2013-13' is not a month (YYYY-MM), an ISO week"),
        (["land", "--month", "2013-01", "--format", "xml"], "--format must be csv or parquet"),
        (["ingest", "--input", "/nonexistent/batch", "--month", "2013-01"], "input not found"),
    ],
)
def test_errors_exit_non_zero_with_one_line(home, args, message):
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload == {"ok": False, "error": payload["error"]}
    assert message in payload["error"]
    assert "\n" not in payload["error"]
    assert message in result.stderr
