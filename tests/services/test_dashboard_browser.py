"""The monitoring dashboard in real Chromium: a year of replayed windows renders, numbers equal the stored
results, links resolve.

The dashboard runs as `mlops dashboard` (a real process on a free 127.0.0.1 port, stopped by its PID) over a
lake and an MLflow registry written by ``replayed_lake``. Chromium is Debian's package driven by Playwright; the
tests skip, saying why, when it is not installed. How long the first page took to show the whole year is
printed (never asserted).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import replayed_lake
from browser import headless_chromium
from conftest_timings import TIMINGS

from adapters import processes
from flows.settings import REPO_ROOT
from services.dashboard import fmt

UI_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with headless_chromium(
        "no chromium on PATH: the dashboard checks need Debian's chromium package "
        "(`apt-get install -y --no-install-recommends chromium`)"
    ) as launched:
        yield launched


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("dashboard-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        written = replayed_lake.build(home)
    return {"home": home, **written}


@pytest.fixture(scope="module")
def served(lake: dict) -> Iterator[str]:
    """`mlops dashboard` on a free port over the replayed lake; stopped by its PID."""
    port = processes.free_port()
    env = {
        **os.environ,
        "MLOPS_HOME": str(lake["home"]),
        "MLOPS_PROFILE": "local",
        "PREFECT_UI_URL": replayed_lake.PREFECT_UI,
        "OMP_NUM_THREADS": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    mlops = str(Path(sys.executable).parent / "mlops")
    log = (lake["home"] / "dashboard.log").open("w")
    proc = subprocess.Popen([mlops, "dashboard", "--port", str(port)], env=env, stdout=log, stderr=log, cwd=REPO_ROOT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((lake["home"] / "dashboard.log").read_text()[-3000:]) from None
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def page(browser, served: str) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1800})
    page = context.new_page()
    started = time.perf_counter()
    page.goto(served)
    page.wait_for_function("document.querySelectorAll('table.windows tbody tr').length === 12", timeout=UI_TIMEOUT_MS)
    page.wait_for_selector("#performance .scatterlayer .trace", timeout=UI_TIMEOUT_MS)
    TIMINGS["dashboard: first page load, 12 windows"] = time.perf_counter() - started
    started = time.perf_counter()
    page.reload()
    page.wait_for_function("document.querySelectorAll('table.windows tbody tr').length === 12", timeout=UI_TIMEOUT_MS)
    page.wait_for_selector("#performance .scatterlayer .trace", timeout=UI_TIMEOUT_MS)
    TIMINGS["dashboard: reload, 12 windows"] = time.perf_counter() - started
    # where the reload's time went: the server's callbacks vs fetching the page's scripts
    entries = page.evaluate("performance.getEntriesByType('resource').map(e => [e.name, e.responseEnd - e.startTime])")
    callbacks = [ms for name, ms in entries if "_dash-update-component" in name]
    TIMINGS["dashboard: reload, slowest callback"] = max(callbacks, default=0.0) / 1000
    TIMINGS["dashboard: reload, callbacks"] = len(callbacks)
    yield page
    artifacts = Path(os.environ.get("MLOPS_TEST_ARTIFACTS", REPO_ROOT / "var" / "test-artifacts")) / "dashboard"
    artifacts.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(artifacts / "dashboard.png"), full_page=True)
    context.close()


def live(lake: dict) -> dict[str, str]:
    """The version that scored each window last (what the page shows for all versions)."""
    found: dict[str, str] = {}
    for (window, version), _m in sorted(lake["manifests"].items(), key=lambda kv: kv[1]["scored_at"]):
        found[window] = version
    return found


@pytest.mark.integration
def test_every_chart_renders_the_replayed_year(page):
    for graph in ("timeline", "drift-heatmap", "performance", "value"):
        assert page.locator(f"#{graph} .main-svg").count() >= 1, graph
    assert page.locator("#drift-heatmap .hm").count() == 1 or page.locator("#drift-heatmap image").count() >= 1
    ticks = page.locator("#performance .xtick text").all_text_contents()
    assert ticks == replayed_lake.months()
    # bands name the three versions that were live; markers show the promotions and the rejected version 3
    labels = " ".join(page.locator("#performance .annotation-text").all_text_contents())
    assert all(f"v{v}" in labels for v in ("1", "2", "4"))
    assert page.locator("#performance .scatterlayer .trace").count() >= 2


@pytest.mark.integration
def test_numbers_on_the_page_equal_the_stored_results(page, lake):
    versions = live(lake)
    for window, version in versions.items():
        row = page.locator(f'table.windows tr[data-window="{window}"]')
        drift = lake["drift"][(window, version)]
        est = drift["estimate"]
        assert row.locator("td.col-model").inner_text() == version
        assert row.locator("td.col-est").inner_text() == fmt(est["metrics"]["roc_auc"], "metric")
        low, high = est["intervals"]["roc_auc"]
        assert row.locator("td.col-interval").inner_text() == f"{fmt(low, 'metric')} – {fmt(high, 'metric')}"
        assert row.locator("td.col-est-value").inner_text() == fmt(est["value"]["total"], "money")
        assert row.locator("td.col-drift").inner_text() == fmt(drift["score"], "metric")
        manifest = lake["manifests"][(window, version)]
        assert row.locator("td.col-rows").inner_text() == fmt(manifest["rows_scored"], "count")
        share = manifest["rows_quarantined"] / manifest["rows_in"]
        assert row.locator("td.col-quarantined").inner_text() == fmt(share, "share")
        perf = lake["performance"].get((window, version))
        expected = fmt(perf["metrics"]["roc_auc"], "metric") if perf else "–"
        assert row.locator("td.col-real").inner_text() == expected
    total = sum(m["rows_scored"] for (w, v), m in lake["manifests"].items() if versions[w] == v)
    assert page.locator("#summary-1").inner_text() == fmt(total, "count")


@pytest.mark.integration
def test_links_resolve_to_the_report_and_the_runs_that_made_each_window(page, lake):
    versions = live(lake)
    window = "2013-05"
    row = page.locator(f'table.windows tr[data-window="{window}"]')
    report = row.locator("a", has_text="report")
    answer = page.request.get(page.url.rstrip("/") + report.get_attribute("href"))
    assert answer.status == 200 and f"Drift report {window} v{versions[window]}" in answer.text()
    drift = lake["drift"][(window, versions[window])]
    prefect = row.locator("a", has_text="drift").first.get_attribute("href")
    assert prefect == f"{replayed_lake.PREFECT_UI}/runs/flow-run/{drift['flow_run_id']}"
    mlflow = row.locator("a", has_text="drift").last.get_attribute("href")
    assert mlflow == drift["mlflow_run"]["url"]
    missing = page.request.get(page.url.rstrip("/") + f"/reports/{replayed_lake.USECASE}/9/{window}")
    assert missing.status == 404


@pytest.mark.integration
def test_the_version_filter_shows_only_that_versions_windows(page, lake):
    page.locator("#version").click()
    page.get_by_role("option", name="2", exact=True).click()
    page.wait_for_function("document.querySelectorAll('table.windows tbody tr').length === 3", timeout=UI_TIMEOUT_MS)
    shown = page.locator("table.windows tbody tr td.col-window").all_inner_texts()
    assert shown == sorted(w for (w, v) in lake["manifests"] if v == "2")
    page.locator("#version").click()
    page.get_by_role("option", name="all", exact=True).click()
    page.wait_for_function("document.querySelectorAll('table.windows tbody tr').length === 12", timeout=UI_TIMEOUT_MS)
    assert json.dumps(page.locator("#summary-0").inner_text()) == json.dumps("12")
