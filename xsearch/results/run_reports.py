"""Run reports: ``trials.csv``, ``pareto.csv``, an offline ``pareto.html``, and a text table of the front."""

from __future__ import annotations

import json
import math
import numbers
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from xsearch.common.atomic import write_atomic
from xsearch.model.space import AXES
from xsearch.results.pareto import latency_metric, pareto_front, trials_frame
from xsearch.study.record import TrialAttr

_ABBREVIATIONS = {
    "middle_repeats": "rep",
    "width": "width",
    "depth_multiplier": "dm",
    "segments": "seg",
    "intermediate_activation": "act",
    "residual": "res",
}
_PANELS = ((TrialAttr.PARAMS, "params", "log"), (TrialAttr.LATENCY_MS, "latency (ms)", "linear"))
_HOVER_METRICS = (
    TrialAttr.VAL_ACCURACY,
    TrialAttr.TEST_ACCURACY,
    TrialAttr.PARAMS,
    TrialAttr.MACS,
    TrialAttr.LATENCY_MS,
    TrialAttr.THROUGHPUT,
)


def write_run_reports(study: optuna.Study, out_dir: Path) -> dict[str, Path]:
    """Write ``trials.csv``, ``pareto.csv`` and ``pareto.html`` into ``out_dir``, each atomically.

    ``trials.csv`` is `trials_frame`; ``pareto.csv`` holds its front rows, best first (see
    `pareto_front`); ``pareto.html`` is `pareto_figure` with plotly.js inlined, so it opens offline.
    Returns the paths by name (``"trials"``, ``"pareto"``, ``"html"``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = trials_frame(study)
    paths = {
        "trials": out_dir / "trials.csv",
        "pareto": out_dir / "pareto.csv",
        "html": out_dir / "pareto.html",
    }
    write_atomic(paths["trials"], frame.to_csv(index=False))
    write_atomic(paths["pareto"], _front_rows(study, frame).to_csv(index=False))
    write_atomic(paths["html"], pareto_figure(study).to_html(include_plotlyjs=True, full_html=True))
    return paths


def pareto_figure(study: optuna.Study) -> go.Figure:
    """Two panels: val_accuracy against params (log x) and against the latency the study optimises (`latency_metric`).

    COMPLETE feasible trials are grey dots, the front is highlighted and joined by a step line
    (sorted by x), infeasible or failed trials that have both values are crosses. Metrics are the
    objectives, or the user attrs of the same name when they are not objectives. Hovering shows the
    trial number, its six axes and its metrics.
    """
    frame = trials_frame(study)
    latency = latency_metric(study)
    panels = (
        _PANELS[0],
        (latency, f"latency (ms{latency.removeprefix(TrialAttr.LATENCY_MS)})", "linear"),
    )
    figure = make_subplots(
        rows=1, cols=2, subplot_titles=[f"val_accuracy vs {title}" for _, title, _ in panels]
    )
    groups = {
        "trials": frame[frame[TrialAttr.FEASIBLE] & ~frame["pareto"]],
        "infeasible / failed": frame[~frame[TrialAttr.FEASIBLE]],
        "Pareto front": frame[frame["pareto"]],
    }
    for col, (metric, title, axis_type) in enumerate(panels, start=1):
        for name, rows in groups.items():
            figure.add_trace(_scatter(rows, metric, name, first_panel=col == 1), row=1, col=col)
        figure.update_xaxes(title_text=title, type=axis_type, row=1, col=col)
        figure.update_yaxes(title_text=TrialAttr.VAL_ACCURACY, tickformat=".1%", row=1, col=col)
    figure.update_layout(
        title=f"Study {study.study_name}: {len(frame)} trials",
        template="plotly_white",
        hovermode="closest",
    )
    return figure


def front_table_text(study: optuna.Study) -> str:
    """The front as a compact text table, best first; "no completed trials yet" when it is empty."""
    front = _front_rows(study, trials_frame(study))
    if front.empty:
        return "no completed trials yet"
    table = pd.DataFrame(
        {
            "trial": front["number"],
            "val_acc": [_percent(v) for v in _column(front, TrialAttr.VAL_ACCURACY)],
            "test_acc": [_percent(v) for v in _column(front, TrialAttr.TEST_ACCURACY)],
            "params": [_si(v) for v in _column(front, TrialAttr.PARAMS)],
            "MACs": [_si(v) for v in _column(front, TrialAttr.MACS)],
            "lat_ms": [_number(v, "{:.2f}") for v in _column(front, TrialAttr.LATENCY_MS)],
        }
    )
    latency = latency_metric(study)
    # the study optimises latency on a `[latency]` target: that column too
    if latency != TrialAttr.LATENCY_MS:
        table[latency.replace(TrialAttr.LATENCY_MS, "ms")] = [
            _number(v, "{:.3g}") for v in _column(front, latency)
        ]
    axes = pd.DataFrame([_axes(row) for _, row in front.iterrows()]).rename(columns=_ABBREVIATIONS)
    return pd.concat([table, axes], axis=1).to_string(index=False)


def _front_rows(study: optuna.Study, frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``frame`` on the front, in `pareto_front` order, re-indexed from 0."""
    order = [t.number for t in pareto_front(study)]
    return frame.set_index("number", drop=False).loc[order].reset_index(drop=True)


