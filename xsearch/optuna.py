"""Optuna plugin: `suggest_config` for your own objectives, `make_objective` for a ready-made one, and
`SuccessiveHalving`, multi-objective early stopping for your own Keras training (Optuna's pruners do
not work in multi-objective studies).

::

    study = optuna.create_study(directions=["maximize", "minimize"])
    study.optimize(make_objective(x_train, y_train, x_val, y_val, asha=True), n_trials=20)
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from typing import cast

import keras
import numpy as np
import optuna

from xsearch.model.builder import build_model
from xsearch.model.config import XceptionConfig
from xsearch.model.costs import model_costs
from xsearch.model.device import jit_compile_setting
from xsearch.model.device_latency import measure_latency
from xsearch.model.space import SearchSpace
from xsearch.study import keras_callbacks
from xsearch.study.early_stop import COST_OBJECTIVES
from xsearch.study.objective import STOPPED_CONSTRAINT
from xsearch.study.record import TrialAttr
from xsearch.study.spec import OBJECTIVES, AshaSpec

SUPPORTED = ("accuracy", "params", "flops", "latency")
"""What `make_objective` can return (their directions: `directions`)."""


def suggest_config(
    trial: optuna.Trial, space: SearchSpace | str = "xception-small"
) -> XceptionConfig:
    """Suggest one design on ``trial``: one parameter per axis of ``space`` (a name, path or `SearchSpace`)."""
    return _space(space).sample(trial)


def directions(objectives: Sequence[str]) -> list[str]:
    """The study directions matching ``objectives``, e.g. ``["maximize", "minimize"]``."""
    _check_objectives(objectives)
    return [OBJECTIVES[name].direction for name in objectives]


def make_objective(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    space: SearchSpace | str = "xception-small",
    epochs: int = 5,
    batch_size: int = 64,
    objectives: Sequence[str] = ("accuracy", "params"),
    learning_rate: float = 1e-3,
    bn_momentum: float = 0.9,
    asha: bool = False,
) -> Callable[[optuna.Trial], tuple[float, ...]]:
    """An objective that builds a sampled design, fits it on the (normalised) arrays and scores it.

    It returns one value per name in ``objectives`` (see `OBJECTIVES`): validation accuracy after
    the last epoch, parameters, forward FLOPs per image, latency in ms at batch 1. The config (JSON),
    params, MACs, FLOPs and the returned metrics are recorded as user attributes of the trial. A
    design that this objective already trained is not trained again: the trial records the earlier
    trial's results and its number as ``repeat_of``. With ``asha``, `SuccessiveHalving` (its default
    rungs) stops designs that rank low at a rung on accuracy and the cost objectives.
    """
    _check_objectives(objectives)
    search_space = _space(space)
    x_train, x_val = np.asarray(x_train, np.float32), np.asarray(x_val, np.float32)
    if x_train.ndim != 4 or x_val.shape[1:] != x_train.shape[1:]:
        raise ValueError(
            f"x_train and x_val must be (N, H, W, C) images of one shape; "
            f"received {x_train.shape} and {x_val.shape}."
        )
    num_classes = int(max(np.max(y_train), np.max(y_val))) + 1
    # design JSON -> its trial number and record
    trained: dict[str, tuple[int, dict[str, int | float]]] = {}

    def objective(trial: optuna.Trial) -> tuple[float, ...]:
        config = search_space.sample(trial)
        design = config.to_json()
        trial.set_user_attr(TrialAttr.CONFIG, design)
        if design in trained:
            number, record = trained[design]
            trial.set_user_attr(TrialAttr.REPEAT_OF, number)
        else:
            record = _train(config, trial)
            trained[design] = trial.number, record
        for key, value in record.items():
            trial.set_user_attr(key, value)
        if asha:
            trial.set_constraint(STOPPED_CONSTRAINT, float(TrialAttr.STOPPED_AT_EPOCH in record))
        return tuple(float(record[OBJECTIVES[name].metric]) for name in objectives)

    def _train(config: XceptionConfig, trial: optuna.Trial) -> dict[str, int | float]:
        try:
            model = build_model(config, x_train.shape[1:], num_classes, bn_momentum=bn_momentum)
            record = cast(dict[str, int | float], dict(model_costs(model)))
            if "latency" in objectives:
                record[TrialAttr.LATENCY_MS] = measure_latency(model)["latency_ms"]
            costs = {
                OBJECTIVES[name].metric: record[OBJECTIVES[name].metric]
                for name in objectives
                if name in COST_OBJECTIVES
            }
            rule = [SuccessiveHalving(trial, costs, epochs)] if asha else []
            model.compile(
                keras.optimizers.Adam(learning_rate),
                keras.losses.SparseCategoricalCrossentropy(),
                metrics=["accuracy"],
                jit_compile=jit_compile_setting(),
            )
            history = model.fit(
                x_train,
                y_train,
                validation_data=(x_val, y_val),
                epochs=epochs,
                batch_size=batch_size,
                verbose=0,
                callbacks=rule,
            )
            record[TrialAttr.VAL_ACCURACY] = float(history.history["val_accuracy"][-1])
            if rule and rule[0].stopped_at is not None:
                record[TrialAttr.STOPPED_AT_EPOCH] = rule[0].stopped_at
        finally:
            keras.backend.clear_session()
            gc.collect()
        return record

    return objective


class SuccessiveHalving(keras_callbacks.SuccessiveHalving):
    """Multi-objective successive halving (`xsearch.study.asha`) for your own Keras training in an Optuna study.

    At each rung epoch (``min_epochs * reduction_factor**k`` before ``epochs``), the trial is ranked
    by Pareto rank and crowding on its validation accuracy there and its ``costs`` (user-attr names
    and values, e.g. ``{"params": model.count_params()}``, lower is better) against every other trial
    of the study that reached the rung; outside the top ``1 / reduction_factor`` it stops training.
    A stopped trial records ``stopped_at_epoch``. Set the constraint ``stopped`` after ``fit`` so that
    it never stands on ``study.best_trials``::

        asha = SuccessiveHalving(trial, {"params": model.count_params()}, epochs=10)
        model.fit(x, y, validation_data=(x_val, y_val), epochs=10, callbacks=[asha])
        trial.set_constraint("stopped", float(asha.stopped_at is not None))
    """

    def __init__(
        self,
        trial: optuna.Trial,
        costs: dict[str, float],
        epochs: int,
        min_epochs: int = 1,
        reduction_factor: int = 2,
    ) -> None:
        if not (isinstance(min_epochs, int) and 1 <= min_epochs < epochs):
            raise ValueError(
                f"min_epochs must be an integer in [1, epochs - 1 = {epochs - 1}]; received {min_epochs!r}."
            )
        if not (isinstance(reduction_factor, int) and reduction_factor >= 2):
            raise ValueError(
                f"reduction_factor must be an integer >= 2; received {reduction_factor!r}."
            )
        super().__init__(
            trial, AshaSpec(min_epochs, reduction_factor), costs, digest="", epochs=epochs
        )


def _space(space: SearchSpace | str) -> SearchSpace:
    return space if isinstance(space, SearchSpace) else SearchSpace.from_toml(space)


def _check_objectives(objectives: Sequence[str]) -> None:
    unknown = [name for name in objectives if name not in SUPPORTED]
    if unknown or not objectives:
        raise ValueError(
            f"objectives must be a non-empty list of {', '.join(SUPPORTED)}; "
            f"received {list(objectives)}."
        )
