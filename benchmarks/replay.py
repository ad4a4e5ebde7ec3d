"""Replaying a search on a tabular benchmark: xsearch's own study and objective, with the training looked up.

`TableTrainer` is a `xsearch.study.trainer.Trainer` that answers from a bench table (one row per
design and seed, as `benchmarks.xception_bench` writes it) instead of building and training: a
trial of design d draws one of d's seeds at random and gets that row's costs; its training calls
the trial's Keras callbacks (the epoch recorder, the ``early_stop`` and ``asha`` rules) after each
epoch with the row's validation accuracy, stops where they stop it, and is charged the row's
training seconds of the epochs it ran. A trial that continues a stopped one (same design and
trial seed) continues the same row from the epoch where it stopped, and is charged the row's
compilation (``compile_s``) again on its first epoch, as a real continuation rebuilds its model.
Everything else is the real code path of ``xsearch run``:
`open_study` with the study's seed trials and sampler, `StudyObjective` (repeats, constraints,
budget, stopping rules) and the runner's repeat-streak stop.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import optuna
import pandas as pd

from benchmarks.xception_bench import COMPILE, derived_compile_s, design_key
from xsearch.model.config import XceptionConfig
from xsearch.model.space import SearchSpace
from xsearch.results.analyze import trained_rows
from xsearch.run.optuna_callbacks import RepeatStreak
from xsearch.run.runner import REPEAT_STREAK_LIMIT
from xsearch.study.fit import TrainResult
from xsearch.study.objective import StudyObjective
from xsearch.study.record import TrialAttr, is_repeat, is_stopped
from xsearch.study.seeds import seed_configs
from xsearch.study.setup import open_study
from xsearch.study.spec import OBJECTIVES, StudySpec

NUM_CLASSES = 10


@dataclasses.dataclass(frozen=True)
class BenchTable:
    """The bench table by design (`XceptionConfig.to_json`): each design's rows, one per seed."""

    designs: dict[str, pd.DataFrame]
    epochs: int

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> BenchTable:
        """The `trained_rows` (as `noise` and `analyze` choose them); ValueError when there are none, or when one
        lacks an epoch's accuracy or seconds (a replay charges every epoch it trains)."""
        epochs = len(frame.filter(regex=r"^val_acc_\d+$").columns)
        if not epochs:
            raise ValueError("the bench table has no val_acc_<epoch> columns.")
        trained = frame[trained_rows(frame)]
        curves = trained.filter(regex=r"^(val_acc|epoch_s)_\d+$")
        if curves.isna().any(axis=None):
            gaps = trained[curves.isna().any(axis=1)]
            raise ValueError(
                f"the bench table's trained rows {list(gaps.index)} lack an epoch's accuracy or seconds; "
                "a replay charges every epoch."
            )
        trained = trained.assign(
            **{
                COMPILE: trained[COMPILE].fillna(derived_compile_s(trained))
                if COMPILE in trained
                else derived_compile_s(trained)
            }
        )
        keys = trained.apply(design_key, axis=1)
        return cls(
            {key: rows.reset_index(drop=True) for key, rows in trained.groupby(keys, sort=True)},
            epochs,
        )

    def truth(self, metrics: list[str]) -> pd.DataFrame:
        """Per design (index), the mean over its seeds of each metric (``val_accuracy`` = the final epoch's)."""
        columns = {
            metric: f"val_acc_{self.epochs}" if metric == TrialAttr.VAL_ACCURACY else metric
            for metric in metrics
        }
        return pd.DataFrame(
            {
                key: {m: float(rows[c].mean()) for m, c in columns.items()}
                for key, rows in self.designs.items()
            }
        ).T

    def full_cost(self) -> float:
        """Seconds to train every design fully once (each design's mean over seeds)."""
        return float(
            sum(rows.filter(like="epoch_s_").sum(axis=1).mean() for rows in self.designs.values())
        )


class _ModelStub:
    """What the callbacks see of the model: only ``stop_training``."""

    stop_training = False


