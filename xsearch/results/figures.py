"""Plotly figures of an xsearch study, and their attachment to the study for optuna-dashboard.

Each figure has a computation (a frame or a series, from `xsearch.results.pareto`) and a drawing.
`attach_figures` stores them in the study, where optuna-dashboard shows them on the study page.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go
from optuna.study import StudyDirection
from optuna_dashboard import save_plotly_graph_object
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from xsearch.results.analysis_figures import edf_figure
from xsearch.results.analyze import designs_frame
from xsearch.results.pareto import objective_names, trials_frame
from xsearch.results.run_reports import pareto_figure
from xsearch.study.optuna_private import hypervolume_history as optuna_hypervolume_history
from xsearch.study.record import TrialAttr, is_feasible
from xsearch.study.spec import read_spec

SPECTRUM_METRICS = (
    (TrialAttr.VAL_ACCURACY, "val_accuracy", "linear"),
    (TrialAttr.PARAMS, "params", "log"),
    (TrialAttr.LATENCY_MS, "latency (ms)", "linear"),
)
COLOUR_AXES = ("width", "middle_repeats", "intermediate_activation", "residual")
REFERENCE_MARGIN = 0.1
EMPTY_NOTE = "no completed trials yet"


def pareto_projections(study: optuna.Study) -> go.Figure:
    """`xsearch.results.run_reports.pareto_figure` (accuracy against params and latency), titled for the dashboard."""
    figure = pareto_figure(study)
    figure.update_layout(
        title=f"xsearch: Pareto front ({study.study_name}, {len(study.trials)} trials)"
    )
    if not any(len(trace.x) for trace in figure.data):
        _note(figure, EMPTY_NOTE)
    return figure


def reference_point(study: optuna.Study) -> list[float] | None:
    """A point worse than every feasible trial in every objective, or None without feasible trials.

    Per objective: the worst feasible value moved away from the front by 10% of the observed span
    (of the value itself when the span is 0, or by 1 when both are 0), in the direction's sense.
    """
    values = np.array(
        [t.values for t in study.get_trials(deepcopy=False) if is_feasible(t)], dtype=float
    )
    if values.size == 0:
        return None
    signs = np.array([-1.0 if d == StudyDirection.MAXIMIZE else 1.0 for d in study.directions])
    losses = values * signs
    worst, span = losses.max(axis=0), np.ptp(losses, axis=0)
    margin = np.where(span > 0, span, np.where(worst != 0, np.abs(worst), 1.0)) * REFERENCE_MARGIN
    return ((worst + margin) * signs).tolist()


def hypervolume_series(study: optuna.Study) -> tuple[list[int], list[float], list[float] | None]:
    """Trial numbers, the hypervolume of the feasible front after each COMPLETE trial, and the reference point.

    Uses Optuna's own computation (that of `optuna.visualization.plot_hypervolume_history`) with
    `reference_point`; empty without feasible trials or with a single objective.
    """
    reference = reference_point(study) if len(study.directions) > 1 else None
    if reference is None:
        return [], [], None
    numbers, volumes = optuna_hypervolume_history(study, reference)
    return numbers, volumes, reference


def hypervolume_history(study: optuna.Study) -> go.Figure:
    """The hypervolume of the feasible front over trial number (see `hypervolume_series`)."""
    numbers, volumes, reference = hypervolume_series(study)
    figure = go.Figure(
        go.Scatter(
            x=numbers,
            y=volumes,
            mode="lines+markers",
            name="hypervolume",
            line={"color": "darkorange", "shape": "hv"},
        )
    )
    names = objective_names(study)
    subtitle = ", ".join(f"{n}={v:.4g}" for n, v in zip(names, reference)) if reference else ""
    figure.update_layout(
        title=f"xsearch: hypervolume history<br><sup>reference point: {subtitle or '-'}</sup>",
        xaxis_title="trial",
        yaxis_title="hypervolume",
        template="plotly_white",
    )
    if not numbers:
        _note(
            figure, "hypervolume needs 2+ objectives" if len(study.directions) < 2 else EMPTY_NOTE
        )
    return figure


def spectrum_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per feasible COMPLETE trial that trained its design fully (repeats and trials stopped
    early are left out): number, its six axes (``segments`` as a string) and metrics.

    The axes come from the ``config`` user attr, else from the trial's parameters; rows are sorted
    by `segment_order`, then trial number.
    """
    frame = trials_frame(study)
    frame = frame[frame[TrialAttr.FEASIBLE]]
    for partial in (TrialAttr.REPEAT_OF, TrialAttr.STOPPED_AT_EPOCH):
        if partial in frame:
            frame = frame[frame[partial].isna()]
    rows = [_design_row(row) for _, row in frame.iterrows()]
    columns = ["number", "segments", *COLOUR_AXES, *(metric for metric, _, _ in SPECTRUM_METRICS)]
    spectrum = pd.DataFrame(rows, columns=columns)
    rank = {segment: i for i, segment in enumerate(segment_order(spectrum["segments"]))}
    return spectrum.sort_values(
        ["segments", "number"], key=lambda c: c.map(rank) if c.name == "segments" else c
    )


def segment_order(segments: Iterable[str]) -> list[str]:
    """The distinct segment values, numbers ascending (1, 2, 4, 8, ...), then "depthwise"."""
    return sorted(set(segments), key=lambda s: (0, int(s), "") if s.isdigit() else (1, 0, s))


