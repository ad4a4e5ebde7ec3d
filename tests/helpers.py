"""Helpers that several test files share: the brute-force Pareto front and the tiny study's settings and file.

`tests/conftest.py` builds its `tiny_spec` from the same settings, so that a study file written by
`tiny_study_toml` and the `tiny_spec` fixture describe one tiny study (tiny designs, 300 digits at
16x16, 2 epochs), unless a test overrides a setting.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import TrialState

CHROMIUM = "/usr/bin/chromium"  # Debian's chromium, which Playwright drives in the browser tests
TINY_DATA: dict[str, Any] = {
    "source": "digits",
    "image_size": 16,
    "max_train": 300,
    "val_fraction": 0.2,
    "test_fraction": 0.2,
}
TINY_TRAINING: dict[str, Any] = {"epochs": 2, "batch_size": 32, "augment": False}


def tiny_study_toml(
    *,
    space: str = "tiny",
    trials: int = 3,
    seed_trials: tuple | list = ("paper",),
    data: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    **settings: Any,
) -> str:
    """The text of a study file for the tiny study: top-level ``settings`` (e.g. ``sampler``), then the
    ``[data]`` and ``[training]`` tables, where ``data`` and ``training`` override `TINY_DATA` and
    `TINY_TRAINING` key by key (a value of None leaves the key out, so that xsearch's default applies)."""

    def lines(table: dict[str, Any]) -> list[str]:
        return [f"{key} = {json.dumps(value)}" for key, value in table.items() if value is not None]

    top = {"space": space, "trials": trials, "seed_trials": list(seed_trials), **settings}
    return (
        "\n".join(
            [
                *lines(top),
                "[data]",
                *lines({**TINY_DATA, **(data or {})}),
                "[training]",
                *lines({**TINY_TRAINING, **(training or {})}),
            ]
        )
        + "\n"
    )


def brute_force_front(study: optuna.Study) -> set[int]:
    """Numbers of the non-dominated feasible COMPLETE trials, by an O(n^2) dominance check."""
    signs = [-1.0 if d == StudyDirection.MAXIMIZE else 1.0 for d in study.directions]
    losses = {
        t.number: [s * v for s, v in zip(signs, t.values)]
        for t in study.trials
        if t.state == TrialState.COMPLETE and all(c <= 0 for c in t.constraints.values())
    }

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))

    return {i for i, a in losses.items() if not any(dominates(b, a) for b in losses.values())}


def xsearch_study(name: str, database: Path, spec: Any) -> optuna.Study:
    """An SQLite study shaped as ``xsearch run`` makes it: its three objectives, metric names and ``spec``."""
    from xsearch.study.record import StudyAttr

    study = optuna.create_study(
        study_name=name,
        storage=f"sqlite:///{database}",
        directions=["maximize", "minimize", "minimize"],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["val_accuracy", "params", "latency_ms"])
    study.set_user_attr(StudyAttr.SPEC, json.dumps(dataclasses.asdict(spec), default=str))
    return study


def assert_resumed_from_epoch_1(
    retry: optuna.trial.FrozenTrial, failed: optuna.trial.FrozenTrial, epochs: int
) -> None:
    """``retry`` continued ``failed`` from its checkpoint, and its curves and epoch times start from epoch 1:
    ``failed``'s epochs, then its own."""
    done = int(failed.user_attrs["epochs_done"])
    assert 1 <= done < epochs
    assert "resumed_from_epoch" not in retry.user_attrs
    curve, before = retry.user_attrs["curves"]["val_accuracy"], failed.user_attrs["curves_so_far"]
    assert (
        len(curve) == epochs == retry.user_attrs["epochs"] == len(retry.user_attrs["epoch_times_s"])
    )
    assert curve[:done] == before["val_accuracy"][:done]
    assert retry.user_attrs["epoch_times_s"][:done] == before["epoch_times_s"][:done]
    assert retry.user_attrs["curves_so_far"]["val_accuracy"] == curve