class TableTrainer:
    """A `Trainer` that looks designs up in a `BenchTable` (seed drawn with ``rng``)."""

    def __init__(self, table: BenchTable, rng: np.random.Generator) -> None:
        self.table, self.rng = table, rng
        self.row: pd.Series | None = None
        self.drawn: dict[tuple[str, int], int] = {}  # (design, trial seed) -> the row drawn for it

    def trial_record(self) -> dict[str, Any]:
        return {TrialAttr.DATASET: "bench table (replay)", TrialAttr.NUM_CLASSES: NUM_CLASSES}

    def cost(self, config: XceptionConfig, seed: int) -> dict[str, Any]:
        rows = self.table.designs.get(config.to_json())
        if rows is None:
            raise ValueError(
                f"design {config.to_json()} is not in the bench table: the replay's space must be the table's."
            )
        drawn = self.drawn.setdefault((config.to_json(), seed), int(self.rng.integers(len(rows))))
        self.row = rows.iloc[drawn]
        return {
            key: _number(self.row[key])
            for key in (
                TrialAttr.PARAMS,
                TrialAttr.MACS,
                TrialAttr.FLOPS,
                TrialAttr.LATENCY_MS,
                TrialAttr.LATENCY_P90_MS,
            )
        }

    def train(
        self, trial: optuna.Trial, record: dict[str, Any], callbacks: list[keras.callbacks.Callback]
    ) -> TrainResult:
        row, model = self.row, _ModelStub()
        assert row is not None, "cost() comes first"
        for callback in callbacks:
            callback.set_model(model)
        start = 0
        if TrialAttr.CONTINUES in record:
            start = int(
                trial.study.get_trials(deepcopy=False)[record[TrialAttr.CONTINUES]].user_attrs[
                    TrialAttr.EPOCHS_DONE
                ]
            )
            record[TrialAttr.RESUMED_FROM_EPOCH] = start
        accuracy, seconds = [], []
        for epoch in range(start, self.table.epochs):
            for callback in callbacks:  # as `fit` calls them (the epoch recorder times each epoch)
                callback.on_epoch_begin(epoch)
            accuracy.append(float(row[f"val_acc_{epoch + 1}"]))
            seconds.append(float(row[f"epoch_s_{epoch + 1}"]))
            for callback in callbacks:
                callback.on_epoch_end(epoch, {"val_accuracy": accuracy[-1]})
            if model.stop_training:
                break
        # a continuation rebuilds its model and compiles its training step again
        if start and seconds:
            seconds[0] += float(row[COMPILE])
        full = start + len(accuracy) == self.table.epochs
        return TrainResult(
            curves={TrialAttr.VAL_ACCURACY: accuracy},
            val_accuracy=accuracy[-1],
            val_top5=None,
            test_accuracy=float(row[TrialAttr.TEST_ACCURACY]) if full else None,
            test_top5=None,
            throughput=0.0,
            compile_time_s=0.0,
            train_time_s=sum(seconds),
            epochs=len(accuracy),
            epoch_times_s=seconds,
        )

    def release(self) -> None:
        self.row = None


@dataclasses.dataclass
class Trace:
    """One replayed search: after each trial, the training seconds spent so far, the designs fully trained and the
    wall seconds the search itself took (the sampler's own time, which a real study pays on top of training)."""

    seconds: list[float] = dataclasses.field(default_factory=list)
    # the design each trial fully trained, or ""
    found: list[str] = dataclasses.field(default_factory=list)
    trials: int = 0
    stopped: int = 0
    continued: int = 0  # trials that continued a stopped one (each charged a compilation again)
    # wall seconds of the search itself so far
    search_s: list[float] = dataclasses.field(default_factory=list)


def replay(
    spec: StudySpec,
    space: SearchSpace,
    table: BenchTable,
    seed: int,
    budget_s: float,
    max_trials: int,
) -> Trace:
    """Run ``spec``'s search on ``table`` with seed ``seed`` until ``budget_s`` training seconds are spent,
    ``max_trials`` trials have run, or the runner's repeat streak ends it."""
    # samplers are set up for one pass
    spec = dataclasses.replace(spec, seed=seed, trials=len(table.designs))
    study = open_study(
        spec,
        space,
        optuna.storages.InMemoryStorage(),
        "replay",
        seeds=lambda: [space.encode(c) for c in seed_configs(spec, space, NUM_CLASSES)],
    )
    objective = StudyObjective(
        dataclasses.replace(spec, trials=max_trials),
        space,
        TableTrainer(table, np.random.default_rng(seed)),
    )
    trace = Trace()
    started = time.perf_counter()

    def account(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        # the sampler's and Optuna's time: no training is run
        trace.search_s.append(time.perf_counter() - started)
        trace.trials += 1
        attrs = trial.user_attrs
        spent = 0.0 if is_repeat(trial) else sum(attrs.get(TrialAttr.EPOCH_TIMES_S) or [])
        trace.seconds.append((trace.seconds[-1] if trace.seconds else 0.0) + spent)
        full = (
            trial.state == optuna.trial.TrialState.COMPLETE
            and attrs.get(TrialAttr.FEASIBLE)
            and not is_stopped(trial)
        )
        trace.found.append(attrs[TrialAttr.CONFIG] if full and not is_repeat(trial) else "")
        trace.stopped += is_stopped(trial) and not is_repeat(trial)
        trace.continued += TrialAttr.CONTINUES in attrs and not is_repeat(trial)
        if trace.seconds[-1] >= budget_s:
            study.stop()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental-feature warnings of the samplers
        study.optimize(
            objective, n_trials=max_trials, callbacks=[account, RepeatStreak(REPEAT_STREAK_LIMIT)]
        )
    return trace


def hypervolume_curve(trace: Trace, score: Callable[[list[str]], float]) -> list[float]:
    """``score`` (e.g. a normalised hypervolume) of the designs fully trained so far, after each trial."""
    found: list[str] = []
    curve, current = [], 0.0
    for key in trace.found:
        if key and key not in found:
            found.append(key)
            current = score(found)
        curve.append(current)
    return curve


def losses(values: pd.DataFrame, directions: list[str]) -> np.ndarray:
    """The values as losses (maximised objectives negated), one row per design."""
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    return values.to_numpy(dtype=float) * signs


def objective_metrics(spec: StudySpec) -> tuple[list[str], list[str]]:
    """The study's objective metrics and their directions."""
    return [OBJECTIVES[n].metric for n in spec.objectives], [
        OBJECTIVES[n].direction for n in spec.objectives
    ]


def _number(value: Any) -> float | int:
    number = float(value)
    return int(number) if number.is_integer() and not math.isinf(number) else number
