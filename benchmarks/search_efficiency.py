"""Search efficiency on Xception-Bench: how good a front each strategy finds for how much training.

::

    python -m benchmarks.search_efficiency run [--seeds 30] [--samplers random tpe nsga2 gp] [--rules full asha ...]
    python -m benchmarks.search_efficiency report     # -> results/digits_cpu.csv, _log.csv, .html beside the replays
    python -m benchmarks.search_efficiency run --steady-first-epoch --results benchmarks/results/digits_gpu_runs.jsonl
    python -m benchmarks.search_efficiency run --samplers gp --results benchmarks/results/digits_cpu_gp_runs.jsonl
    python -m benchmarks.search_efficiency report --also benchmarks/results/digits_cpu_gp_runs.jsonl
    python -m benchmarks.search_efficiency rule --cell digits/cpu CPU.jsonl --cell digits/gpu GPU.jsonl ...

``run`` replays each strategy (a sampler with a stopping rule of `RULES`: ``full`` training, the
``dominated`` early stop, successive halving (``asha``, the ``[asha]`` defaults, and variants), or
both) with each seed on the bench table (`benchmarks.replay`), until it has spent the exhaustive cost
(every design trained fully once) or run ``--max-trials``; each finished replay is appended to a
JSON-lines file, so a stopped run resumes. With ``--steady-first-epoch`` the table is charged as
GPU trials are: each row's recorded compilation (``compile_s``) taken off its first epoch and off
continuations (on the digits table, compilation makes the first epoch about half of a design's
training, which caps what stopping after it can save; on long GPU trials it is negligible).
``report`` scores the replays: the
hypervolume of the designs each search fully trained, by their table means (seed-averaged), with
every objective min-max scaled over the table's designs (accuracy negated) and the reference point
1.1 in each, divided by the hypervolume of the table's true front; then per strategy the medians
over seeds of that normalised hypervolume at 10 %, 25 % and 50 % of the exhaustive cost, and of the
training time to reach 90 %, 95 % and 99 % of it (a small space saturates fast), each also as a ratio
against random search with full training. The curves (median and inter-quartile band against
training time) go to an HTML page.
``rule`` applies the pre-registered rule that picks the shipped defaults (benchmarks/RESULTS.md) to the
replays of each cell (a table and how it is charged): per level, each strategy's median time on the
log scale, its ratio to the lowest with a bootstrap interval, and whether it passes
(-> ``results/defaults_rule.csv``).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.util
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from benchmarks.replay import (
    BenchTable,
    Trace,
    hypervolume_curve,
    losses,
    objective_metrics,
    replay,
)
from benchmarks.xception_bench import COMPILE, derived_compile_s
from xsearch.common.atomic import write_atomic
from xsearch.model.space import SearchSpace
from xsearch.study.optuna_private import hypervolume, pareto_mask
from xsearch.study.sampler import grid_points
from xsearch.study.spec import AshaSpec, EarlyStopSpec, StudySpec, load_study_spec

HERE = Path(__file__).parent
TABLE = HERE / "xception_bench.csv"
RESULTS = HERE / "results" / "digits_cpu_runs.jsonl"
RULE_CSV = HERE / "results" / "defaults_rule.csv"
SAMPLERS = ("random", "tpe", "nsga2", "gp")
RULES: dict[str, dict[str, Any]] = {
    "full": {},
    "dominated": {"early_stop": EarlyStopSpec()},
    # the [asha] defaults: rungs 1, 2, 4, keep half, continue
    "asha": {"asha": AshaSpec(min_epochs=1, reduction_factor=2)},
    # rungs 1, 3, keep a third, continue
    "asha-third": {"asha": AshaSpec(min_epochs=1, reduction_factor=3)},
    # a stopped design stays stopped
    "asha-stop": {"asha": AshaSpec(min_epochs=1, reduction_factor=2, continue_stopped=False)},
    "asha-third-stop": {"asha": AshaSpec(min_epochs=1, reduction_factor=3, continue_stopped=False)},
    # one rung, epoch 2
    "asha-from-2-stop": {
        "asha": AshaSpec(min_epochs=2, reduction_factor=3, continue_stopped=False)
    },
    "asha-third-stop+dominated": {
        "asha": AshaSpec(min_epochs=1, reduction_factor=3, continue_stopped=False),
        "early_stop": EarlyStopSpec(),
    },
}
BASELINE = "random/full"
FRACTIONS = (0.1, 0.25, 0.5)
LEVELS = (0.9, 0.95, 0.99)
REFERENCE = 1.1


def strategy_spec(base: StudySpec, strategy: str) -> StudySpec:
    """``base`` with the sampler and stopping rule that ``strategy`` ("sampler/rule") names, and the
    default seed trials."""
    sampler, rule = strategy.split("/")
    rules: dict[str, Any] = {"early_stop": None, "asha": None, **RULES[rule]}
    return dataclasses.replace(base, sampler=sampler, seed_trials=StudySpec().seed_trials, **rules)


class Scorer:
    """The hypervolume of a set of designs (by their table means) over that of the table's true front.

    Every objective is min-max scaled over the table's designs (accuracy negated), after a log10 of
    the costs with ``log_costs``; the reference point is `REFERENCE` in each.
    """

    def __init__(self, table: BenchTable, spec: StudySpec, log_costs: bool = False) -> None:
        metrics, directions = objective_metrics(spec)
        truth = table.truth(metrics)
        if log_costs:
            costs = [m for m, d in zip(metrics, directions) if d == "minimize"]
            truth[costs] = np.log10(truth[costs].clip(lower=1e-12))
        self.losses = pd.DataFrame(losses(truth, directions), index=truth.index)
        low, high = self.losses.min(), self.losses.max()
        self.losses = (self.losses - low) / (high - low).where(high > low, 1.0)
        self.best = self._volume(list(self.losses.index))

    def _volume(self, keys: list[str]) -> float:
        return hypervolume(
            self.losses.loc[keys].to_numpy(), np.full(self.losses.shape[1], REFERENCE)
        )

    def __call__(self, keys: list[str]) -> float:
        return self._volume(keys) / self.best

    def front(self) -> list[str]:
        """The designs of the table's true front."""
        return list(self.losses.index[pareto_mask(self.losses.to_numpy())])


