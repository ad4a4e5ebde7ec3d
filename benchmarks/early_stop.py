"""Early stopping replayed on a finished study: what each rule would have stopped, saved and lost.

Usage: python -m benchmarks.early_stop --study NAME|PATH [--out DIR | --storage URL]
                                       [--after-epochs 2 3] [--margins 0.01 0.02 0.05] [--json out.json]

The study must have trained its designs fully (no ``early_stop`` rule), so that each trial's
learning curve is known to its end. The trials are replayed in the order they started: a trial is
compared, after each epoch from ``after_epochs`` on, with the trials that had finished before it
started and were not stopped themselves, exactly as `xsearch.study.early_stop.StopDominated` compares it
during a run. Per rule: the trials it stops, the training time it skips (each stopped trial's
``train_time_s`` pro rata to its epochs skipped), the fully trained Pareto front's trials it would
have stopped ("front lost"), and the hypervolume of the front the run would have reported (stopped
trials at the accuracy they had) over that of the full front. The sampler's later proposals would
differ in a real run; the replay isolates the rule.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import optuna
from optuna._hypervolume import compute_hypervolume
from optuna.trial import FrozenTrial, TrialState

from benchmarks.throughput import environment, table, write_json
from xsearch.study.early_stop import COST_OBJECTIVES, accuracy_at, dominating_trial
from xsearch.study.optuna_private import pareto_mask
from xsearch.study.record import TrialAttr, is_repeat, is_stopped
from xsearch.study.spec import OBJECTIVES, read_spec
from xsearch.study.storage import load_study, run_storage, study_name_from

ACCURACY = OBJECTIVES["accuracy"].metric
COSTS = [OBJECTIVES[name].metric for name in COST_OBJECTIVES]


def trained_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The feasible COMPLETE trials that trained their design fully, in the order they started."""
    trials = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not is_repeat(t)
        and t.user_attrs.get(TrialAttr.FEASIBLE)
        and t.user_attrs.get(TrialAttr.CURVES)
    ]
    if any(map(is_stopped, trials)):
        raise ValueError(
            f"study {study.study_name!r} stopped trials early: replay a study trained without early_stop."
        )
    return sorted(trials, key=lambda t: t.datetime_start)


def replay(
    trials: list[FrozenTrial], metrics: list[str], epochs: int, after_epochs: int, margin: float
) -> dict[int, int]:
    """The epoch at which the rule stops each trial it stops, by trial number."""
    stopped: dict[int, int] = {}
    for trial in trials:
        references = [
            t
            for t in trials
            if t.datetime_complete <= trial.datetime_start and t.number not in stopped
        ]
        costs = {metric: float(trial.user_attrs[metric]) for metric in metrics if metric in COSTS}
        for epoch in range(after_epochs, epochs):
            accuracy = accuracy_at(trial, epoch)
            if accuracy is not None and dominating_trial(
                references,
                costs,
                accuracy,
                epoch,
                margin,
                trial.user_attrs[TrialAttr.SETUP_DIGEST],
                epochs,
            ):
                stopped[trial.number] = epoch
                break
    return stopped


def score(
    trials: list[FrozenTrial],
    metrics: list[str],
    directions: list[str],
    epochs: int,
    stopped: dict[int, int],
) -> dict[str, Any]:
    """What the stops in ``stopped`` save and lose against training every trial fully."""

    def losses(replayed: bool) -> np.ndarray:
        rows = []
        for t in trials:
            values = {m: float(t.user_attrs[m]) for m in metrics}
            if replayed and t.number in stopped:
                values[ACCURACY] = accuracy_at(t, stopped[t.number])
            rows.append(
                [values[m] if d == "minimize" else -values[m] for m, d in zip(metrics, directions)]
            )
        return np.array(rows)

    full, partial = losses(False), losses(True)
    both = np.vstack([full, partial])  # a stopped trial's accuracy may be the lowest of all
    low, high = both.min(axis=0), both.max(axis=0)
    scale = np.where(high > low, high - low, 1.0)
    reference = np.full(full.shape[1], 1.1)
    front = {t.number for t, on in zip(trials, pareto_mask(full)) if on}
    train_time = sum(float(t.user_attrs.get(TrialAttr.TRAIN_TIME_S, 0.0)) for t in trials)
    skipped = sum(
        float(t.user_attrs.get(TrialAttr.TRAIN_TIME_S, 0.0)) * (epochs - stopped[t.number]) / epochs
        for t in trials
        if t.number in stopped
    )
    return {
        "trials": len(trials),
        "stopped": len(stopped),
        "stopped_at": stopped,
        "epochs_skipped": sum(epochs - epoch for epoch in stopped.values()),
        "epochs_total": epochs * len(trials),
        "train_time_skipped_fraction": skipped / train_time if train_time else 0.0,
        "front": len(front),
        "front_lost": sorted(front & set(stopped)),
        "hypervolume_ratio": float(
            compute_hypervolume((partial - low) / scale, reference)
            / compute_hypervolume((full - low) / scale, reference)
        ),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = _parse(argv)
    name = study_name_from(args.study)
    try:
        study = load_study(run_storage(args.study, args.storage, args.out), name)
        trials = trained_trials(study)
        epochs = read_spec(study).training.epochs
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    metrics, directions = list(study.metric_names), [d.name.lower() for d in study.directions]
    if ACCURACY not in metrics:
        raise SystemExit(
            f"study {name!r} has no accuracy objective ({metrics}): early stopping does not apply."
        )
    started = time.perf_counter()
    rows = [
        {
            "after_epochs": after,
            "margin": margin,
            **score(
                trials, metrics, directions, epochs, replay(trials, metrics, epochs, after, margin)
            ),
        }
        for after in args.after_epochs
        if 1 <= after < epochs
        for margin in args.margins
    ]
    report = {
        "benchmark": "early_stop",
        "study": name,
        "epochs": epochs,
        "objectives": metrics,
        "environment": environment(),
        "seconds": time.perf_counter() - started,
        "rows": rows,
    }
    _print(report)
    write_json(args.json, report)
    return report


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", required=True, help="the study's name or .toml path")
    parser.add_argument("--out", help="its run folder (default runs/<study>)")
    parser.add_argument("--storage", help="its storage URL or .journal path (instead of --out)")
    parser.add_argument("--after-epochs", nargs="+", type=int, default=[2, 3])
    parser.add_argument("--margins", nargs="+", type=float, default=[0.01, 0.02, 0.05])
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if not all(0 < margin < 1 for margin in args.margins):
        parser.error("--margins must be in (0, 1).")
    return args


def _print(report: dict[str, Any]) -> None:
    rows = report["rows"]
    print(
        f"Early stopping replayed on study {report['study']!r}: {rows[0]['trials'] if rows else 0} trials "
        f"trained fully, {report['epochs']} epochs each"
    )
    headers = [
        "after epochs",
        "margin",
        "stopped",
        "epochs skipped",
        "train time skipped",
        "front lost",
        "hypervolume kept",
    ]
    print(
        table(
            headers,
            [
                [
                    r["after_epochs"],
                    r["margin"],
                    r["stopped"],
                    f"{r['epochs_skipped']}/{r['epochs_total']}",
                    f"{100 * r['train_time_skipped_fraction']:.0f} %",
                    f"{len(r['front_lost'])}/{r['front']}",
                    f"{r['hypervolume_ratio']:.3f}",
                ]
                for r in rows
            ],
        )
    )


if __name__ == "__main__":
    main()
