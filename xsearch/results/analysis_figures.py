"""The design-space analysis drawn (`xsearch analyze`, the study report's section, the dashboard's EDFs): the
error EDFs per axis and the paired effects as plotly figures, and the analysis as HTML. The computation is
`xsearch.results.analyze`'s."""

from __future__ import annotations

import html
import math
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from xsearch.common.atomic import write_atomic
from xsearch.results.analyze import (
    Analysis,
    Question,
    analysis_summary,
    analyze,
    design_count,
    edf_frame,
    metric_label,
)


def edf_figure(frame: pd.DataFrame, empty: str = "no trained designs") -> go.Figure:
    """One panel per axis that takes 2+ values: the EDF of the designs' error at each of its values
    (``empty``, or a note that no axis varies, when there is nothing to draw)."""
    edfs = edf_frame(frame)
    axes = list(dict.fromkeys(edfs["axis"]))
    columns = min(3, max(1, len(axes)))
    figure = make_subplots(
        rows=max(1, math.ceil(len(axes) / columns)),
        cols=columns,
        subplot_titles=axes or None,
        horizontal_spacing=0.06,
        vertical_spacing=0.12,
    )
    for index, axis in enumerate(axes):
        for colour, (value, edf) in enumerate(
            edfs[edfs["axis"] == axis].groupby("value", sort=False)
        ):
            errors, fractions = edf["error"].to_numpy(), edf["fraction"].to_numpy()
            figure.add_trace(
                go.Scatter(
                    x=[errors[0], *errors],
                    y=[0.0, *fractions],
                    mode="lines",
                    line={
                        "shape": "hv",
                        "color": qualitative.Plotly[colour % len(qualitative.Plotly)],
                    },
                    name=f"{value} ({len(errors)})",
                    legendgroup=axis,
                    legendgrouptitle_text=axis,
                    hovertemplate=f"{axis}={value}<br>error %{{x:.3f}}: %{{y:.0%}} of designs<extra></extra>",
                ),
                row=index // columns + 1,
                col=index % columns + 1,
            )
    figure.update_xaxes(title_text="error (1 - val accuracy)")
    figure.update_yaxes(title_text="share of designs", range=[0, 1.02])
    figure.update_layout(
        title="xsearch: design-space EDFs of error, per axis",
        template="plotly_white",
        height=360 * max(1, math.ceil(len(axes) / columns)),
    )
    if not axes:
        note = "no axis takes two values" if design_count(frame) else empty
        figure.add_annotation(
            text=note,
            x=0.5,
            y=0.5,
            xref="paper",
            yref="paper",
            showarrow=False,
            font={"size": 16, "color": "grey"},
        )
    return figure


def effects_figure(analysis: Analysis) -> go.Figure:
    """Every accuracy difference of the questions with its 95% interval, in percentage points."""
    effects = [(q.name, e) for q in analysis.questions for e in q.effects if not e.ratio]
    labels = [f"{name}: {e.value} - {e.reference}, {metric_label(e.metric)}" for name, e in effects]
    figure = go.Figure(
        go.Scatter(
            x=[100 * e.mean for _, e in effects],
            y=labels,
            mode="markers",
            marker={"size": 9, "color": "darkorange"},
            error_x={
                "type": "data",
                "array": [100 * (e.high - e.mean) for _, e in effects],
                "arrayminus": [100 * (e.mean - e.low) for _, e in effects],
            },
            hovertemplate="%{y}: %{x:+.2f} pp<extra></extra>",
        )
    )
    figure.add_vline(x=0, line={"color": "grey", "dash": "dash"})
    figure.update_layout(
        title="xsearch: paired accuracy differences (pp, 95% bootstrap intervals)",
        template="plotly_white",
        xaxis_title="accuracy difference (pp)",
        yaxis={"autorange": "reversed"},
        height=160 + 32 * max(1, len(effects)),
        margin={"l": 360},
    )
    return figure


def analysis_section(frame: pd.DataFrame, include_plotlyjs: bool, min_designs: int = 0) -> str:
    """The analysis as an HTML fragment (a heading, the verdicts, the figures, the tables), or a line saying
    why it is skipped when the frame holds fewer than ``min_designs`` trained designs."""
    designs = design_count(frame)
    if designs < max(1, min_designs):
        return (
            f"<h2>Design-space analysis</h2>\n<p>Skipped: {designs} trained design{'s' * (designs != 1)}; "
            f"the analysis needs {max(1, min_designs)}.</p>"
        )
    return _section(frame, analyze(frame), include_plotlyjs)


def analysis_html(frame: pd.DataFrame, title: str) -> str:
    """The analysis as one self-contained HTML page (plotly.js inlined)."""
    return _page(frame, analyze(frame), title)


def write_analysis(frame: pd.DataFrame, title: str, html_path: Path | None) -> str:
    """Analyse ``frame``, write the HTML page to ``html_path`` atomically when given, and return the terminal
    summary (with the page's path)."""
    analysis = analyze(frame)
    summary = analysis_summary(analysis, title)
    if html_path is None:
        return summary
    html_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(html_path, _page(frame, analysis, title))
    return f"{summary}\nanalysis: {html_path}"


def _page(frame: pd.DataFrame, analysis: Analysis, title: str) -> str:
    """The page of `analysis_html`."""
    heading = html.escape(title)
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html><head><meta charset="utf-8">',
            f"<title>{heading}</title></head><body>",
            f"<h1>{heading}</h1>",
            _section(frame, analysis, include_plotlyjs=True),
            "</body></html>",
        ]
    )


def _section(frame: pd.DataFrame, analysis: Analysis, include_plotlyjs: bool) -> str:
    """The HTML fragment of `analysis_section`."""
    summary = analysis_summary(analysis).splitlines()
    verdicts = "".join(
        f"<li><b>{html.escape(q.name)}</b>: {html.escape(q.verdict)}</li>"
        for q in analysis.questions
    )
    figures = [edf_figure(frame), effects_figure(analysis)]
    divs = [
        f.to_html(full_html=False, include_plotlyjs=include_plotlyjs and i == 0)
        for i, f in enumerate(figures)
    ]
    tables = []
    for question in analysis.questions:
        if question.effects:
            tables.append(
                f"<h3>{html.escape(question.name)}: paired comparisons</h3>"
                f"{_effects_table(question).to_html(index=False)}"
            )
        if question.counts:
            counts = pd.DataFrame(
                question.counts, columns=[question.name, question.count_label, "out of"]
            )
            tables.append(
                f"<h3>{html.escape(question.name)}: {html.escape(question.count_label)}</h3>"
                f"{counts.to_html(index=False)}"
            )
    return "\n".join(
        [
            "<h2>Design-space analysis</h2>",
            f"<p>{html.escape(summary[0])}</p>",
            f"<ul>{verdicts}</ul>",
            *divs,
            *tables,
            f"<p>{html.escape(summary[-1])}</p>",
        ]
    )


def _effects_table(question: Question) -> pd.DataFrame:
    rows = [
        {
            "metric": metric_label(e.metric),
            "value": e.value,
            "reference": e.reference,
            "pairs": e.pairs,
            "difference": e.text(),
            "clear": e.clear,
        }
        for e in question.effects
    ]
    return pd.DataFrame(rows)