def table_digest(path: Path, base: StudySpec, steady_first_epoch: bool = False) -> str:
    """What a replay's result depends on besides strategy and seed: the table, how it is charged, the bench spec."""
    charged = b"continuations-compile" + (b"steady-first-epoch" if steady_first_epoch else b"")
    return hashlib.sha256(
        path.read_bytes() + charged + json.dumps(base.to_dict(), sort_keys=True).encode()
    ).hexdigest()[:16]


def without_compilation(frame: pd.DataFrame) -> pd.DataFrame:
    """The table charged as GPU trials are: each row's first epoch without its recorded compilation (``compile_s``;
    the first epoch less the median of the later ones where the table lacks it), and no compilation to charge a
    continuation; compilation is negligible next to a long GPU trial's epochs."""
    compile_s = (
        frame[COMPILE].fillna(derived_compile_s(frame))
        if COMPILE in frame
        else derived_compile_s(frame)
    )
    return frame.assign(epoch_s_1=frame["epoch_s_1"] - compile_s, **{COMPILE: 0.0})


def run(
    table_path: Path,
    results: Path,
    strategies: list[str],
    seeds: list[int],
    max_trials: int,
    base: StudySpec,
    steady_first_epoch: bool = False,
) -> None:
    """Replay every strategy with every seed not yet in ``results`` (appended one line per replay) on the
    table of bench study ``base`` (its first epochs charged as steady ones with ``steady_first_epoch``)."""
    frame = pd.read_csv(table_path)
    table = BenchTable.from_frame(without_compilation(frame) if steady_first_epoch else frame)
    space = SearchSpace.from_toml(base.space)
    check_complete(table_path, table, base)
    scorers = {"hv": Scorer(table, base), "hv_log": Scorer(table, base, log_costs=True)}
    budget, digest = table.full_cost(), table_digest(table_path, base, steady_first_epoch)
    done = {(r["strategy"], r["seed"]) for r in read_results(results) if r["digest"] == digest}
    todo = [(s, seed) for s in strategies for seed in seeds if (s, seed) not in done]
    print(
        f"{len(table.designs)} designs, exhaustive cost {budget:.0f} s; {len(todo)} replays to run, {len(done)} done",
        flush=True,
    )
    for index, (strategy, seed) in enumerate(todo, 1):
        started = time.perf_counter()
        trace = replay(strategy_spec(base, strategy), space, table, seed, budget, max_trials)
        curves = append_result(results, digest, strategy, seed, budget, trace, scorers)
        print(
            f"[{index}/{len(todo)}] {strategy} seed {seed}: {trace.trials} trials, {trace.stopped} stopped, "
            f"final HV {curves['hv'][-1] if trace.trials else 0:.3f} ({time.perf_counter() - started:.1f} s)",
            flush=True,
        )