def _scatter(rows: pd.DataFrame, metric: str, name: str, first_panel: bool) -> go.Scatter:
    """One trace of `pareto_figure`: the rows that have both ``metric`` and val_accuracy."""
    x, y = _column(rows, metric), _column(rows, TrialAttr.VAL_ACCURACY)
    rows = rows[x.notna() & y.notna()].assign(_x=x, _y=y).sort_values("_x")
    styles: dict[str, dict[str, Any]] = {
        "trials": {"mode": "markers", "marker": {"color": "lightgrey", "size": 7}},
        "infeasible / failed": {
            "mode": "markers",
            "marker": {"color": "indianred", "size": 8, "symbol": "x"},
        },
        "Pareto front": {
            "mode": "lines+markers",
            "marker": {"color": "darkorange", "size": 12, "line": {"color": "black", "width": 1}},
            "line": {"color": "darkorange", "shape": "hv"},
        },
    }
    return go.Scatter(
        x=rows["_x"],
        y=rows["_y"],
        name=name,
        legendgroup=name,
        showlegend=first_panel,
        customdata=rows["number"],
        text=[_hover(row) for _, row in rows.iterrows()],
        hovertemplate="%{text}<extra></extra>",
        **styles[name],
    )


def _hover(row: pd.Series) -> str:
    """Hover text of one trial: number and state, its six axes, its metrics."""
    axes = ", ".join(f"{axis}={value}" for axis, value in _axes(row).items())
    metrics = "<br>".join(
        f"{metric}: {row[metric]:.4g}"
        for metric in _HOVER_METRICS
        if metric in row and _finite(row[metric])
    )
    return f"trial #{row['number']} ({row['state']})<br>{axes}<br>{metrics}"


def _axes(row: pd.Series) -> dict[str, Any]:
    """The six axes of a trial: from its ``config`` user attr, else from its ``param_`` columns."""
    config = row.get(TrialAttr.CONFIG)
    parsed = json.loads(config) if isinstance(config, str) and config else {}
    values = {axis: parsed.get(axis, row.get(f"param_{axis}")) for axis in AXES}
    return {axis: "-" if pd.isna(value) else value for axis, value in values.items()}


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    """``frame[name]`` as floats (NaN where missing or not a number), all NaN without that column."""
    if name not in frame:
        return pd.Series(math.nan, index=frame.index, dtype=float)
    return pd.to_numeric(frame[name], errors="coerce").astype(float)


def _finite(value: Any) -> bool:
    """Whether ``value`` is a finite real number (not a bool)."""
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, (bool, np.bool_))
        and math.isfinite(value)
    )


def _percent(value: float) -> str:
    """A fraction as a percentage with two decimals, "-" when missing."""
    return _number(value * 100, "{:.2f}%")


def _si(value: float) -> str:
    """A count with a K/M/G suffix (1.23M), "-" when missing."""
    if not math.isfinite(value):
        return "-"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{suffix}"
    return f"{value:.0f}"


def _number(value: float, spec: str) -> str:
    """``value`` formatted with ``spec``, "-" when missing."""
    return spec.format(value) if math.isfinite(value) else "-"
