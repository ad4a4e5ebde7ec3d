"""How far a study's latency figures can be trusted, per device: their noise, and how they rank designs.

For the training device and every `[latency]` target: the designs timed there, the median coefficient of
variation of their timings, and Spearman's rank correlation of their latency with MACs and with the training
device's latency (1: the same order; lower: the target ranks designs differently), and how much the front's
latencies moved when the run timed them again at its end.
"""

from __future__ import annotations

from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from xsearch.deploy.latency_targets import TRAIN_DEVICE
from xsearch.study.record import StudyAttr, TrialAttr, is_repeat

COLUMNS = (
    "target",
    "runtime",
    "designs",
    "median_ms",
    "median_cv",
    "spearman_macs",
    "spearman_train_device",
    "front_drift",
)


def latency_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per device that timed the study's designs (trials that are not repeats), training device first."""
    rows = [
        _design_row(t)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not is_repeat(t) and TrialAttr.LATENCY_MS in t.user_attrs
    ]
    if not rows:
        return pd.DataFrame(columns=list(COLUMNS))
    designs = pd.DataFrame(rows)
    # training device first
    targets = list(
        dict.fromkeys(k.split("@", 1)[1] for row in rows for k in row if k.startswith("ms@"))
    )
    drift = _front_drift(study)
    return pd.DataFrame(
        [
            {**_target_row(designs, target), "front_drift": drift.get(target, float("nan"))}
            for target in targets
        ],
        columns=list(COLUMNS),
    )


def latency_summary(study: optuna.Study) -> list[str]:
    """Terminal lines: per device, its noise and rank correlations (none when no trial was timed)."""
    lines = []
    for row in latency_frame(study).itertuples(index=False):
        correlation = (
            f", rank correlation with MACs {row.spearman_macs:.2f}"
            if pd.notna(row.spearman_macs)
            else ""
        )
        versus = (
            f", with {TRAIN_DEVICE} {row.spearman_train_device:.2f}"
            if row.target != TRAIN_DEVICE and pd.notna(row.spearman_train_device)
            else ""
        )
        drift = (
            f", front re-timed within {row.front_drift:.1%} (median)"
            if pd.notna(row.front_drift)
            else ""
        )
        lines.append(
            f"latency on {row.target} ({row.runtime}): {row.designs} designs, median {row.median_ms:.3g} ms, "
            f"noise (median cv) {row.median_cv:.1%}{correlation}{versus}{drift}"
        )
    return lines


def _front_drift(study: optuna.Study) -> dict[str, float]:
    """Per device, the median relative change of the front's latencies re-timed at the end of the run
    (`xsearch.run.remeasure`): ``|again / first - 1|``."""
    remeasured = study.user_attrs.get(StudyAttr.LATENCY_REMEASURED) or {}
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    changes: dict[str, list[float]] = {}
    for number, again in remeasured.items():
        first = trials[int(number)].user_attrs if int(number) in trials else {}
        for attr, ms in again.items():
            target = attr.split("@", 1)[1] if "@" in attr else TRAIN_DEVICE
            if isinstance(first.get(attr), (int, float)) and 0 < first[attr] < float("inf"):
                changes.setdefault(target, []).append(abs(ms / first[attr] - 1.0))
    return {target: float(pd.Series(values).median()) for target, values in changes.items()}


def _design_row(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    attrs = trial.user_attrs
    row: dict[str, Any] = {
        "macs": attrs.get(TrialAttr.MACS),
        f"ms@{TRAIN_DEVICE}": attrs[TrialAttr.LATENCY_MS],
        f"cv@{TRAIN_DEVICE}": attrs.get(TrialAttr.LATENCY_CV),
        f"runtime@{TRAIN_DEVICE}": f"{attrs.get(TrialAttr.BACKEND)} on {attrs.get(TrialAttr.DEVICE)}",
    }
    for target, result in (attrs.get(TrialAttr.LATENCY_TARGETS) or {}).items():
        if "median_ms" in result:
            row.update(
                {
                    f"ms@{target}": result["median_ms"],
                    f"cv@{target}": result.get("cv"),
                    f"runtime@{target}": f"{result.get('runtime')} {result.get('runtime_version')}, "
                    f"{result.get('threads')} threads",
                }
            )
    return row


def _target_row(designs: pd.DataFrame, target: str) -> dict[str, Any]:
    timed = designs.dropna(subset=[f"ms@{target}"])
    latency = timed[f"ms@{target}"].astype(float)
    return {
        "target": target,
        "runtime": timed[f"runtime@{target}"].mode().iat[0],
        "designs": len(timed),
        "median_ms": latency.median(),
        "median_cv": timed[f"cv@{target}"].astype(float).median(),
        "spearman_macs": _spearman(latency, timed["macs"]),
        "spearman_train_device": _spearman(latency, timed[f"ms@{TRAIN_DEVICE}"]),
    }


def _spearman(a: pd.Series, b: pd.Series) -> float:
    """Spearman's rank correlation (NaN below 3 designs or with a constant column)."""
    pairs = pd.DataFrame({"a": a.astype(float), "b": pd.to_numeric(b, errors="coerce")}).dropna()
    if len(pairs) < 3 or pairs["a"].nunique() < 2 or pairs["b"].nunique() < 2:
        return float("nan")
    return float(pairs["a"].rank().corr(pairs["b"].rank()))
