"""Two finished runs of one study side by side: training spent and the fronts found.

Usage: python -m benchmarks.compare_runs --study NAME [--new-study NAME] OLD_DIR NEW_DIR

Per run: trials, trials stopped early, epochs trained (independent of the machine's load), training
seconds (the sum of each trial's epoch times), and its front (`xsearch.results.pareto.pareto_front`).
The fronts' hypervolumes are computed on the trials of both runs together, each objective min-max
scaled over them (maximised ones negated), with the reference point 1.1 in each.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.study import StudyDirection

from xsearch.results.pareto import pareto_front
from xsearch.study.optuna_private import hypervolume
from xsearch.study.record import TrialAttr, is_repeat, is_stopped
from xsearch.study.storage import load_study, run_storage

REFERENCE = 1.1


def summary(study: optuna.Study) -> dict[str, Any]:
    """Trials, stops, epochs and training seconds of a finished study, and its front's trial values."""
    trained = [
        t
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if not is_repeat(t)
    ]
    return {
        "trials": len(trained),
        "stopped": sum(map(is_stopped, trained)),
        "epochs": sum(len(t.user_attrs.get(TrialAttr.EPOCH_TIMES_S) or []) for t in trained),
        "train_s": sum(sum(t.user_attrs.get(TrialAttr.EPOCH_TIMES_S) or []) for t in trained),
        "front": [list(t.values) for t in pareto_front(study)],
        "all": [list(t.values) for t in trained],
    }


def front_hypervolumes(runs: list[dict[str, Any]], directions: list[StudyDirection]) -> list[float]:
    """Each run's front hypervolume, scaled over the trials of all ``runs``."""
    signs = np.array([-1.0 if d == StudyDirection.MAXIMIZE else 1.0 for d in directions])
    every = np.array([v for run in runs for v in run["all"]]) * signs
    low, span = every.min(axis=0), np.where(np.ptp(every, axis=0) > 0, np.ptp(every, axis=0), 1.0)
    return [
        hypervolume((np.array(run["front"]) * signs - low) / span, np.full(len(signs), REFERENCE))
        for run in runs
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.compare_runs", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--study",
        required=True,
        help="the study's name in both run folders (in the first with --new-study)",
    )
    parser.add_argument(
        "--new-study", help="the study's name in the second run folder, where it differs"
    )
    parser.add_argument("runs", type=Path, nargs=2, metavar="DIR")
    args = parser.parse_args(argv)
    names = [args.study, args.new_study or args.study]
    studies = [
        load_study(run_storage(name, out=folder), name) for name, folder in zip(names, args.runs)
    ]
    runs = [summary(study) for study in studies]
    for folder, run, volume in zip(
        args.runs, runs, front_hypervolumes(runs, studies[0].directions)
    ):
        front = ", ".join(
            "(" + ", ".join(f"{v:.4g}" for v in values) + ")" for values in run["front"]
        )
        print(
            f"{folder}: {run['trials']} trials, {run['stopped']} stopped, {run['epochs']} epochs, "
            f"{run['train_s']:.0f} s training; front hypervolume {volume:.4f}: {front}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
