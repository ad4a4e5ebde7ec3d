"""Repeated designs: how often a study's sampler proposes a design already trained, and what reusing them buys.

Usage: python -m benchmarks.repeats [--studies quickstart cifar10 imagenet-small] [--samplers tpe nsga2]
                                       [--seeds 20] [--json out.json]

Each study's space and sampler (`xsearch.study.sampler.make_sampler`, with the study's trial budget N) run
on a synthetic objective: accuracy, parameters and latency made up from the design's axes, the same
on every call for one design, and nothing is trained. Without reuse, every trial trains, so the
repeats among the first N trials are trainings wasted. With reuse (xsearch, `xsearch.study.repeats`), a
repeat gets the earlier values at no cost and the run goes on until N designs are trained (or
`REPEAT_STREAK_LIMIT` repeats come in a row). The hypervolume of the designs trained is computed
on losses scaled to [0, 1] (1 - accuracy, params and latency over the space's largest design),
against the reference point (1, 1, 1).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import math
import time
import warnings
from typing import Any

import numpy as np
import optuna
from optuna._hypervolume import compute_hypervolume

from benchmarks.throughput import environment, table, write_json
from xsearch.model.config import XceptionConfig
from xsearch.model.space import SearchSpace
from xsearch.run.runner import REPEAT_STREAK_LIMIT
from xsearch.study.batch_size import largest_design
from xsearch.study.sampler import make_sampler
from xsearch.study.spec import load_study_spec

STUDIES = ("quickstart", "cifar10", "imagenet-small")
DIRECTIONS = ("maximize", "minimize", "minimize")


def synthetic_costs(config: XceptionConfig) -> tuple[float, float]:
    """Made-up parameters and latency of a design, in arbitrary units, growing as a real design's do."""
    conv = 1 + 9 / (64 * config.width if config.segments == "depthwise" else config.segments)
    blocks = config.middle_repeats + 4
    params = config.width**2 * blocks * config.depth_multiplier * conv
    latency = config.width * blocks * config.depth_multiplier * (1 + 0.3 * conv)
    return params, latency


def synthetic_accuracy(config: XceptionConfig, params: float) -> float:
    """Made-up accuracy: more capacity helps with diminishing returns, as do residuals; a fixed
    per-design jitter of up to 0.02 stands for what the axes do not explain."""
    jitter = int(hashlib.sha256(config.to_json().encode()).hexdigest()[:8], 16) / 16**8
    return (
        0.6
        + 0.3 * (1 - math.exp(-3 * params))
        - 0.02 * (config.intermediate_activation != "none")
        - 0.04 * (not config.residual)
        + 0.02 * jitter
    )


def run_sampler(study_name: str, sampler: str, seed: int) -> dict[str, Any]:
    """Ask the study's sampler until its budget of designs is trained; what each policy trained."""
    spec = dataclasses.replace(load_study_spec(study_name), sampler=sampler, seed=seed)
    space = SearchSpace.from_toml(spec.space)
    scale = synthetic_costs(largest_design(space))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(directions=list(DIRECTIONS), sampler=make_sampler(spec, space))
    seen: dict[str, tuple[float, float, float]] = {}
    first_asks: list[int] = []  # the ask at which each design was first proposed
    asks = streak = 0
    while len(seen) < spec.trials and streak < REPEAT_STREAK_LIMIT:
        trial = study.ask()
        config = space.sample(trial)
        key = config.to_json()
        if key not in seen:
            params, latency = synthetic_costs(config)
            seen[key] = (synthetic_accuracy(config, params / scale[0]), params, latency)
            first_asks.append(asks)
        streak = 0 if first_asks[-1] == asks else streak + 1
        asks += 1
        study.tell(trial, seen[key])
    losses = np.array(
        [
            (1 - accuracy, params / scale[0], latency / scale[1])
            for accuracy, params, latency in seen.values()
        ]
    )
    without_reuse = sum(1 for ask in first_asks if ask < spec.trials)
    return {
        "trials": spec.trials,
        "asks": asks,
        "designs_trained": len(seen),
        "repeats_in_budget": spec.trials - without_reuse,
        "hypervolume_without_reuse": _hypervolume(losses[:without_reuse]),
        "hypervolume_with_reuse": _hypervolume(losses),
    }


def _hypervolume(losses: np.ndarray) -> float:
    return float(compute_hypervolume(losses, np.ones(losses.shape[1]))) if len(losses) else 0.0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = _parse(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    rows = []
    for study_name in args.studies:
        for sampler in args.samplers:
            runs = [run_sampler(study_name, sampler, seed) for seed in range(args.seeds)]
            trials = runs[0]["trials"]
            rows.append(
                {
                    "study": study_name,
                    "sampler": sampler,
                    "trials": trials,
                    "seeds": args.seeds,
                    "repeats_in_budget_mean": float(
                        np.mean([r["repeats_in_budget"] for r in runs])
                    ),
                    "repeat_fraction": float(np.mean([r["repeats_in_budget"] for r in runs]))
                    / trials,
                    "asks_with_reuse_mean": float(np.mean([r["asks"] for r in runs])),
                    "asks_with_reuse_max": max(r["asks"] for r in runs),
                    "designs_trained_with_reuse_mean": float(
                        np.mean([r["designs_trained"] for r in runs])
                    ),
                    "hypervolume_without_reuse_mean": float(
                        np.mean([r["hypervolume_without_reuse"] for r in runs])
                    ),
                    "hypervolume_with_reuse_mean": float(
                        np.mean([r["hypervolume_with_reuse"] for r in runs])
                    ),
                    "runs": runs,
                }
            )
    report = {
        "benchmark": "repeats",
        "environment": environment(),
        "optuna_version": optuna.__version__,
        "seconds": time.perf_counter() - started,
        "rows": rows,
    }
    _print(report)
    write_json(args.json, report)
    return report


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--studies", nargs="+", default=list(STUDIES), help="shipped study names or .toml paths"
    )
    parser.add_argument(
        "--samplers", nargs="+", choices=("tpe", "nsga2", "random", "gp"), default=["tpe", "nsga2"]
    )
    parser.add_argument(
        "--seeds", type=int, default=20, help="runs per study and sampler (seeds 0, 1, ...)"
    )
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be >= 1.")
    return args


def _print(report: dict[str, Any]) -> None:
    print(
        f"Repeated designs on a synthetic objective, {report['rows'][0]['seeds'] if report['rows'] else 0} "
        f"seeds each, Optuna {report['optuna_version']} ({report['seconds']:.0f} s)"
    )
    headers = [
        "study",
        "sampler",
        "trials N",
        "repeats in N (retrained before)",
        "asks for N designs (max)",
        "hypervolume: N trials -> N designs",
    ]
    rows = [
        [
            r["study"],
            r["sampler"],
            r["trials"],
            f"{r['repeats_in_budget_mean']:.1f} ({100 * r['repeat_fraction']:.0f} %)",
            f"{r['asks_with_reuse_mean']:.1f} ({r['asks_with_reuse_max']})",
            f"{r['hypervolume_without_reuse_mean']:.3f} -> {r['hypervolume_with_reuse_mean']:.3f}",
        ]
        for r in report["rows"]
    ]
    print(table(headers, rows))
    print(
        "Means over seeds. A repeat costs no training with reuse; asks = trials recorded, repeats included."
    )


if __name__ == "__main__":
    main()
