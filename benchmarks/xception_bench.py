"""Xception-Bench: every design of the ``xception-bench`` space trained once per seed, as a table.

::

    python -m benchmarks.xception_bench build --seeds 0 1 2    # resumable: re-run to continue
    python -m benchmarks.xception_bench fill --seeds 0          # only the designs the table lacks for a seed
    python -m benchmarks.xception_bench fill --study xception-bench-fm --table benchmarks/xception_bench_fm.csv \\
        --runs runs/xception-bench-fm --seeds 0 1 2 --chunk 4   # Xception-Bench-FM, a table written every 4 designs
    python -m benchmarks.xception_bench fill ... --runs runs/fm-from-end --from-end    # a second build, other core
    python -m benchmarks.xception_bench table                   # -> benchmarks/xception_bench.csv (+ .json)
    python -m benchmarks.xception_bench noise                   # spread of accuracy across designs vs seeds

``build`` runs the shipped ``xception-bench`` study (a grid: each design exactly once) with
``xsearch run`` once per seed, in ``runs/xception-bench/seed-<S>``; a stopped build resumes where it
stopped. ``fill`` trains, for each seed, only the designs of the space that neither the committed table
nor a run folder has for it, as the seed trials of studies like the bench study, ``--chunk`` designs per
seed at a time, writing the table after each round: it builds a table in pieces across sessions.
``table`` reads those studies into one row per design and seed: the six axes, params, MACs, FLOPs,
latency (median and p90 of timed forward passes), the validation accuracy after each epoch, the test
accuracy, the training seconds of each epoch and the compile seconds within the first; rows of the
committed table whose design and seed no run folder has are kept. ``noise`` compares the spread of
final accuracy across designs with its seed-to-seed noise.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from xsearch.common.atomic import write_atomic
from xsearch.common.resources import resolve
from xsearch.model.config import XceptionConfig
from xsearch.model.space import AXES, SearchSpace
from xsearch.results.analyze import trained_rows
from xsearch.study.record import FailureReason, TrialAttr, epoch_series, failure_reason, is_repeat
from xsearch.study.sampler import grid_points
from xsearch.study.spec import load_study_spec, read_spec
from xsearch.study.storage import RUN_STORAGES, load_study, run_storage

STUDY = "xception-bench"
RUNS = Path("runs") / STUDY
TABLE = Path(__file__).with_name("xception_bench.csv")
COMPILE = (
    "compile_s"  # the seconds of the first epoch that compiled the training step (in epoch_s_1 too)
)
_COSTS = (
    TrialAttr.PARAMS,
    TrialAttr.MACS,
    TrialAttr.FLOPS,
    TrialAttr.LATENCY_MS,
    TrialAttr.LATENCY_P90_MS,
)


def build(seeds: list[int], runs: Path, study: str = STUDY) -> int:
    """Run (or resume) the bench study once per seed; the worst exit status."""
    worst = 0
    for seed in seeds:
        command = [
            sys.executable,
            "-m",
            "xsearch.cli",
            "run",
            "--study",
            study,
            "--seed",
            str(seed),
            "--out",
            str(runs / f"seed-{seed}"),
        ]
        print(f"xception-bench: seed {seed}: {' '.join(command[1:])}", flush=True)
        worst = max(worst, subprocess.run(command, check=False).returncode)
    return worst


def fill(
    seeds: list[int],
    runs: Path,
    table_path: Path,
    study: str = STUDY,
    chunk: int | None = None,
    from_end: bool = False,
) -> int:
    """Train, per seed, the designs of the bench space that neither ``table_path`` nor a run folder under ``runs``
    has for that seed; the worst exit status.

    Designs go in one order for every seed (the grid's order for seed 0), ``chunk`` designs per seed at a time
    (all when None), each chunk a study of its own in ``runs/seed-<S>-part-<K>``; after each round of chunks the
    table is written. So a build stopped at any point (even mid-trial) resumes by running the same command, in
    this session or a later one that has only the committed table, and a partial table has every seed of the
    same designs. ``from_end`` takes the designs from the end of that order: a second build, on another core with
    its own ``runs`` and a copy of the table, does not train what the first does until they meet (merge its runs
    into the first's table with ``table``).
    """
    path = resolve("studies", study)
    space = SearchSpace.from_toml(load_study_spec(path).space)
    order = [space.decode(p) for p in grid_points(space, 0)][:: -1 if from_end else 1]
    worst = 0
    while True:
        current = _current_table(runs, study, table_path)
        missing = {
            seed: [c for c in order if c.to_json() not in _designs(current, seed)] for seed in seeds
        }
        if not any(missing.values()):
            print(
                f"xception-bench: {study}: the table has every design for seeds {seeds}", flush=True
            )
            return worst
        for seed in seeds:
            todo = missing[seed][:chunk] if chunk else missing[seed]
            if todo:
                worst = max(worst, _train_designs(path, todo, seed, _next_part(runs, seed)))
        frame = _current_table(runs, study, table_path)
        write_table(frame, table_path, study)
        print(f"xception-bench: {study}: {len(frame)} rows -> {table_path}", flush=True)
        if len(frame) <= len(current):
            print(
                f"xception-bench: {study}: a round of chunks added no row; stopping.",
                file=sys.stderr,
                flush=True,
            )
            return max(worst, 1)
        if worst or not chunk:
            return worst


def _train_designs(path: Path, designs: list[XceptionConfig], seed: int, folder: Path) -> int:
    """Train ``designs`` with the study file ``path`` and ``seed`` in ``folder`` (their seed trials, in order)."""
    folder.mkdir(parents=True, exist_ok=True)
    seeds_toml = ", ".join(
        "{" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in json.loads(c.to_json()).items()) + "}"
        for c in designs
    )
    text = re.sub(r"(?m)^(sampler|seed_trials|trials) = .*$", "", path.read_text())
    (folder / path.name).write_text(
        f'sampler = "random"\nseed_trials = [{seeds_toml}]\ntrials = {len(designs)}\n{text}'
    )
    command = [
        sys.executable,
        "-m",
        "xsearch.cli",
        "run",
        "--study",
        str(folder / path.name),
        "--seed",
        str(seed),
        "--out",
        str(folder),
    ]
    print(
        f"xception-bench: seed {seed}: {len(designs)} designs: {' '.join(command[1:])}", flush=True
    )
    return subprocess.run(command, check=False).returncode


def _current_table(runs: Path, study: str, table_path: Path) -> pd.DataFrame:
    """The committed table merged with every run folder under ``runs`` (either may be missing)."""
    existing = pd.read_csv(table_path) if table_path.exists() else None
    if any(
        any((folder / name).is_file() for name in RUN_STORAGES) for folder in runs.glob("seed-*")
    ):
        return table(runs, study, existing)
    return existing if existing is not None else pd.DataFrame(columns=[*AXES, "seed"])


def _designs(frame: pd.DataFrame, seed: int) -> set[str]:
    return {design_key(row) for _, row in frame[frame["seed"] == seed].iterrows()}


def _next_part(runs: Path, seed: int) -> Path:
    taken = {
        int(m.group(1))
        for f in runs.glob(f"seed-{seed}-part-*")
        if (m := re.fullmatch(rf"seed-{seed}-part-(\d+)", f.name))
    }
    return runs / f"seed-{seed}-part-{max(taken, default=-1) + 1}"


def design_key(row: pd.Series) -> str:
    """A table row's design as its `XceptionConfig` JSON (the key of a design across seeds and runs)."""
    values = {axis: row[axis] for axis in AXES}
    segments = str(values["segments"])
    values.update(
        segments=int(segments) if segments.isdigit() else segments,
        residual=str(values["residual"]).lower() == "true",
        middle_repeats=int(values["middle_repeats"]),
        depth_multiplier=int(values["depth_multiplier"]),
        width=float(values["width"]),
    )
    return XceptionConfig(**values).to_json()


def rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One row per design the study trained (or failed to train), with its costs, curves and seed."""
    epochs = read_spec(study).training.epochs
    seed = read_spec(study).seed
    table = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
        attrs = trial.user_attrs
        if (
            is_repeat(trial)
            or TrialAttr.CONFIG not in attrs
            or failure_reason(trial) == FailureReason.INTERRUPTED
        ):
            continue
        curve = epoch_series(attrs, (attrs.get(TrialAttr.CURVES) or {}).get(TrialAttr.VAL_ACCURACY))
        times = epoch_series(attrs, attrs.get(TrialAttr.EPOCH_TIMES_S))
        row: dict[str, Any] = {
            **json.loads(attrs[TrialAttr.CONFIG]),
            "seed": seed,
            "trial": trial.number,
        }
        row.update({key: attrs.get(key, math.nan) for key in _COSTS})
        row.update({f"val_acc_{e}": _at(curve, e) for e in range(1, epochs + 1)})
        row[TrialAttr.TEST_ACCURACY] = attrs.get(TrialAttr.TEST_ACCURACY, math.nan)
        row.update({f"epoch_s_{e}": _at(times, e) for e in range(1, epochs + 1)})
        row[COMPILE] = attrs.get(TrialAttr.COMPILE_TIME_S, math.nan)
        row[TrialAttr.FAILURE_REASON] = failure_reason(trial) or ""
        table.append(row)
    return table


def table(runs: Path, study: str = STUDY, existing: pd.DataFrame | None = None) -> pd.DataFrame:
    """The bench table from every ``seed-*`` run folder under ``runs``, plus the rows of ``existing`` whose
    design and seed no folder has, sorted by design and seed."""
    frames, name = (
        [],
        load_study_spec(resolve("studies", study)).name,
    )  # a study given as a path is named by its file
    for folder in sorted(runs.glob("seed-*")):
        if not any((folder / storage).is_file() for storage in RUN_STORAGES):
            continue  # a build killed before its study was created
        frames.append(pd.DataFrame(rows(load_study(run_storage(name, out=folder), name))))
    if not frames:
        raise SystemExit(
            f"error: no seed-* run folder under {runs}: run `python -m benchmarks.xception_bench build`."
        )
    frame = pd.concat(frames, ignore_index=True)
    if existing is not None and len(existing):
        ran = {(design_key(row), int(row["seed"])) for _, row in frame.iterrows()}
        kept = existing[
            [(design_key(row), int(row["seed"])) not in ran for _, row in existing.iterrows()]
        ]
        frame = pd.concat([frame, kept], ignore_index=True)
    frame["segments"] = frame["segments"].astype(str)
    frame[COMPILE] = (
        frame[COMPILE].fillna(derived_compile_s(frame))
        if COMPILE in frame
        else derived_compile_s(frame)
    )
    return frame.sort_values([*AXES, "seed"], kind="stable").reset_index(drop=True)


def derived_compile_s(frame: pd.DataFrame) -> pd.Series:
    """Each row's compile seconds as a trial records them (`xsearch.study.fit`): its first epoch's time less
    the median of its later epochs, at least 0. For tables whose run folders are gone (the digits table)."""
    times = frame.filter(regex=r"^epoch_s_\d+$")
    return (times.iloc[:, 0] - times.iloc[:, 1:].median(axis=1)).clip(lower=0.0)


def noise(frame: pd.DataFrame, resamples: int = 2000) -> dict[str, Any]:
    """How well the table tells designs apart, from the trained rows (failed and incomplete rows left out).

    The spread across designs (std of the designs' seed means) against the seed-to-seed noise, estimated
    as the pooled within-design std (``pooled_seed_std``: the root of the mean within-design variance,
    weighted by degrees of freedom) and, as before, the median of the designs' stds; the first ratio with a
    95 % bootstrap interval over designs. Also the best design's accuracy, and how well the ranking of
    the designs after each epoch predicts their final ranking (Spearman of seed means, ``spearman_epoch_<e>``).
    """
    accuracy = frame.filter(regex=r"^val_acc_\d+$")
    trained = trained_rows(frame)
    accuracy, keys = accuracy[trained], frame[trained].apply(design_key, axis=1)
    means = accuracy.groupby(keys).mean()
    final = accuracy.iloc[:, -1]
    by_design = final.groupby(keys)
    variances, counts = by_design.var(ddof=1), by_design.count()
    seeded = counts >= 2
    dof = (counts - 1)[seeded]
    pooled = (
        math.sqrt(float((variances[seeded] * dof).sum() / dof.sum())) if seeded.any() else math.nan
    )
    median_noise = float(np.sqrt(variances[seeded]).median()) if seeded.any() else math.nan
    spread = float(means.iloc[:, -1].std(ddof=1))
    report: dict[str, Any] = {
        "designs": len(means),
        "seeds_per_design_min": int(counts.min()),
        "seeds_per_design_max": int(counts.max()),
        "designs_with_2_seeds": int(seeded.sum()),
        "rows": int(trained.sum()),
        "accuracy_min": float(means.iloc[:, -1].min()),
        "accuracy_max": float(means.iloc[:, -1].max()),
        "spread_std": spread,
        "pooled_seed_std": pooled,
        "median_seed_std": median_noise,
        "spread_over_pooled_noise": spread / pooled if pooled > 0 else math.nan,
        "spread_over_median_noise": spread / median_noise if median_noise > 0 else math.nan,
    }
    low, high = (
        _ratio_interval(means.iloc[:, -1], variances, dof, resamples)
        if seeded.sum() >= 2
        else (math.nan, math.nan)
    )
    report.update(spread_over_pooled_noise_lo=low, spread_over_pooled_noise_hi=high)
    for epoch in range(1, accuracy.shape[1]):
        report[f"spearman_epoch_{epoch}"] = float(
            means.iloc[:, epoch - 1].corr(means.iloc[:, -1], method="spearman")
        )
    return report


def _ratio_interval(
    means: pd.Series, variances: pd.Series, dof: pd.Series, resamples: int
) -> tuple[float, float]:
    """The 95 % bootstrap interval of spread / pooled noise, resampling designs (those with 2+ seeds for the noise)."""
    rng = np.random.default_rng(0)
    spread_values, var_values, dof_values = (
        means.to_numpy(),
        variances[dof.index].to_numpy(),
        dof.to_numpy(dtype=float),
    )
    spreads, pooled = np.empty(resamples), np.empty(resamples)
    for index in range(resamples):
        spreads[index] = np.std(
            spread_values[rng.integers(len(spread_values), size=len(spread_values))], ddof=1
        )
        pick = rng.integers(len(dof_values), size=len(dof_values))
        pooled[index] = math.sqrt(
            float((var_values[pick] * dof_values[pick]).sum() / dof_values[pick].sum())
        )
    # a resample of noiseless designs: an infinite ratio
    with np.errstate(divide="ignore", invalid="ignore"):
        low, high = np.nanpercentile(spreads / pooled, [2.5, 97.5])
    return float(low), float(high)


def write_table(frame: pd.DataFrame, path: Path, study: str) -> None:
    """The table as CSV and, beside it, the machine, versions, date and study it was made with."""
    from benchmarks.throughput import (
        environment,
    )  # loads the backend: only where the table is written

    write_atomic(path, frame.to_csv(index=False, float_format="%.6g"))
    spec = load_study_spec(study)
    meta = {
        "study": study,
        "spec": spec.to_dict(),
        "environment": environment(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_affinity": len(os.sched_getaffinity(0)),
        "made_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "rows": len(frame),
        "seeds": sorted(int(s) for s in frame["seed"].unique()),
    }
    write_atomic(path.with_suffix(".json"), json.dumps(meta, indent=2, default=str) + "\n")


def _at(values: list[float], epoch: int) -> float:
    return float(values[epoch - 1]) if len(values) >= epoch else math.nan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.xception_bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("command", choices=("build", "fill", "table", "noise"))
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2], help="build, fill: the seeds to run"
    )
    parser.add_argument("--runs", type=Path, default=RUNS, help=f"the run folders (default {RUNS})")
    parser.add_argument("--study", default=STUDY, help="the bench study (default xception-bench)")
    parser.add_argument("--table", type=Path, default=TABLE, help=f"the table (default {TABLE})")
    parser.add_argument(
        "--chunk", type=int, default=None, help="fill: designs per seed between writes of the table"
    )
    parser.add_argument(
        "--from-end",
        action="store_true",
        help="fill: take the designs from the end of the order (a second build beside the first)",
    )
    args = parser.parse_args(argv)
    if args.command == "build":
        return build(args.seeds, args.runs, args.study)
    if args.command == "fill":
        return fill(args.seeds, args.runs, args.table, args.study, args.chunk, args.from_end)
    if args.command == "table":
        frame = table(
            args.runs, args.study, pd.read_csv(args.table) if args.table.exists() else None
        )
        write_table(frame, args.table, args.study)
        print(f"{len(frame)} rows -> {args.table}")
        return 0
    report = noise(pd.read_csv(args.table))
    print(
        "\n".join(
            f"{key:18s} {value:.4g}" if isinstance(value, float) else f"{key:18s} {value}"
            for key, value in report.items()
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
