"""Pure rules of the closed-loop replay: the baseline policies' models, the comparison of policies, the goals.

Three policies score the same months: *static* (the model of the base months, never retrained), *oracle* (a
model of the months just before each month, retrained every month and always deployed) and *ours* (the
champion the closed loop left in place). The baselines are fitted exactly as the training flow fits a model
(labelled rows, time split, the pipeline fitted on the train part), so the oracle of month M is the model the
loop would get by retraining on the same months.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from tasks import training
from tasks.errors import MlopsError
from tasks.landing import parse_period
from tasks.usecase import UseCase

STATIC, ORACLE, OURS = "static", "oracle", "ours"
POLICIES = (STATIC, ORACLE, OURS)


@dataclass(frozen=True)
class ReplayGoals:
    """What the loop must achieve against the baselines."""

    min_recovered_share: float = 0.90  # of the oracle's mean metric gain over static
    max_retrain_ratio: float = 0.60  # our retrainings / the oracle's
    max_violations: int = 0  # promotions of a model worse than the champion it replaced, on the next month


@dataclass(frozen=True)
class PromotionCheck:
    """A promotion made after ``after_month``: the new and the replaced champion on the month that followed."""

    after_month: str
    next_month: str | None
    new_version: str
    previous_version: str
    new_auc: float | None
    previous_auc: float | None
    next_refused: bool = False  # the new champion's contract refused the next month's batch in the loop

    @property
    def delta(self) -> float | None:
        if self.new_auc is None or self.previous_auc is None:
            return None
        return self.new_auc - self.previous_auc

    @property
    def worse(self) -> bool | None:
        """True when the new champion did worse on the next month; None when that month is not in the replay."""
        delta = self.delta
        return None if delta is None else delta < 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "delta": self.delta, "worse": self.worse}


def months_before(month: str, count: int) -> list[str]:
    """The ``count`` calendar months before ``month``, oldest first.

    Raises:
        MlopsError: ``count`` below 1 or a malformed month.
    """
    if count < 1:
        raise MlopsError(f"need at least one month before {month}, got {count}")
    year, number = parse_period(month)
    index = year * 12 + number - 1
    return [f"{i // 12:04d}-{i % 12 + 1:02d}" for i in range(index - count, index)]


def next_month(month: str) -> str:
    year, number = parse_period(month)
    return f"{year + number // 12:04d}-{number % 12 + 1:02d}"


def fit_window_model(frame: pd.DataFrame, usecase: UseCase) -> Pipeline:
    """A model of ``frame`` fitted as the training flow fits one: labelled rows, time split, train part only."""
    training.check_training_input(frame, usecase)
    split = training.time_split(training.labelled_rows(frame, usecase), usecase)
    return training.fit_pipeline(training.build_pipeline(usecase), split, usecase)


def labelled_auc(model: Pipeline, frame: pd.DataFrame, usecase: UseCase) -> float | None:
    """ROC AUC of ``model`` on the labelled rows of ``frame``; None when they hold a single class or none."""
    rows = training.labelled_rows(frame, usecase)
    y = rows[usecase.target.name].to_numpy(dtype=np.int64)
    if rows.empty or np.unique(y).size < 2:
        return None
    proba = model.predict_proba(training.feature_frame(rows, usecase))[:, 1]
    return float(roc_auc_score(y, proba))


def recovered_share(ours: float, static: float, oracle: float) -> float | None:
    """(ours - static) / (oracle - static): the share of the oracle's gain over static that ours recovered.

    None when the oracle gained nothing over static (there is no gain to recover).
    """
    gain = oracle - static
    return None if gain <= 0.0 else (ours - static) / gain


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarize(
    table: Sequence[Mapping[str, float | None]],
    retrains: Mapping[str, int],
    checks: Sequence[PromotionCheck],
    goals: ReplayGoals = ReplayGoals(),
) -> dict:
    """Means per policy, recovered share, retrain ratio, violations and the verdict on each goal.

    Args:
        table: One mapping per month with ``month`` and the metric of ``static``, ``oracle`` and ``ours`` (a
            month where one of them is None is left out of every mean, so the means compare the same months).
        retrains: Retrainings per policy (``oracle`` and ``ours``).
        checks: One check per promotion of ours.
        goals: The targets.
    """
    complete = [row for row in table if all(_known(row.get(p)) for p in POLICIES)]
    means = {p: _mean([float(row[p]) for row in complete]) for p in POLICIES}  # type: ignore[arg-type]
    share = None
    if complete:
        share = recovered_share(means[OURS], means[STATIC], means[ORACLE])  # type: ignore[arg-type]
    ratio = retrains[OURS] / retrains[ORACLE] if retrains.get(ORACLE) else None
    violations = [c for c in checks if c.worse]
    summary = {
        "months_compared": [str(row["month"]) for row in complete],
        "months_left_out": [str(row["month"]) for row in table if row not in complete],
        "mean_auc": means,
        "oracle_gain": None if not complete else means[ORACLE] - means[STATIC],  # type: ignore[operator]
        "ours_gain": None if not complete else means[OURS] - means[STATIC],  # type: ignore[operator]
        "recovered_share": share,
        "retrains": dict(retrains),
        "retrain_ratio": ratio,
        "promotions": len(checks),
        "promotions_unchecked": sum(1 for c in checks if c.worse is None),
        "violations": [c.to_dict() for c in violations],
    }
    return {**summary, "goals": goal_verdicts(share, ratio, len(violations), goals)}


def goal_verdicts(share: float | None, ratio: float | None, violations: int, goals: ReplayGoals) -> list[dict]:
    """Each goal with its measured value, its target and whether it is met (None: not measurable)."""
    return [
        {
            "goal": "recovered share of the oracle's gain",
            "value": share,
            "target": f">= {goals.min_recovered_share:.0%}",
            "met": None if share is None else share >= goals.min_recovered_share,
        },
        {
            "goal": "retrainings / oracle's",
            "value": ratio,
            "target": f"<= {goals.max_retrain_ratio:.0%}",
            "met": None if ratio is None else ratio <= goals.max_retrain_ratio,
        },
        {
            "goal": "promotions worse on the next month",
            "value": violations,
            "target": f"<= {goals.max_violations}",
            "met": violations <= goals.max_violations,
        },
    ]


def _known(value: object) -> bool:
    return isinstance(value, int | float) and not math.isnan(value)


# ---- report


def month_table(result: Mapping) -> list[list[str]]:
    """The per-month table of a replay result: a header row, then one row per month (all text)."""
    header = ["month", "scored by", *POLICIES, "performance", "drift", "retrain", "gate", "champion after"]
    rows = [header]
    for r in result["table"]:
        auc, perf, drift = r["auc"], r["performance"], r["drift"]
        if r.get("refused"):
            verdict = check = "batch refused"
        else:
            verdict = {None: "no verdict", True: "degraded", False: "ok"}[perf["degraded"]]
            drifted = {None: "no verdict", True: "drifted", False: "stable"}[drift["drifted"]]
            score = "" if drift["score"] is None else f" {drift['score']:.2f}"
            check = f"{drifted}{score}{', requested' if drift['retrain_requested'] else ''}"
        runs = r["retrain_runs"]
        retrain = "-" if not runs else " + ".join(o["status"] for o in runs)
        gates = [_gate_text(o) for o in runs if o.get("gate")]
        rows.append(
            [
                r["month"],
                f"v{r['scored_by']}",
                *("refused" if p == OURS and r.get("refused") else _number(auc[p]) for p in POLICIES),
                verdict,
                check,
                retrain,
                "; ".join(gates) or "-",
                f"v{r['champion_after']}",
            ]
        )
    return rows


def _gate_text(outcome: Mapping) -> str:
    gate = outcome["gate"]
    text = f"v{outcome['version']} {gate['outcome']}"
    boot = gate.get("bootstrap")
    if boot:
        text += f" (diff {boot['diff']:+.4f} [{boot['low']:+.4f}, {boot['high']:+.4f}])"
    return text


def summary_rows(result: Mapping) -> list[tuple[str, str]]:
    """The summary of a replay result as (label, text) pairs: means, gains, ratios, goals, checks, timings."""
    s = result["summary"]
    means = s["mean_auc"]
    rows = [(f"mean AUC {p}", _number(means[p])) for p in POLICIES]
    rows += [
        ("oracle gain over static", _number(s["oracle_gain"], signed=True)),
        ("ours gain over static", _number(s["ours_gain"], signed=True)),
        ("months compared", f"{len(s['months_compared'])} of {len(result['table'])}"),
        ("months left out (a policy has no value)", ", ".join(s["months_left_out"]) or "none"),
        ("recovered share", _share(s["recovered_share"])),
        ("recovered share, champion on every month", _share(s.get("recovered_share_all_rows"))),
        ("retrains ours / oracle", f"{s['retrains'][OURS]} / {s['retrains'][ORACLE]}"),
        ("retrain ratio", _share(s["retrain_ratio"])),
        ("promotions", str(s["promotions"])),
    ]
    for check in result["promotion_checks"]:
        where = check["next_month"] or "no next month in the replay"
        delta = "" if check["delta"] is None else f": {check['new_auc']:.4f} vs {check['previous_auc']:.4f}"
        verdict = {None: "unchecked", True: "WORSE", False: "not worse"}[check["worse"]]
        if check.get("next_refused"):
            verdict += f", and its contract refused {check['next_month']}"
        rows.append(
            (
                f"promotion after {check['after_month']}",
                f"v{check['new_version']} vs v{check['previous_version']} on {where}{delta} -> {verdict}",
            )
        )
    for goal in s["goals"]:
        met = {None: "not measurable", True: "MET", False: "MISSED"}[goal["met"]]
        value = goal["value"] if isinstance(goal["value"], int) else _share(goal["value"])
        rows.append((f"goal: {goal['goal']}", f"{value} (target {goal['target']}) {met}"))
    t = result["timings"]
    rows.append(("seconds: whole replay", f"{t['total_seconds']:.0f}"))
    per_month = list(t["month_seconds"].values())
    if per_month:
        rows.append(("seconds per month (mean, max)", f"{sum(per_month) / len(per_month):.0f}, {max(per_month):.0f}"))
    rows.append(("files", f"{result['files']['json']}, {result['files']['plot']}"))
    return rows


def _number(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
