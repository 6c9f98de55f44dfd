"""The layering and the use-case boundary hold: tasks are pure, and only config/ knows the domain."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CODE_DIRS = ("flows", "tasks", "adapters", "services", "ops")
# words of the reference use case; a second use case must be a YAML file, not new code
DOMAIN_WORDS = re.compile(
    r"flight|tailnum|carrier|arr_delay|dep_delay|nycflights|weather|airport|aircraft"  # the reference use case
    r"|glucose|isig|\bcgm\b|bokeh|reading_id|is_high",  # the second one (config/usecases/glucose_high.yaml)
    re.I,
)
FORBIDDEN_IN_TASKS = {
    "prefect",
    "mlflow",
    "boto3",
    "botocore",
    "adapters",
    "flows",
    "services",
    "ops",
    "os",
    "great_expectations",
}


def python_files(*dirs: str) -> list[Path]:
    return sorted(p for d in dirs for p in (REPO / d).rglob("*.py"))


@pytest.mark.parametrize("path", python_files(*CODE_DIRS), ids=lambda p: str(p.relative_to(REPO)))
def test_code_has_no_use_case_specific_names(path):
    hits = [
        f"{n}: {line.strip()}" for n, line in enumerate(path.read_text().splitlines(), 1) if DOMAIN_WORDS.search(line)
    ]
    assert not hits, "\n".join(hits)


@pytest.mark.parametrize("path", python_files("tasks"), ids=lambda p: str(p.relative_to(REPO)))
def test_tasks_import_no_io_or_orchestration(path):
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN_IN_TASKS


def test_import_linter_contracts_hold():
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports")], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_machine_paths_committed():
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split()
    offenders = []
    for name in tracked:
        path = REPO / name
        text_file = path.suffix in {".py", ".yaml", ".yml", ".toml", ".md", ".json", ".tf", ".cfg"} and path.is_file()
        if text_file and re.search(r"/(work|root|home/(?!mlops/)[a-z]+)/", path.read_text(errors="ignore")):
            offenders.append(name)
    assert not offenders
