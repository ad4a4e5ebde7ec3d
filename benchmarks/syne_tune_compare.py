"""Syne Tune's multi-objective schedulers on Xception-Bench, through Syne Tune's own tabular simulator.

::

    pip install -e ".[bench]"   # syne-tune, and huggingface_hub, which its blackbox repository imports
    python -m benchmarks.syne_tune_compare run [--table benchmarks/xception_bench.csv] [--study xception-bench] \\
        [--seeds 30] [--schedulers moasha moasha-scaled random more] \\
        [--results benchmarks/results/syne_tune_runs.jsonl] \\
        [--steady-first-epoch]   # charged as GPU trials are (its own --results)
    python -m benchmarks.syne_tune_compare report [--also benchmarks/results/digits_cpu_runs.jsonl ...]

``run`` wraps the bench table as a Syne Tune `BlackboxTabular` (the six design axes with the table's
values, fidelity ``epoch`` 1..E, each design's seeds, per epoch the validation accuracy, the study's
cost objectives and the cumulative training seconds) and runs each scheduler with each seed on Syne
Tune's `UserBlackboxBackend` (its `SimulatorBackend`), with one worker, until the simulated time
reaches the exhaustive cost (every design trained fully once). After each trial that ends (finished,
stopped, or cut off by the stop) it records the training seconds charged so far and the designs
trained to the final epoch, scored as `benchmarks.search_efficiency` scores xsearch's replays: one
JSON line per scheduler and seed, in that module's format (strategy ``syne-tune/<scheduler>``), so a
stopped run resumes. The schedulers: ``moasha`` (MOASHA: random proposals, rungs at epochs 1, 2, 4,
keeping the better half by non-dominated sort, the rest stopped for good), ``moasha-scaled`` (the same
on objectives min-max scaled over the table: Syne Tune orders a front by raw distances, which params
would dominate), ``random`` (multi-objective random search, full training) and ``more`` (multi-
objective regularized evolution, full training). ``report`` prints `search_efficiency.summarize` of
those lines next to xsearch's replays (``--also``) of the same table: medians over seeds of the time
to 95 % and 99 % of the true front's hypervolume, as fractions of the exhaustive cost, with costs
min-max scaled, then log-scaled.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import logging
import math
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.replay import BenchTable, Trace, objective_metrics
from benchmarks.search_efficiency import (
    HERE,
    TABLE,
    Scorer,
    append_result,
    check_complete,
    read_results,
    summarize,
    table_digest,
    without_compilation,
)
from xsearch.model.space import AXES
from xsearch.study.record import TrialAttr
from xsearch.study.spec import StudySpec, load_study_spec

RESULTS = HERE / "results" / "syne_tune_runs.jsonl"
ALSO = (HERE / "results" / "digits_cpu_runs.jsonl", HERE / "results" / "digits_cpu_gp_runs.jsonl")
SCHEDULERS = ("moasha", "moasha-scaled", "random", "more")
REPORTED = [
    "seeds",
    "trials",
    "stopped",
    *(f"time_to_{level}pct{end}" for level in (95, 99) for end in ("", "_lo", "_hi", "_vs_random")),
]
PREFIX = "syne-tune/"
FIDELITY, ELAPSED = "epoch", "elapsed_time"
ASHA = {
    "grace_period": 1,
    "reduction_factor": 2,
}  # xsearch's [asha] defaults: rungs 1, 2, 4, keep half
EVOLUTION = {
    "population_size": 20,
    "sample_size": 5,
}  # a sixth of the 120 designs; a parent: the best of 5 drawn from it
DELAYS = (
    "delay_on_trial_result",
    "delay_complete_after_final_report",
    "delay_complete_after_stop",
    "delay_start",
    "delay_stop",
)  # the simulator's delays around each event, set to 0: only training is charged
TUNER_SLEEP_S = (
    0.05  # simulated seconds per tuner poll: a worker stays idle at most this long between trials
)


@dataclasses.dataclass(frozen=True)
class Bench:
    """A bench table as Syne Tune sees it: the blackbox, and each configuration's design key."""

    blackbox: Any  # syne_tune.blackbox_repository.blackbox_tabular.BlackboxTabular
    keys: dict[tuple[Any, ...], str]  # the configuration's values, in `AXES` order -> design key
    metrics: list[str]  # the scheduler's metrics, each minimised (a maximised objective negated)
    # the same, each min-max scaled over the table (Syne Tune's epsilon-net measures raw distances)
    scaled: list[str]
    epochs: int

    def design(self, config: dict[str, Any]) -> str:
        """The design key of a Syne Tune configuration."""
        return self.keys[tuple(config[axis] for axis in AXES)]