def segment_spectrum(study: optuna.Study) -> go.Figure:
    """val_accuracy, params and latency against segment count, coloured by an axis picked in a dropdown."""
    spectrum = spectrum_frame(study)
    order = segment_order(spectrum["segments"])
    figure = make_subplots(
        rows=len(SPECTRUM_METRICS), cols=1, shared_xaxes=True, vertical_spacing=0.04
    )
    spans: dict[str, range] = {}
    for index, axis in enumerate(COLOUR_AXES):
        start = len(figure.data)
        for trace, row in _strip_traces(spectrum, axis, visible=index == 0):
            figure.add_trace(trace, row=row, col=1)
        spans[axis] = range(start, len(figure.data))
    for row, (_, title, axis_type) in enumerate(SPECTRUM_METRICS, start=1):
        figure.update_yaxes(title_text=title, type=axis_type, row=row, col=1)
    figure.update_xaxes(type="category", categoryorder="array", categoryarray=order)
    figure.update_xaxes(title_text="segments", row=len(SPECTRUM_METRICS), col=1)
    buttons = [
        {
            "label": f"colour: {axis}",
            "method": "update",
            "args": [
                {"visible": [i in span for i in range(len(figure.data))]},
                {"legend.title.text": axis},
            ],
        }
        for axis, span in spans.items()
    ]
    figure.update_layout(
        title="xsearch: segment spectrum",
        template="plotly_white",
        boxmode="group",
        legend_title_text=COLOUR_AXES[0],
        updatemenus=[{"buttons": buttons, "x": 1.0, "xanchor": "right", "y": 1.12}],
    )
    if spectrum.empty:
        _note(figure, EMPTY_NOTE)
    return figure


def design_space_edfs(study: optuna.Study) -> go.Figure:
    """`xsearch.results.analysis_figures.edf_figure` of the study's trained designs: per axis, the
    EDF of error at each value."""
    return edf_figure(designs_frame(study), empty=EMPTY_NOTE)


FIGURES: dict[str, Callable[[optuna.Study], go.Figure]] = {
    "xsearch-pareto": pareto_projections,
    "xsearch-hypervolume": hypervolume_history,
    "xsearch-segments": segment_spectrum,
    "xsearch-design-space": design_space_edfs,
}


def attach_figures(study: optuna.Study) -> None:
    """Save `FIGURES` into the study for optuna-dashboard, each under its fixed id (re-saving replaces).

    Also names the objectives from the study's ``xsearch_spec`` when the study has no metric names.
    """
    _ensure_metric_names(study)
    for graph_id, build in FIGURES.items():
        save_plotly_graph_object(study, build(study), graph_object_id=graph_id)


def _ensure_metric_names(study: optuna.Study) -> None:
    """Set the metric names from the study's recorded spec when the study has none."""
    if study.metric_names is not None:
        return
    try:
        metrics = [objective.metric for objective in read_spec(study).objective_list]
    except ValueError:  # not made by xsearch run
        return
    if len(metrics) == len(study.directions):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(metrics)


def _design_row(row: pd.Series) -> dict[str, Any]:
    """A `spectrum_frame` row from a `trials_frame` row."""
    config = row.get(TrialAttr.CONFIG)
    design = json.loads(config) if isinstance(config, str) and config else {}
    axes = {axis: design.get(axis, row.get(f"param_{axis}")) for axis in ("segments", *COLOUR_AXES)}
    metrics = {
        metric: pd.to_numeric(row.get(metric), errors="coerce") for metric, _, _ in SPECTRUM_METRICS
    }
    return {"number": row["number"], **axes, "segments": str(axes["segments"]), **metrics}


def _strip_traces(spectrum: pd.DataFrame, axis: str, visible: bool) -> list[tuple[go.Box, int]]:
    """Jittered points (boxes drawn invisible), one trace per value of ``axis`` and metric, with its row."""
    traces = []
    for value_index, (value, group) in enumerate(spectrum.groupby(axis, sort=True)):
        colour = qualitative.Plotly[value_index % len(qualitative.Plotly)]
        hover = [
            f"trial #{r.number}<br>segments={r.segments}, {axis}={value}"
            for r in group.itertuples()
        ]
        for row, (metric, _, _) in enumerate(SPECTRUM_METRICS, start=1):
            traces.append(
                (
                    go.Box(
                        x=group["segments"],
                        y=group[metric],
                        name=str(value),
                        legendgroup=f"{axis}={value}",
                        showlegend=row == 1,
                        visible=visible,
                        boxpoints="all",
                        jitter=0.5,
                        pointpos=0,
                        marker={"color": colour, "size": 8},
                        line={"color": "rgba(0,0,0,0)"},
                        fillcolor="rgba(0,0,0,0)",
                        hoveron="points",
                        text=hover,
                        hovertemplate="%{text}<br>" + metric + ": %{y:.4g}<extra></extra>",
                    ),
                    row,
                )
            )
    return traces


def _note(figure: go.Figure, text: str) -> None:
    """A centred grey note on an empty figure."""
    figure.add_annotation(
        text=text,
        x=0.5,
        y=0.5,
        xref="paper",
        yref="paper",
        showarrow=False,
        font={"size": 16, "color": "grey"},
    )
