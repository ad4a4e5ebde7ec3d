"""One Optuna trial: sample a design, cost it, skip it when infeasible, else train and record it."""

from __future__ import annotations

import gc
import time
from typing import Any, Callable

import keras
import optuna

from xsearch.builder import build_model
from xsearch.costs import model_costs
from xsearch.data import Dataset
from xsearch.device import runtime_info
from xsearch.latency import measure_latency
from xsearch.space import SearchSpace
from xsearch.study_spec import CONSTRAINTS, StudySpec
from xsearch.training import TrialFailure, train_and_evaluate, with_normalization

CallbackFactory = Callable[[optuna.Trial], list[keras.callbacks.Callback]]


def constraint_violations(constraints: dict[str, float], record: dict[str, Any]) -> dict[str, float]:
    """One value per hard constraint, relative to its bound: <= 0 when satisfied."""
    return {key: float(record[CONSTRAINTS[key]]) / bound - 1.0 for key, bound in sorted(constraints.items())}


class Objective:
    """The callable given to `optuna.Study.optimize` for one study."""

    def __init__(
        self, spec: StudySpec, space: SearchSpace, dataset: Dataset, callbacks: CallbackFactory | None = None
    ) -> None:
        self.spec = spec
        self.space = space
        self.dataset = dataset
        self.callbacks = callbacks or (lambda trial: [])

    def __call__(self, trial: optuna.Trial) -> tuple[float, ...]:
        started = time.perf_counter()
        config = self.space.sample(trial)
        record: dict[str, Any] = {"config": config.to_json(), "seed": self.spec.seed + trial.number,
                                  "dataset": self.dataset.name, "image_size": self.spec.data.image_size,
                                  **runtime_info()}
        keras.utils.set_random_seed(record["seed"])
        size = self.spec.data.image_size
        try:
            core = build_model(config, (size, size, 3), self.dataset.num_classes,
                               bn_momentum=self.spec.training.bn_momentum)
            record.update(model_costs(core))
            model = with_normalization(core, self.dataset)
            latency = measure_latency(model, batch_size=self.spec.latency_batch)
            record.update(latency_ms=latency["latency_ms"], latency_p90_ms=latency["latency_p90_ms"],
                          latency_batch=latency["batch_size"])
            violations = constraint_violations(self.spec.constraints, record)
            for key, value in violations.items():
                trial.set_constraint(key, value)  # Optuna's samplers and best_trials read these
            record["feasible"] = all(v <= 0 for v in violations.values())
            if record["feasible"]:
                result = train_and_evaluate(model, self.dataset, self.spec.training, record["seed"],
                                            self.callbacks(trial))
                record.update({k: v for k, v in vars(result).items() if v is not None})
            else:
                record.update(failure_reason="constraint", val_accuracy=0.0, throughput=0.0)
        except TrialFailure as failure:
            record["failure_reason"] = failure.reason
            raise
        except Exception as error:
            record.update(failure_reason="error", error=f"{type(error).__name__}: {error}"[:1000])
            raise
        finally:
            record["wall_time_s"] = time.perf_counter() - started
            for key, value in record.items():
                trial.set_user_attr(key, value)
            keras.backend.clear_session()
            gc.collect()
        return tuple(float(record[objective.metric]) for objective in self.spec.objective_list)
