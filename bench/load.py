"""The product on a busy machine: the demo's phases and `mlops train`, idle vs beside CPU-bound neighbours.

Goal (issue 15): loaded <= 2.5x idle for every phase, and the demo succeeds loaded.
Run: make bench-load   (each demo in its own fresh MLOPS_HOME; two demos and two trainings: many minutes)

"Loaded" = ``--burners`` CPU-bound processes (default 2, one per core of the reference machine) that this
benchmark starts, bounds in time (``--burn-limit``) and stops by PID. "Idle" = none of ours: a shared machine
may be busy anyway, so the load average is printed beside every figure, with the thread settings.
Also prints the ten slowest test files, from a JUnit report of a test run (``make test`` writes one to
var/reports/junit.xml); ``--run-tests`` runs the whole suite here first (opt-in: 13+ minutes idle).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MLOPS = Path(sys.executable).parent / "mlops"
GOAL = 2.5
BURN = "import sys, time\nend = time.time() + float(sys.argv[1])\nwhile time.time() < end:\n    pass\n"


@contextmanager
def burners(count: int, limit_seconds: float):
    """``count`` CPU-bound processes, each ending by itself after ``limit_seconds``; stopped by PID on exit."""
    procs = [subprocess.Popen([sys.executable, "-c", BURN, str(limit_seconds)]) for _ in range(count)]
    try:
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)


def mlops(args: list[str], home: Path) -> tuple[dict, float]:
    """Run one `mlops ... --json` in ``home``; its result and wall seconds (failure: the error line)."""
    env = {**os.environ, "MLOPS_HOME": str(home)}
    started = time.perf_counter()
    done = subprocess.run([str(MLOPS), *args, "--json"], env=env, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - started
    try:
        payload = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        payload = {"ok": False, "error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    return payload, wall


def measure(label: str, home: Path) -> dict:
    """The demo, then `mlops train` on the demo's first months, in a fresh home; seconds per phase."""
    load_before = os.getloadavg()[0]
    demo, demo_wall = mlops(["demo"], home)
    row: dict = {"label": label, "load_before": load_before, "demo_ok": demo.get("ok"), "phases": {}}
    if not demo.get("ok"):
        row["error"] = demo.get("error")
        print(f"  {label}: demo FAILED: {demo.get('error')}", flush=True)
        return row
    row["phases"] = {p["phase"]: p["seconds"] for p in demo["result"]["phases"]}
    row["phases"]["demo (command wall)"] = round(demo_wall, 1)
    trained, train_wall = mlops(["train", "--months", "2013-01..2013-03"], home)
    if trained.get("ok"):
        for part, seconds in trained["result"]["seconds"].items():
            row["phases"][f"mlops train: {part}"] = seconds
        row["phases"]["mlops train (command wall)"] = round(train_wall, 1)
    else:
        row["train_error"] = trained.get("error")
    row["load_after"] = os.getloadavg()[0]
    print(f"  {label}: demo {demo_wall:.0f} s, train {train_wall:.0f} s, load {row['load_after']:.1f}", flush=True)
    return row


def slowest_test_files(report: Path, top: int = 10) -> list[tuple[str, float, int]]:
    """(file, seconds, tests) of the ``top`` slowest files of a JUnit XML report."""
    seconds: dict[str, float] = defaultdict(float)
    tests: dict[str, int] = defaultdict(int)
    for case in ET.parse(report).getroot().iter("testcase"):  # noqa: S314 - our own test run's report
        parts = case.get("classname", "").split(".")  # tests.flows.test_cli[.TestClass]
        module = max((i for i, part in enumerate(parts) if part.startswith("test_")), default=len(parts) - 1)
        name = "/".join(parts[: module + 1]) + ".py"
        seconds[name] += float(case.get("time", 0) or 0)
        tests[name] += 1
    ranked = sorted(seconds.items(), key=lambda kv: -kv[1])[:top]
    return [(name, total, tests[name]) for name, total in ranked]


def print_comparison(idle: dict, loaded: dict) -> bool:
    names = list(dict.fromkeys([*idle["phases"], *loaded["phases"]]))
    print(f"\n{'phase':<36} {'idle s':>8} {'loaded s':>9} {'ratio':>6}  goal <= {GOAL}x")
    met = True
    for name in names:
        a, b = idle["phases"].get(name), loaded["phases"].get(name)
        if a is None or b is None:
            print(f"{name:<36} {a!s:>8} {b!s:>9}")
            continue
        ratio = b / a if a > 0.05 else float("nan")
        small = a < 1.0  # sub-second phases: their ratio is noise, shown but not judged
        ok = small or ratio <= GOAL
        met &= ok
        verdict = "(< 1 s, not judged)" if small else ("MET" if ok else "MISSED")
        print(f"{name:<36} {a:>8.1f} {b:>9.1f} {ratio:>6.2f}  {verdict}")
    return met