def configurations(keys: list[str]) -> list[dict[str, Any]]:
    """The designs' axis values as Syne Tune configurations: an axis whose values mix types (``segments``: 1, 2, 4, 8,
    "depthwise") as strings, since Syne Tune wants one type per axis."""
    configs = [{axis: json.loads(key)[axis] for axis in AXES} for key in keys]
    mixed = [axis for axis in AXES if len({type(c[axis]) for c in configs}) > 1]
    return [
        {axis: str(value) if axis in mixed else value for axis, value in c.items()} for c in configs
    ]


def config_space(configs: list[dict[str, Any]]) -> dict[str, Any]:
    """The design axes with the values the table has: numbers ordinal, the rest categorical, a single value constant."""
    from syne_tune.config_space import choice, ordinal

    space: dict[str, Any] = {}
    for axis in AXES:
        values = sorted({c[axis] for c in configs}, key=lambda v: (str(type(v)), v))
        if len(values) == 1:
            space[axis] = values[0]
        elif isinstance(values[0], bool) or not isinstance(values[0], int | float):
            space[axis] = choice(values)
        else:
            space[axis] = ordinal(values, kind="equal")
    return space


def _seed_rows(rows: pd.DataFrame, slots: int) -> pd.DataFrame:
    """A design's rows repeated to fill ``slots`` seed slots, each row equally often (a uniform slot
    is a uniform seed)."""
    return rows.iloc[np.repeat(np.arange(len(rows)), slots // len(rows))].reset_index(drop=True)


def _objectives(
    rows: pd.DataFrame, metrics: list[str], directions: list[str], epochs: int
) -> np.ndarray:
    """Per seed slot and epoch: each study metric (maximised ones also negated), then the cumulative seconds."""
    columns = []
    for metric, direction in zip(metrics, directions):
        if metric == TrialAttr.VAL_ACCURACY:
            values = rows[[f"val_acc_{e}" for e in range(1, epochs + 1)]].to_numpy(dtype=float)
        else:
            values = np.repeat(rows[[metric]].to_numpy(dtype=float), epochs, axis=1)
        columns.append(values)
        if direction == "maximize":
            columns.append(-values)
    columns.append(
        np.cumsum(
            rows[[f"epoch_s_{e}" for e in range(1, epochs + 1)]].to_numpy(dtype=float), axis=1
        )
    )
    return np.stack(columns, axis=-1)


def blackbox(table: BenchTable, spec: StudySpec) -> Bench:
    """``table`` as a Syne Tune tabular blackbox over ``spec``'s objectives, with fidelity ``epoch`` 1..E."""
    from syne_tune.blackbox_repository.blackbox_tabular import BlackboxTabular
    from syne_tune.config_space import randint

    metrics, directions = objective_metrics(spec)
    missing = [
        m
        for m in metrics
        if m != TrialAttr.VAL_ACCURACY and m not in next(iter(table.designs.values()))
    ]
    if missing:
        raise SystemExit(
            f"error: the bench table has no column for the objective metrics {missing}."
        )
    keys = list(table.designs)
    configs = configurations(keys)
    slots = math.lcm(*(len(rows) for rows in table.designs.values()))
    evaluations = np.stack(
        [
            _objectives(_seed_rows(table.designs[key], slots), metrics, directions, table.epochs)
            for key in keys
        ]
    )
    names = [
        name
        for m, d in zip(metrics, directions)
        for name in ([m, f"neg_{m}"] if d == "maximize" else [m])
    ]
    minimised = [m if d == "minimize" else f"neg_{m}" for m, d in zip(metrics, directions)]
    scaled = _min_max(evaluations[..., [names.index(m) for m in minimised]])
    # the seconds stay last
    evaluations = np.concatenate([evaluations[..., :-1], scaled, evaluations[..., -1:]], axis=-1)
    names += [f"scaled_{m}" for m in minimised]
    with warnings.catch_warnings():
        # pandas' deprecation of set_index(inplace=True), which BlackboxTabular calls
        warnings.simplefilter("ignore")
        box = BlackboxTabular(
            hyperparameters=pd.DataFrame(configs, columns=list(AXES)),
            configuration_space=config_space(configs),
            fidelity_space={FIDELITY: randint(1, table.epochs)},
            objectives_evaluations=evaluations,
            fidelity_values=np.arange(1, table.epochs + 1),
            objectives_names=[*names, ELAPSED],
        )
    by_values = {tuple(c[axis] for axis in AXES): key for c, key in zip(configs, keys)}
    return Bench(box, by_values, minimised, [f"scaled_{m}" for m in minimised], table.epochs)


def _min_max(values: np.ndarray) -> np.ndarray:
    """Each objective (last axis) min-max scaled over every design, seed and epoch."""
    low, high = values.min(axis=(0, 1, 2)), values.max(axis=(0, 1, 2))
    return (values - low) / np.where(high > low, high - low, 1.0)


def scheduler(name: str, bench: Bench, seed: int) -> Any:
    """Syne Tune's scheduler ``name`` over ``bench``'s metrics (all minimised), seeded with ``seed``."""
    from syne_tune.optimizer.schedulers.multiobjective import MultiObjectiveRegularizedEvolution
    from syne_tune.optimizer.schedulers.multiobjective.moasha import MOASHA
    from syne_tune.optimizer.schedulers.single_fidelity_scheduler import SingleFidelityScheduler

    space = bench.blackbox.configuration_space
    if name in (
        "moasha",
        "moasha-scaled",
    ):  # non-dominated sort at each rung; a trial below the kept share stops for good
        return MOASHA(
            space,
            metrics=bench.scaled if name == "moasha-scaled" else bench.metrics,
            do_minimize=True,
            time_attr=FIDELITY,
            max_t=bench.epochs,
            brackets=1,
            random_seed=seed,
            **ASHA,
        )
    if name == "random":  # every trial trained fully
        return SingleFidelityScheduler(
            space,
            metrics=bench.metrics,
            do_minimize=True,
            searcher="random_search",
            random_seed=seed,
        )
    if name == "more":  # multi-objective regularized evolution, every trial trained fully
        searcher = MultiObjectiveRegularizedEvolution(space, random_seed=seed, **EVOLUTION)
        return SingleFidelityScheduler(
            space, metrics=bench.metrics, do_minimize=True, searcher=searcher, random_seed=seed
        )
    raise ValueError(f"unknown scheduler {name!r}: one of {SCHEDULERS}")


def _recorder(bench: Bench, trace: Trace) -> Any:
    """A Syne Tune callback that writes each trial that ends into ``trace`` (seconds charged, design trained fully)."""
    from syne_tune.optimizer.scheduler import SchedulerDecision
    from syne_tune.tuner_callback import TunerCallback

    class Recorder(TunerCallback):
        def __init__(self) -> None:
            # trial id -> config, last result seen
            self.open: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}

        def on_trial_result(
            self, trial: Any, status: str, result: dict[str, Any], decision: str
        ) -> None:
            self.open[trial.trial_id] = (trial.config, result)
            if decision in (SchedulerDecision.STOP, SchedulerDecision.PAUSE):
                self._close(trial.trial_id, stopped=int(result[FIDELITY]) < bench.epochs)

        def on_trial_complete(self, trial: Any, result: dict[str, Any]) -> None:
            if trial.trial_id in self.open:
                self._close(trial.trial_id, stopped=False)

        def on_tuning_end(
            self,
        ) -> None:  # trials the stop criterion cut off: their epochs so far were spent
            for trial_id in sorted(self.open):
                self._close(trial_id, stopped=False)

        def _close(self, trial_id: int, stopped: bool) -> None:
            config, result = self.open.pop(trial_id)
            full = int(result[FIDELITY]) == bench.epochs
            trace.trials += 1
            trace.stopped += stopped
            trace.seconds.append(
                (trace.seconds[-1] if trace.seconds else 0.0) + float(result[ELAPSED])
            )
            trace.found.append(bench.design(config) if full else "")

    return Recorder()


def simulate(bench: Bench, name: str, seed: int, budget_s: float) -> tuple[Trace, float]:
    """Run scheduler ``name`` with ``seed`` on Syne Tune's simulator until its clock reaches ``budget_s``:
    the trace of the trials that ended, and the simulated clock at the end."""
    from syne_tune import StoppingCriterion, Tuner
    from syne_tune.backend.simulator_backend.simulator_backend import SimulatorConfig
    from syne_tune.backend.simulator_backend.simulator_callback import SimulatorCallback
    from syne_tune.blackbox_repository import UserBlackboxBackend

    class TrainingClock(UserBlackboxBackend):
        """The simulator, its clock advanced by the trials' training only, not also by the real seconds the tuner and
        scheduler compute (as xsearch's replay charges): a seed then replays the same run on any machine."""

        def _advance_by_outside_time(self) -> None:
            pass

    # Syne Tune samples configurations and draws each trial's seed row with NumPy's global generator
    np.random.seed(seed)
    trace = Trace()
    backend = TrainingClock(
        bench.blackbox,
        elapsed_time_attr=ELAPSED,
        tuner_sleep_time=TUNER_SLEEP_S,
        simulator_config=SimulatorConfig(**dict.fromkeys(DELAYS, 0.0)),
    )
    with tempfile.TemporaryDirectory(prefix="syne-tune-") as folder, _quiet(folder):
        tuner = Tuner(
            trial_backend=backend,
            scheduler=scheduler(name, bench, seed),
            n_workers=1,
            sleep_time=0,
            stop_criterion=StoppingCriterion(max_wallclock_time=budget_s),
            results_update_interval=1e9,
            print_update_interval=1e9,
            save_tuner=False,
            tuner_name=f"{name}-{seed}",
            callbacks=[SimulatorCallback(), _recorder(bench, trace)],
        )
        tuner.run()
        clock = backend.time_keeper.time()
    return trace, clock


@contextlib.contextmanager
def _quiet(folder: str) -> Any:
    """Syne Tune's tuner writes its results under ``folder`` and prints nothing (its console log is long)."""
    before = os.environ.get("SYNETUNE_FOLDER")
    os.environ["SYNETUNE_FOLDER"] = folder
    logging.getLogger("syne_tune").setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        if before is None:
            os.environ.pop("SYNETUNE_FOLDER", None)
        else:
            os.environ["SYNETUNE_FOLDER"] = before


def run(
    table_path: Path,
    results: Path,
    schedulers: list[str],
    seeds: list[int],
    base: StudySpec,
    steady_first_epoch: bool = False,
) -> None:
    """Run every scheduler with every seed not yet in ``results`` (appended one line per run) on the table of bench
    study ``base`` (charged as GPU trials are with ``steady_first_epoch``: `search_efficiency.without_compilation`)."""
    frame = pd.read_csv(table_path)
    table = BenchTable.from_frame(without_compilation(frame) if steady_first_epoch else frame)
    check_complete(table_path, table, base)
    bench = blackbox(table, base)
    scorers = {"hv": Scorer(table, base), "hv_log": Scorer(table, base, log_costs=True)}
    budget, digest = table.full_cost(), table_digest(table_path, base, steady_first_epoch)
    done = {(r["strategy"], r["seed"]) for r in read_results(results) if r["digest"] == digest}
    todo = [
        (PREFIX + s, seed) for s in schedulers for seed in seeds if (PREFIX + s, seed) not in done
    ]
    print(
        f"{len(table.designs)} designs, exhaustive cost {budget:.0f} s; {len(todo)} runs to do, {len(done)} done",
        flush=True,
    )
    results.parent.mkdir(parents=True, exist_ok=True)
    for index, (strategy, seed) in enumerate(todo, 1):
        started = time.perf_counter()
        trace, clock = simulate(bench, strategy.removeprefix(PREFIX), seed, budget)
        curves = append_result(results, digest, strategy, seed, budget, trace, scorers)
        print(
            f"[{index}/{len(todo)}] {strategy} seed {seed}: {trace.trials} trials, {trace.stopped} stopped, "
            f"{trace.seconds[-1] if trace.seconds else 0:.0f} s trained (clock {clock:.0f} s), "
            f"final HV {curves['hv'][-1] if trace.trials else 0:.3f} ({time.perf_counter() - started:.1f} s)",
            flush=True,
        )


def report(results: Path, also: list[Path]) -> dict[str, pd.DataFrame]:
    """Per curve (``hv``, ``hv_log``), `summarize` of the runs in ``results`` and the replays in ``also`` (those of the
    same table digest as the latest run)."""
    own = read_results(results)
    if not own:
        raise SystemExit(
            f"error: no run in {results}: run `python -m benchmarks.syne_tune_compare run` first."
        )
    digest = own[-1]["digest"]
    replays = [
        r
        for r in [*own, *(r for path in also for r in read_results(path))]
        if r["digest"] == digest
    ]
    tables = {curve: summarize(replays, curve) for curve in ("hv", "hv_log")}
    return {curve: table[[c for c in REPORTED if c in table]] for curve, table in tables.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.syne_tune_compare", description=__doc__.split("\n")[0]
    )
    parser.add_argument("command", choices=("run", "report"))
    parser.add_argument(
        "--table", type=Path, default=TABLE, help=f"the bench table (default {TABLE.name})"
    )
    parser.add_argument(
        "--study", default="xception-bench", help="the bench study the table was made with"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS,
        help="the runs, one JSON line each (default %(default)s)",
    )
    parser.add_argument(
        "--seeds", type=int, default=30, help="seeds 0..N-1 per scheduler (default 30)"
    )
    parser.add_argument("--schedulers", nargs="+", default=list(SCHEDULERS), choices=SCHEDULERS)
    parser.add_argument(
        "--steady-first-epoch",
        action="store_true",
        help="run: charge the table as GPU trials are, without compilation (use its own --results)",
    )
    parser.add_argument(
        "--also",
        type=Path,
        nargs="*",
        default=None,
        metavar="PATH",
        help="report: xsearch's replays to show beside (default: those of benchmarks/ that exist)",
    )
    args = parser.parse_args(argv)
    if args.command == "run":
        run(
            args.table,
            args.results,
            args.schedulers,
            list(range(args.seeds)),
            load_study_spec(args.study),
            args.steady_first_epoch,
        )
        return 0
    also = [p for p in ALSO if p.exists()] if args.also is None else args.also
    for path in also:
        if not path.exists():
            print(f"{path}: not found, left out", flush=True)
    tables = report(args.results, also)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        for curve, title in (
            ("hv", "costs min-max scaled"),
            ("hv_log", "log10 of the costs, min-max scaled"),
        ):
            print(
                f"\nmedians over seeds, times as fractions of the exhaustive cost ({curve}: {title})"
            )
            print(tables[curve].round(3).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