def check_complete(table_path: Path, table: BenchTable, base: StudySpec) -> None:
    """SystemExit unless ``table`` has every design of bench study ``base``'s space."""
    space = SearchSpace.from_toml(base.space)
    points = grid_points(space, 0)
    missing = [p for p in points if space.decode(p).to_json() not in table.designs]
    if missing:
        raise SystemExit(
            f"error: {table_path} lacks {len(missing)} of the {len(points)} designs of "
            f"space {base.space!r} (e.g. {space.decode(missing[0]).to_json()}): finish the table first."
        )


def append_result(
    results: Path,
    digest: str,
    strategy: str,
    seed: int,
    budget: float,
    trace: Trace,
    scorers: dict[str, Scorer],
) -> dict[str, list[float]]:
    """Score ``trace`` with each scorer and append it to ``results`` as one JSON line (synced); the curves."""
    curves = {name: hypervolume_curve(trace, scorer) for name, scorer in scorers.items()}
    line = {
        "digest": digest,
        "strategy": strategy,
        "seed": seed,
        "budget_s": budget,
        "trials": trace.trials,
        "stopped": trace.stopped,
        "seconds": [round(s, 3) for s in trace.seconds],
        "search_s": [round(s, 3) for s in trace.search_s],
        **{name: [round(h, 6) for h in curve] for name, curve in curves.items()},
    }
    with results.open("a") as handle:
        handle.write(json.dumps(line) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return curves


def _latest(replays: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The replays of the latest table digest among ``replays``."""
    return [r for r in replays if replays and r["digest"] == replays[-1]["digest"]]


def read_results(path: Path) -> list[dict[str, Any]]:
    """The replays recorded in ``path`` (a torn last line, from a killed run, is skipped)."""
    if not path.exists():
        return []
    found = []
    for line in path.read_text().splitlines():
        try:
            found.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return found


def hv_at(seconds: list[float], hv: list[float], at: float) -> float:
    """The normalised hypervolume after the last trial that ended within ``at`` seconds."""
    index = int(np.searchsorted(np.asarray(seconds), at, side="right")) - 1
    return float(hv[index]) if index >= 0 else 0.0


def time_to(seconds: list[float], hv: list[float], level: float) -> float:
    """The training seconds spent when the normalised hypervolume first reached ``level`` (inf: never)."""
    for spent, value in zip(seconds, hv):
        if value >= level - 1e-9:
            return float(spent)
    return float("inf")


def summarize(
    replays: list[dict[str, Any]], curve: str = "hv", resamples: int = 2000
) -> pd.DataFrame:
    """Per strategy, medians over seeds of the scores of ``curve`` (``hv``, or ``hv_log`` for log-scaled costs),
    times as fractions of the exhaustive cost, and ratios to the baseline; each time and ratio with the 95 %
    bootstrap interval of its median over seeds (``_lo``, ``_hi``: seeds resampled, per strategy independently)."""
    frame = per_seed(replays, curve)
    table = frame.groupby("strategy").agg(
        seeds=("seed", "count"),
        **{
            column: (column, "median")
            for column in frame.columns
            if column not in ("strategy", "seed")
        },
    )
    medians = bootstrap_medians(
        frame, [f"time_to_{int(level * 100)}pct" for level in LEVELS], resamples
    )
    for column, by_strategy in medians.items():
        table[f"{column}_lo"], table[f"{column}_hi"] = _interval(by_strategy, table.index)
    if BASELINE in table.index:
        for level in LEVELS:
            column = f"time_to_{int(level * 100)}pct"
            table[f"{column}_vs_random"] = table[column] / table.loc[BASELINE, column]
            ratios = {s: medians[column][s] / medians[column][BASELINE] for s in table.index}
            table[f"{column}_vs_random_lo"], table[f"{column}_vs_random_hi"] = _interval(
                ratios, table.index
            )
        for fraction in FRACTIONS:
            column = f"hv_at_{int(fraction * 100)}pct"
            table[f"{column}_vs_random"] = table[column] / table.loc[BASELINE, column]
    return table.sort_values("time_to_95pct")


def per_seed(replays: list[dict[str, Any]], curve: str = "hv") -> pd.DataFrame:
    """One row per replay: its strategy, seed, trials, stopped trials, the search's own wall seconds (``search_s``:
    the sampler's, charged apart from training; NaN for a replay recorded without it), the hypervolume of ``curve``
    at each of `FRACTIONS` of the exhaustive cost and the time (as a fraction of it) to each of `LEVELS`."""
    rows = []
    for r in replays:
        budget = r["budget_s"]
        row: dict[str, Any] = {
            "strategy": r["strategy"],
            "seed": r["seed"],
            "trials": r["trials"],
            "stopped": r["stopped"],
            "search_s": r["search_s"][-1] if r.get("search_s") else math.nan,
        }
        row.update(
            {
                f"hv_at_{int(f * 100)}pct": hv_at(r["seconds"], r[curve], f * budget)
                for f in FRACTIONS
            }
        )
        row.update(
            {
                f"time_to_{int(level * 100)}pct": time_to(r["seconds"], r[curve], level) / budget
                for level in LEVELS
            }
        )
        rows.append(row)
    return pd.DataFrame(rows)


def bootstrap_medians(
    frame: pd.DataFrame, columns: list[str], resamples: int, seed: int = 0
) -> dict[str, dict[str, np.ndarray]]:
    """For each column and strategy of a `per_seed` frame: the medians of ``resamples`` resamples of its seeds."""
    rng = np.random.default_rng(seed)
    found: dict[str, dict[str, np.ndarray]] = {column: {} for column in columns}
    for strategy, rows in frame.groupby("strategy"):
        picks = rng.integers(len(rows), size=(resamples, len(rows)))
        for column in columns:
            found[column][str(strategy)] = np.median(
                rows[column].to_numpy(dtype=float)[picks], axis=1
            )
    return found


def _interval(
    values: dict[str, np.ndarray], strategies: pd.Index
) -> tuple[list[float], list[float]]:
    """The 2.5th and 97.5th percentiles of each strategy's bootstrap values (inf where more than 2.5 % never arrive)."""
    with np.errstate(invalid="ignore"):
        bounds = [np.percentile(values[s], [2.5, 97.5], method="lower") for s in strategies]
    return [float(b[0]) for b in bounds], [float(b[1]) for b in bounds]


def rule_cells(
    cells: dict[str, list[dict[str, Any]]],
    levels: tuple[float, ...] = (0.95, 0.99),
    resamples: int = 2000,
) -> pd.DataFrame:
    """The pre-registered rule's cells (benchmarks/RESULTS.md, "The rule that picks the shipped defaults"): for each
    cell (a table and a charge: its replays) and level, each strategy's median time to the level on the log scale,
    its ratio to the lowest median with the ratio's 95 % bootstrap interval, and whether it passes: lowest, or an
    interval that reaches 1 (a median that never arrives fails). One row per (cell, level, strategy)."""
    rows = []
    for cell, replays in cells.items():
        frame = per_seed(replays, "hv_log")
        for level in levels:
            column = f"time_to_{int(level * 100)}pct"
            medians = frame.groupby("strategy")[column].median()
            best = str(medians.idxmin())
            boot = bootstrap_medians(frame, [column], resamples)[column]
            for strategy, median in medians.items():
                with np.errstate(invalid="ignore", divide="ignore"):
                    ratios = boot[str(strategy)] / boot[best]
                low, high = np.percentile(ratios, [2.5, 97.5], method="lower")
                passes = bool(np.isfinite(median) and (strategy == best or low <= 1.0))
                rows.append(
                    {
                        "cell": cell,
                        "level": level,
                        "strategy": strategy,
                        "seeds": int((frame["strategy"] == strategy).sum()),
                        "median": float(median),
                        "ratio_to_best": float(median / medians[best]),
                        "ratio_lo": float(low),
                        "ratio_hi": float(high),
                        "passes": passes,
                    }
                )
    return pd.DataFrame(rows)


def curves_html(replays: list[dict[str, Any]]) -> str:
    """Median and inter-quartile band of normalised hypervolume against training time, per strategy: costs
    scaled linearly, then log-scaled."""
    return "\n".join(
        _curves_figure(replays, curve, title, inline_plotly=first)
        for first, (curve, title) in zip(
            (True, False),
            (("hv", "costs min-max scaled"), ("hv_log", "log10 of the costs, min-max scaled")),
            strict=True,
        )
    )


def _curves_figure(
    replays: list[dict[str, Any]], curve: str, title: str, inline_plotly: bool
) -> str:
    import plotly.graph_objects as go

    grid = np.linspace(0, 1, 201)
    figure = go.Figure()
    for strategy in sorted({r["strategy"] for r in replays}):
        runs = [r for r in replays if r["strategy"] == strategy]
        values = np.array(
            [[hv_at(r["seconds"], r[curve], g * r["budget_s"]) for g in grid] for r in runs]
        )
        low, median, high = np.percentile(values, [25, 50, 75], axis=0)
        figure.add_scatter(
            x=np.r_[grid, grid[::-1]],
            y=np.r_[high, low[::-1]],
            fill="toself",
            opacity=0.15,
            line={"width": 0},
            legendgroup=strategy,
            showlegend=False,
            hoverinfo="skip",
        )
        figure.add_scatter(
            x=grid,
            y=median,
            mode="lines",
            name=f"{strategy} ({len(runs)} seeds)",
            legendgroup=strategy,
        )
    figure.update_layout(
        title=f"Xception-Bench replay: normalised hypervolume ({title}) against training time (median, IQR)",
        xaxis_title="training time / exhaustive cost",
        yaxis_title="hypervolume / true front's",
        yaxis_range=[0, 1.02],
    )
    return figure.to_html(include_plotlyjs=inline_plotly, full_html=False)  # the page opens offline


def report(
    results: Path, csv_path: Path, html_path: Path, also: tuple[Path, ...] = ()
) -> pd.DataFrame:
    """Write the summary tables (``csv_path``, and ``<stem>_log.csv`` with log-scaled costs) and the
    curves of the replays recorded in ``results`` and the files ``also`` (latest table digest of
    ``results`` only); the linear table."""
    own = read_results(results)
    replays = [*own, *(r for path in also for r in read_results(path))]
    if not replays:
        raise SystemExit(
            f"error: no replay in {results}: run `python -m benchmarks.search_efficiency run` first."
        )
    digest = (own or replays)[-1]["digest"]
    replays = [r for r in replays if r["digest"] == digest]
    table = summarize(replays)
    write_atomic(csv_path, table.to_csv(float_format="%.4g"))
    write_atomic(
        csv_path.with_name(f"{csv_path.stem}_log.csv"),
        summarize(replays, "hv_log").to_csv(float_format="%.4g"),
    )
    write_atomic(
        html_path,
        f"<html><head><meta charset='utf-8'></head><body>{curves_html(replays)}</body></html>",
    )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.search_efficiency", description=__doc__.split("\n")[0]
    )
    parser.add_argument("command", choices=("run", "report", "rule"))
    parser.add_argument(
        "--table", type=Path, default=TABLE, help=f"the bench table (default {TABLE.name})"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS,
        help=f"the replays, one JSON line each (default {RESULTS.name})",
    )
    parser.add_argument(
        "--seeds", type=int, default=30, help="seeds 0..N-1 per strategy (default 30)"
    )
    parser.add_argument(
        "--samplers",
        nargs="+",
        default=None,
        choices=SAMPLERS,
        help="default: all (gp only where PyTorch is installed)",
    )
    parser.add_argument("--rules", nargs="+", default=list(RULES), choices=list(RULES))
    parser.add_argument(
        "--study", default="xception-bench", help="the bench study the table was made with"
    )
    parser.add_argument(
        "--max-trials", type=int, default=1000, help="a replay's trial limit (default 1000)"
    )
    parser.add_argument(
        "--steady-first-epoch",
        action="store_true",
        help="charge each first epoch as a steady one, without its compilation (use its own --results)",
    )
    parser.add_argument(
        "--cell",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "PATH"),
        help="rule: a cell of the rule (e.g. digits/cpu) and its replays; repeat per cell",
    )
    parser.add_argument(
        "--also",
        type=Path,
        nargs="+",
        default=[],
        metavar="PATH",
        help="report: more replay files to include (e.g. the GP replays, which are kept in the repository)",
    )
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if args.command == "run":
        samplers = args.samplers or [
            s for s in SAMPLERS if s != "gp" or importlib.util.find_spec("torch") is not None
        ]
        if args.samplers is None and "gp" not in samplers:
            print(
                "gp: left out (Optuna's GP sampler needs PyTorch, which is not installed)",
                flush=True,
            )
        strategies = [f"{sampler}/{rule}" for sampler in samplers for rule in args.rules]
        run(
            args.table,
            args.results,
            strategies,
            list(range(args.seeds)),
            args.max_trials,
            load_study_spec(args.study),
            args.steady_first_epoch,
        )
        return 0
    if args.command == "rule":
        cells = {name: _latest(read_results(Path(path))) for name, path in args.cell}
        verdicts = rule_cells(cells)
        RULE_CSV.parent.mkdir(exist_ok=True)
        write_atomic(RULE_CSV, verdicts.to_csv(index=False, float_format="%.4g"))
        passed = (
            verdicts.groupby("strategy")["passes"]
            .agg(["sum", "count"])
            .sort_values("sum", ascending=False)
        )
        with pd.option_context("display.width", 200, "display.max_rows", 500):
            print(verdicts.round(3).to_string(index=False))
            print(passed.rename(columns={"sum": "cells passed", "count": "cells"}).to_string())
        return 0
    stem = args.results.stem.removesuffix("_runs")  # digits_cpu_runs.jsonl -> digits_cpu.csv, .html
    table = report(
        args.results,
        args.results.with_name(f"{stem}.csv"),
        args.results.with_name(f"{stem}.html"),
        tuple(args.also),
    )
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.round(3).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