def thread_policy(burner_count: int, limit_seconds: float) -> None:
    """HistGradientBoosting fit + 20 predictions, 1 vs 2 OpenMP threads, idle vs loaded: why the default is 1."""
    code = (
        "import sys, time, numpy as np\n"
        "from sklearn.ensemble import HistGradientBoostingClassifier\n"
        "from adapters.compute import model_threads\n"
        "rng = np.random.default_rng(0); X = rng.normal(size=(80_000, 20))\n"
        "y = (X[:, 0] + rng.normal(size=80_000) > 0).astype(int)\n"
        "with model_threads(int(sys.argv[1])):\n"
        "    t = time.perf_counter(); m = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(X, y)\n"
        "    f = time.perf_counter() - t; t = time.perf_counter()\n"
        "    [m.predict_proba(X[:5000]) for _ in range(20)]\n"
        "print(f, time.perf_counter() - t)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}

    def once(threads: int) -> tuple[float, float]:
        out = subprocess.run([sys.executable, "-c", code, str(threads)], env=env, cwd=REPO, capture_output=True)
        fit, predict = out.stdout.split()
        return float(fit), float(predict)

    print("\nthread policy: HGB fit on 80k x 20 + 20 x predict 5k rows, model_threads 1 vs 2 (alternated)")
    for label, count in (("idle", 0), (f"loaded ({burner_count} burners)", burner_count)):
        with burners(count, limit_seconds):
            for threads in (1, 2, 1, 2):
                fit, predict = once(threads)
                print(
                    f"  {label:<20} threads {threads}: fit {fit:6.2f} s, predict {predict:6.2f} s, "
                    f"load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burners", type=int, default=2, help="CPU-bound background processes when loaded")
    parser.add_argument("--burn-limit", type=float, default=1800, help="seconds after which a burner ends itself")
    parser.add_argument("--report", type=Path, default=REPO / "var" / "reports" / "junit.xml", help="JUnit report")
    parser.add_argument("--run-tests", action="store_true", help="run the whole test suite first (opt-in, slow)")
    parser.add_argument("--skip-phases", action="store_true", help="only the slowest test files")
    parser.add_argument("--threads", action="store_true", help="also time a fit with 1 vs 2 threads (opt-in)")
    args = parser.parse_args()

    threads = {k: os.environ.get(k, "(unset)") for k in ("MLOPS_MODEL_THREADS", "OMP_NUM_THREADS")}
    print(f"cores {len(os.sched_getaffinity(0))}, load average {os.getloadavg()}, thread settings {threads}")
    print("(the `mlops` command applies config compute.model_threads to every process it starts)")
    if not args.skip_phases:
        root = Path(tempfile.mkdtemp(prefix="bench-load-"))
        idle = measure("idle", root / "idle")
        with burners(args.burners, args.burn_limit) as pids:
            print(
                f"  started {args.burners} CPU-bound burners (PIDs {pids}), each ends by itself after "
                f"{args.burn_limit:.0f} s",
                flush=True,
            )
            loaded = measure(f"loaded ({args.burners} burners)", root / "loaded")
        print(
            f"\nload average: idle run {idle['load_before']:.1f} -> {idle.get('load_after', 0):.1f}, "
            f"loaded run {loaded['load_before']:.1f} -> {loaded.get('load_after', 0):.1f}"
        )
        met = print_comparison(idle, loaded)
        print(
            f"\ndemo succeeded: idle {idle['demo_ok']}, loaded {loaded['demo_ok']}; "
            f"every judged phase within {GOAL}x: {'MET' if met and loaded['demo_ok'] else 'MISSED'}"
        )
    if args.threads:
        thread_policy(args.burners, args.burn_limit)
    if args.run_tests:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pytest", "-q", f"--junitxml={args.report}"], cwd=REPO, check=False)
    print("\nslowest test files (from a JUnit report of a full run)")
    if not args.report.is_file():
        print(f"  no report at {args.report}: run `make test` (writes it) or pass --run-tests")
        return
    age_hours = (time.time() - args.report.stat().st_mtime) / 3600
    print(f"  {args.report} ({age_hours:.1f} h old)")
    for name, seconds, count in slowest_test_files(args.report):
        print(f"  {seconds:8.1f} s  {count:4d} tests  {name}")


if __name__ == "__main__":
    main()
