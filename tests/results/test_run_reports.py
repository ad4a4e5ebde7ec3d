"""`xsearch.results.run_reports`: CSV and HTML run reports, the Pareto figure and the text table of the front."""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from study_fakes import DIRECTIONS, DISTRIBUTIONS, METRICS
from tests.helpers import brute_force_front
from xsearch.results.run_reports import front_table_text, pareto_figure, write_run_reports

optuna.logging.set_verbosity(optuna.logging.WARNING)
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

PARAMS = {
    "middle_repeats": 2,
    "width": 0.25,
    "depth_multiplier": 1,
    "segments": "depthwise",
    "intermediate_activation": "none",
    "residual": True,
}


def make_study(metrics: list[str] = METRICS, directions: list[str] = DIRECTIONS) -> optuna.Study:
    study = optuna.create_study(directions=directions)
    study.set_metric_names(metrics)
    return study


def add(
    study: optuna.Study,
    values: list[float] | None,
    constraints: list[float] | None = None,
    state: TrialState = TrialState.COMPLETE,
    **attrs: Any,
) -> None:
    """Add a trial whose user attrs mirror its objectives, plus ``attrs``."""
    user_attrs: dict[str, Any] = {
        "config": json.dumps(PARAMS),
        "test_accuracy": 0.5,
        "macs": 2_500_000,
    }
    user_attrs.update(dict(zip(study.metric_names, values or [])))
    user_attrs.update(attrs)
    study.add_trial(
        optuna.trial.create_trial(
            state=state,
            values=values,
            params=PARAMS,
            distributions=DISTRIBUTIONS,
            user_attrs=user_attrs,
            system_attrs={"constraints": constraints} if constraints is not None else None,
        )
    )


def random_study(n: int = 60, seed: int = 0) -> optuna.Study:
    """``n`` trials on a coarse grid (many ties), some infeasible, plus a failed one."""
    rng = random.Random(seed)
    study = make_study()
    for i in range(n):
        values = [
            rng.choice([0.5, 0.6, 0.7, 0.8, 0.9]),
            rng.choice([1e5, 2e5, 5e5, 1e6]),
            rng.choice([1.0, 2.0, 3.0]),
        ]
        add(study, values, constraints=[rng.choice([-1.0, 0.0, 0.5])], seed=i)
    add(
        study, None, state=TrialState.FAIL, failure_reason="oom", curves=json.dumps({"loss": [1.0]})
    )
    return study


def test_write_run_reports(tmp_path: Path) -> None:
    study = random_study()
    paths = write_run_reports(study, tmp_path / "run")
    assert set(paths) == {"trials", "pareto", "html"}
    assert all(p.is_file() for p in paths.values())
    assert sorted(os.listdir(tmp_path / "run")) == ["pareto.csv", "pareto.html", "trials.csv"]
    front = brute_force_front(study)

    trials = pd.read_csv(paths["trials"])
    assert list(trials["number"]) == [t.number for t in study.trials]
    assert {a for t in study.trials for a in t.user_attrs} <= set(trials.columns)
    assert set(trials.loc[trials["pareto"], "number"]) == front
    pareto = pd.read_csv(paths["pareto"])
    assert list(pareto.columns) == list(trials.columns)
    assert set(pareto["number"]) == front
    assert len(pareto) == len(front)
    assert list(pareto["val_accuracy"]) == sorted(pareto["val_accuracy"], reverse=True)

    html = paths["html"].read_text(encoding="utf-8")
    assert "plotly" in html
    assert all(f"trial #{n} " in html for n in front)
    # plotly.js is inlined; its bundle mentions cdn.plot.ly only as a default topojson URL (geo maps).
    assert not re.search(r"<script[^>]*\bsrc=", html)


def test_write_run_reports_empty_study(tmp_path: Path) -> None:
    paths = write_run_reports(make_study(), tmp_path)
    assert pd.read_csv(paths["trials"]).empty
    assert pd.read_csv(paths["pareto"]).empty
    assert "plotly" in paths["html"].read_text(encoding="utf-8")
    assert front_table_text(make_study()) == "no completed trials yet"


def test_reports_are_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    study = random_study(n=5)
    paths = write_run_reports(study, tmp_path)
    before = paths["trials"].read_bytes()
    add(study, [0.99, 1.0, 0.1])

    def crash(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_run_reports(study, tmp_path)
    assert paths["trials"].read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["pareto.csv", "pareto.html", "trials.csv"]


def traces(figure: Any, name: str) -> list[Any]:
    return [trace for trace in figure.data if trace.name == name]


def test_pareto_figure_panels() -> None:
    study = random_study()
    figure = pareto_figure(study)
    front = traces(figure, "Pareto front")
    assert len(front) == 2
    assert all(set(t.customdata) == brute_force_front(study) for t in front)
    assert all(list(t.x) == sorted(t.x) and t.line.shape == "hv" for t in front)
    infeasible = {
        t.number
        for t in study.trials
        if t.state == TrialState.COMPLETE and max(t.constraints.values()) > 0
    }
    assert all(
        set(t.customdata) == infeasible and t.marker.symbol == "x"
        for t in traces(figure, "infeasible / failed")
    )
    assert figure.layout.xaxis.type == "log"
    assert figure.layout.xaxis2.type == "linear"
    assert "depth_multiplier=1" in front[0].text[0]
    assert "val_accuracy" in front[0].text[0]


def test_pareto_figure_plots_user_attrs_that_are_not_objectives() -> None:
    study = make_study(["val_accuracy"], ["maximize"])
    add(study, [0.8], params=1_000_000, latency_ms=3.0)
    add(study, [0.7], params=500_000, latency_ms=1.0)
    grey, _, front = pareto_figure(study).data[3:]  # the latency panel
    assert list(front.x) == [3.0]
    assert list(grey.x) == [1.0]


def test_front_table_text() -> None:
    study = make_study()
    add(study, [0.9312, 1_234_567, 4.5])
    add(study, [0.85, 250_000, 1.25])
    add(study, [0.80, 300_000, 2.0])  # dominated
    lines = front_table_text(study).splitlines()
    assert len(lines) == 3
    assert lines[0].split() == [
        "trial",
        "val_acc",
        "test_acc",
        "params",
        "MACs",
        "lat_ms",
        "rep",
        "width",
        "dm",
        "seg",
        "act",
        "res",
    ]
    assert lines[1].split() == [
        "0",
        "93.12%",
        "50.00%",
        "1.23M",
        "2.50M",
        "4.50",
        "2",
        "0.25",
        "1",
        "depthwise",
        "none",
        "True",
    ]
    assert lines[2].split()[:4] == ["1", "85.00%", "50.00%", "250.00K"]
