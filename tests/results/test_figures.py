import itertools
import json
import warnings

import numpy as np
import optuna
import pytest
from optuna._hypervolume import compute_hypervolume
from optuna_dashboard._custom_plot_data import SYSTEM_ATTR_PLOT_DATA, get_plotly_graph_objects

import dashboards.server
from dashboards.server import is_loopback, serve_dashboard
from xsearch.results.figures import (
    FIGURES,
    attach_figures,
    hypervolume_history,
    hypervolume_series,
    pareto_projections,
    reference_point,
    segment_order,
    segment_spectrum,
    spectrum_frame,
)
from xsearch.study.record import is_feasible, is_repeat
from xsearch.study.storage import load_study, run_storage

DIRECTIONS = ["maximize", "minimize", "minimize"]
METRICS = ["val_accuracy", "params", "latency_ms"]


@pytest.fixture
def tiny_study(tiny_run) -> optuna.Study:
    return load_study(run_storage("tiny", out=tiny_run), "tiny")


def _study(trials: int = 0) -> optuna.Study:
    """An in-memory study shaped like xsearch's, with ``trials`` completed trials."""
    study = optuna.create_study(directions=DIRECTIONS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(METRICS)
    for number in range(trials):
        study.add_trial(
            optuna.trial.create_trial(
                values=[0.5 + number / 10, 1e5, 2.0],
                params={"segments": "4"},
                distributions={
                    "segments": optuna.distributions.CategoricalDistribution(["4", "depthwise"])
                },
                user_attrs={
                    "config": json.dumps(
                        {
                            "segments": 4,
                            "width": 0.5,
                            "middle_repeats": 1,
                            "intermediate_activation": "none",
                            "residual": True,
                        }
                    ),
                    "val_accuracy": 0.5 + number / 10,
                    "params": 1e5,
                    "latency_ms": 2.0,
                },
            )
        )
    return study


def _plot_keys(study: optuna.Study) -> set[str]:
    return {
        k
        for k in study._storage.get_study_system_attrs(study._study_id)
        if k.startswith(SYSTEM_ATTR_PLOT_DATA)
    }


def _titles(study: optuna.Study) -> dict[str, str]:
    graphs = get_plotly_graph_objects(study._storage.get_study_system_attrs(study._study_id))
    return {
        graph_id: json.loads(text)["layout"]["title"]["text"] for graph_id, text in graphs.items()
    }


@pytest.mark.slow
def test_figures_of_a_finished_study(tiny_study):
    front = {t.number for t in tiny_study.best_trials}
    pareto = pareto_projections(tiny_study)
    assert pareto.layout.title.text.startswith("xsearch: Pareto front (tiny, 3 trials)")
    on_front = [trace for trace in pareto.data if trace.name == "Pareto front"]
    assert len(on_front) == 2
    assert all(set(trace.customdata) == front for trace in on_front)

    spectrum = segment_spectrum(tiny_study)
    segments = sorted(
        {json.loads(t.user_attrs["config"])["segments"] for t in tiny_study.trials}, key=str
    )
    assert list(spectrum.layout.xaxis.categoryarray) == segment_order([str(s) for s in segments])
    visible = [trace for trace in spectrum.data if trace.visible]
    # a repeat is drawn once
    designs = [t for t in tiny_study.trials if is_feasible(t) and not is_repeat(t)]
    assert sum(len(trace.y) for trace in visible) == 3 * len(designs)
    assert (
        next(button.label for button in spectrum.layout.updatemenus[0].buttons) == "colour: width"
    )


@pytest.mark.slow
def test_hypervolume_is_optunas_and_never_decreases(tiny_study):
    numbers, volumes, reference = hypervolume_series(tiny_study)
    complete = tiny_study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert numbers == [t.number for t in complete]
    assert all(b >= a for a, b in itertools.pairwise(volumes))
    assert volumes[-1] > 0
    signs = np.array([-1.0, 1.0, 1.0])
    losses = np.array([t.values for t in complete if is_feasible(t)]) * signs
    # the reference point is worse than every trial
    assert np.all(losses < np.array(reference) * signs)
    assert volumes[-1] == pytest.approx(compute_hypervolume(losses, np.array(reference) * signs))
    assert list(hypervolume_history(tiny_study).data[0].y) == volumes


@pytest.mark.slow
def test_attaching_twice_keeps_one_copy_of_each_figure(tiny_run, tiny_study):
    attach_figures(tiny_study)
    keys = _plot_keys(tiny_study)
    attach_figures(tiny_study)
    reread = load_study(run_storage("tiny", out=tiny_run), "tiny")
    assert _plot_keys(reread) == keys
    titles = _titles(reread)
    assert set(titles) == set(FIGURES)
    assert titles["xsearch-pareto"].startswith("xsearch: Pareto front")
    assert titles["xsearch-hypervolume"].startswith("xsearch: hypervolume history")
    assert titles["xsearch-segments"] == "xsearch: segment spectrum"


@pytest.mark.parametrize("trials", [0, 1])
def test_figures_of_a_study_with_no_or_one_trial(trials):
    study = _study(trials)
    for build in FIGURES.values():
        figure = build(study)
        notes = [a.text for a in figure.layout.annotations]
        assert ("no completed trials yet" in notes) == (trials == 0), build.__name__
    attach_figures(study)
    attach_figures(study)
    assert set(_titles(study)) == set(FIGURES)
    assert (reference_point(study) is None) == (trials == 0)
    assert len(hypervolume_series(study)[1]) == trials


def test_metric_names_come_from_the_study_spec_when_missing():
    study = optuna.create_study(directions=DIRECTIONS)
    study.set_user_attr(
        "xsearch_spec", json.dumps({"objectives": ["accuracy", "params", "latency"]})
    )
    attach_figures(study)
    assert study.metric_names == METRICS


def test_the_spectrum_draws_a_repeated_design_once():
    study = _study(2)
    twin = study.trials[1]
    study.add_trial(
        optuna.trial.create_trial(
            values=twin.values,
            params=twin.params,
            distributions=twin.distributions,
            user_attrs={**twin.user_attrs, "repeat_of": 1},
        )
    )
    assert list(spectrum_frame(study)["number"]) == [0, 1]


def test_segment_order():
    assert segment_order(["depthwise", "8", "1", "16", "2", "8"]) == [
        "1",
        "2",
        "8",
        "16",
        "depthwise",
    ]


@pytest.mark.slow
def test_run_storage_resolves_the_run_folder(tiny_run, tmp_path, monkeypatch):
    storage = run_storage("tiny", out=tiny_run)
    assert str(tiny_run.resolve()) in storage
    assert run_storage("tiny", storage="postgresql://db/x") == "postgresql://db/x"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        ValueError, match=r"'tiny' has no run folder storage: runs/tiny holds neither"
    ):
        run_storage("studies/tiny.toml")
    with pytest.raises(ValueError, match=r"no study 'other' in .*; it holds: tiny"):
        load_study(storage, "other")
    with pytest.raises(ValueError, match="does not exist"):
        load_study(str(tmp_path / "missing.journal"), "tiny")


@pytest.mark.parametrize(
    ("host", "warned"), [("127.0.0.1", False), ("localhost", False), ("0.0.0.0", True)]
)
@pytest.mark.slow
def test_serve_dashboard_attaches_figures_and_warns_off_loopback(
    tiny_run, host, warned, monkeypatch, capsys
):
    served = []
    monkeypatch.setattr(
        dashboards.server, "run_server", lambda storage, host, port: served.append((host, port))
    )
    serve_dashboard(run_storage("tiny", out=tiny_run), "tiny", host=host, port=8123)
    assert served == [(host, 8123)]
    assert ("no authentication" in capsys.readouterr().err) == warned
    assert is_loopback(host) != warned
