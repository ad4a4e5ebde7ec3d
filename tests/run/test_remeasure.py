"""The front's latency timed again at the end of a run, with a trainer whose figures are known."""

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import create_trial

from xsearch.model.config import XceptionConfig
from xsearch.results.latency_analysis import latency_frame
from xsearch.run.remeasure import remeasure_front
from xsearch.study.spec import LatencySpec, StudySpec


class KnownLatency:
    """Stands for `KerasTrainer`: each design costs 10 % more latency than when its trial measured it."""

    def __init__(self) -> None:
        self.costed: list[int] = []
        self.released = 0

    def cost(self, config, seed):
        self.costed.append(seed)
        return {
            "latency_ms": 1.1 * (seed + 1),
            "latency_ms@litert-cpu": 2.2 * (seed + 1),
            "params": 1,
        }

    def release(self):
        self.released += 1


def _study() -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"])
    config = XceptionConfig(middle_repeats=0, width=0.125).to_json()
    # trial 2 is dominated
    for number, (accuracy, latency) in enumerate([(0.9, 3.0), (0.8, 2.0), (0.7, 5.0)]):
        study.add_trial(
            create_trial(
                values=[accuracy, latency],
                params={"x": float(number)},
                distributions={"x": FloatDistribution(0, 9)},
                user_attrs={
                    "config": config,
                    "seed": number,
                    "latency_ms": float(number + 1),
                    "latency_ms@litert-cpu": 2.0 * (number + 1),
                    "macs": number,
                    "latency_targets": {"litert-cpu": {"median_ms": 2.0 * (number + 1)}},
                },
            )
        )
    return study


def test_the_front_is_timed_again_once_and_recorded_on_the_study():
    study, trainer = _study(), KnownLatency()
    spec = StudySpec(latency=LatencySpec(targets=("litert-cpu",)))
    remeasured = remeasure_front(study, spec, trainer)
    assert sorted(trainer.costed) == [0, 1]  # the front: trials 0 and 1
    assert trainer.released == 2
    assert (
        remeasured
        == study.user_attrs["latency_remeasured"]
        == {
            "0": {"latency_ms": 1.1, "latency_ms@litert-cpu": 2.2},
            "1": {"latency_ms": 2.2, "latency_ms@litert-cpu": 4.4},
        }
    )
    remeasure_front(study, spec, trainer)
    assert len(trainer.costed) == 2  # a second worker finishing finds them done
    drift = latency_frame(study).set_index("target")["front_drift"]
    assert abs(drift["train-device"] - 0.1) < 1e-9
    assert abs(drift["litert-cpu"] - 0.1) < 1e-9
