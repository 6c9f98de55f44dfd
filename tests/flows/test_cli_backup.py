"""`mlops backup`: help for each subcommand, one JSON object with --json, one-line errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ops.commands import app

runner = CliRunner()


@pytest.mark.parametrize("command", ["create", "verify", "restore"])
def test_every_backup_command_has_help(command):
    result = runner.invoke(app, ["backup", command, "--help"])
    assert result.exit_code == 0 and "--json" in result.output


def test_verify_of_a_folder_that_is_no_backup_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    result = runner.invoke(app, ["backup", "verify", str(tmp_path), "--json"])
    assert result.exit_code == 1
    out = json.loads(result.stdout)  # the one line, then the log file that holds the details
    assert out["ok"] is False and out["error"].startswith(f"no backup at {tmp_path} (no manifest.json) (traceback")


def test_restore_into_a_home_with_state_is_refused_naming_the_file(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "mlflow").mkdir(parents=True)
    (home / "mlflow" / "mlflow.db").write_bytes(b"")
    monkeypatch.setenv("MLOPS_HOME", str(home))
    result = runner.invoke(app, ["backup", "restore", str(tmp_path / "b"), "--json"])
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert error.startswith(
        f"home {home} is not empty (mlflow/mlflow.db exists): restore into an empty home or a fresh stack (traceback"
    )
