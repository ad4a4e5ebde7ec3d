"""How much of a bench table's true front is shaped by latency noise.

::

    python -m benchmarks.latency_noise                                   # benchmarks/xception_bench.csv
    python -m benchmarks.latency_noise --table benchmarks/xception_bench_fm.csv --study xception-bench-fm

Each row's ``latency_ms`` is the median of its trial's timed forward passes; a design has one row per seed,
timed at different moments of a busy machine. Per design this reports the spread of those timings (coefficient
of variation, and max/min), then compares the true front the replays score against (each design's mean over its
rows) with the front when each design's latency is its median over its rows, and with fronts drawn by taking one
row's latency per design at random: the share of the true front that survives each.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.replay import BenchTable, losses, objective_metrics
from xsearch.common.resources import resolve
from xsearch.study.optuna_private import pareto_mask
from xsearch.study.record import TrialAttr
from xsearch.study.spec import load_study_spec

LATENCY = TrialAttr.LATENCY_MS


def latency_noise(
    frame: pd.DataFrame, study: str = "xception-bench", draws: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """The latency spread per design and the true front's survival (see the module's docstring)."""
    spec = load_study_spec(resolve("studies", study))
    metrics, directions = objective_metrics(spec)
    if LATENCY not in metrics:
        raise ValueError(
            f"study {study!r} has no latency objective: its front does not depend on latency."
        )
    table = BenchTable.from_frame(frame)
    timings = {key: rows[LATENCY].to_numpy(dtype=float) for key, rows in table.designs.items()}
    cv = pd.Series(
        {
            key: values.std(ddof=1) / values.mean()
            for key, values in timings.items()
            if len(values) > 1
        }
    )
    ratio = pd.Series(
        {key: values.max() / values.min() for key, values in timings.items() if len(values) > 1}
    )
    truth = table.truth(metrics)
    true_front = front_designs(truth, directions)
    median_front = front_designs(
        truth.assign(**{LATENCY: [np.median(timings[k]) for k in truth.index]}), directions
    )
    rng = np.random.default_rng(seed)
    kept, shares = pd.Series(0, index=sorted(true_front)), []
    for _ in range(draws):
        drawn = truth.assign(**{LATENCY: [rng.choice(timings[k]) for k in truth.index]})
        drawn_front = front_designs(drawn, directions)
        kept[sorted(true_front & drawn_front)] += 1
        shares.append(len(true_front & drawn_front) / len(true_front))
    return {
        "designs": len(timings),
        "designs_with_seeds": len(cv),
        "latency_cv_median": float(cv.median()),
        "latency_cv_p90": float(cv.quantile(0.9)),
        "latency_cv_max": float(cv.max()),
        "latency_max_over_min_median": float(ratio.median()),
        "latency_max_over_min_max": float(ratio.max()),
        "true_front": len(true_front),
        "median_front": len(median_front),
        "median_front_keeps": len(true_front & median_front),
        "median_front_adds": len(median_front - true_front),
        "drawn_front_keeps_mean": float(np.mean(shares)),
        "drawn_front_keeps_p10": float(np.quantile(shares, 0.1)),
        "true_front_designs_kept_in_every_draw": int((kept == draws).sum()),
        "true_front_designs_kept_in_under_half": int((kept < draws / 2).sum()),
        "draws": draws,
    }


def front_designs(values: pd.DataFrame, directions: list[str]) -> set[str]:
    """The designs (index) on the Pareto front of ``values``."""
    return set(values.index[pareto_mask(losses(values, directions))])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--table", type=Path, default=Path(__file__).with_name("xception_bench.csv")
    )
    parser.add_argument(
        "--study", default="xception-bench", help="the bench study the table was made with"
    )
    parser.add_argument("--draws", type=int, default=1000)
    args = parser.parse_args(argv)
    print(json.dumps(latency_noise(pd.read_csv(args.table), args.study, args.draws), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
