"""`xsearch report`: a study's trials as CSV or Parquet, or one offline HTML page; a terminal summary."""

from __future__ import annotations

import html
import io
from collections import Counter
from pathlib import Path

import optuna
import pandas as pd

from xsearch.common.atomic import check_writable, write_atomic
from xsearch.results.analysis_figures import analysis_section
from xsearch.results.analyze import MIN_DESIGNS, designs_frame
from xsearch.results.figures import hypervolume_history, pareto_projections, segment_spectrum
from xsearch.results.latency_analysis import latency_frame, latency_summary
from xsearch.results.pareto import pareto_front, trials_frame
from xsearch.results.run_reports import front_table_text
from xsearch.study.early_stop import stopped_summary
from xsearch.study.record import StudyAttr, TrialAttr, is_repeat

FORMATS = ("csv", "parquet", "html")
_FRONT_COLUMNS = (
    "number",
    TrialAttr.VAL_ACCURACY,
    TrialAttr.TEST_ACCURACY,
    TrialAttr.PARAMS,
    TrialAttr.MACS,
    TrialAttr.FLOPS,
    TrialAttr.LATENCY_MS,
)


def write_report(study: optuna.Study, out_dir: Path, fmt: str) -> Path:
    """Write ``report.<fmt>`` into ``out_dir`` atomically and return its path.

    csv and parquet hold `trials_frame` (every recorded attribute, the Pareto flag); html is one
    self-contained page (plotly.js inlined) with the Pareto projections, the hypervolume history,
    the segment spectrum, the front table and the design-space analysis (`xsearch.results.analysis_figures`).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    path = Path(out_dir) / f"report.{fmt}"
    check_writable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        data = trials_frame(study).to_csv(index=False).encode()
    elif fmt == "parquet":
        buffer = io.BytesIO()
        trials_frame(study).to_parquet(buffer, index=False)
        data = buffer.getvalue()
    else:
        data = report_html(study).encode()
    write_atomic(path, data)
    return path


def report_html(study: optuna.Study) -> str:
    """The html report: a title, the trial counts, three figures (plotly.js inlined once), the front table, and
    the design-space analysis (or why it is skipped: fewer than `MIN_DESIGNS` trained designs)."""
    figures = [pareto_projections(study), hypervolume_history(study), segment_spectrum(study)]
    divs = [f.to_html(full_html=False, include_plotlyjs=i == 0) for i, f in enumerate(figures)]
    title = html.escape(f"xsearch report: {study.study_name}")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html><head><meta charset="utf-8">',
            f"<title>{title}</title></head><body>",
            f"<h1>{title}</h1>",
            f"<p>{html.escape(_state_counts(study))}</p>",
            *(f"<p>{html.escape(line)}</p>" for line in _data_line(study)),
            *divs,
            "<h2>Pareto front</h2>",
            front_frame(study).to_html(index=False, na_rep="-"),
            "<h2>Latency: noise and rank correlations per device</h2>",
            latency_frame(study).to_html(index=False, na_rep="-"),
            analysis_section(designs_frame(study), include_plotlyjs=False, min_designs=MIN_DESIGNS),
            "</body></html>",
        ]
    )


def front_frame(study: optuna.Study) -> pd.DataFrame:
    """The front's rows of `trials_frame`, best first: trial number, metrics and parameters."""
    frame = trials_frame(study).set_index("number", drop=False)
    front = frame.loc[[t.number for t in pareto_front(study)]]
    columns = [c for c in _FRONT_COLUMNS if c in front] + [
        c for c in front if c.startswith("param_")
    ]
    return front[columns].reset_index(drop=True)


def report_summary(study: optuna.Study) -> str:
    """Study name, trials by state (and repeats of trained designs), failure reasons with counts (of
    the trials that ran), the front as a text table, latency noise and rank correlations per device, and the data
    the study trains on."""
    trials = study.get_trials(deepcopy=False)
    reasons = Counter(
        str(t.user_attrs[TrialAttr.FAILURE_REASON])
        for t in trials
        if TrialAttr.FAILURE_REASON in t.user_attrs and not is_repeat(t)
    )
    failures = ", ".join(f"{reason} {count}" for reason, count in reasons.most_common()) or "none"
    stopped = stopped_summary(study)
    return "\n".join(
        [
            f"study {study.study_name!r}: {_state_counts(study)}",
            f"failure reasons: {failures}",
            *([f"early stopping: {stopped}"] if stopped else []),
            "Pareto front:",
            front_table_text(study),
            *latency_summary(study),
            *_data_line(study),
        ]
    )


def _state_counts(study: optuna.Study) -> str:
    """ "N trials (COMPLETE a, FAIL b, ...)"."""
    trials = study.get_trials(deepcopy=False)
    states = Counter(t.state.name for t in trials)
    detail = ", ".join(f"{state} {count}" for state, count in sorted(states.items()))
    repeats = sum(map(is_repeat, trials))
    return (
        f"{sum(states.values())} trials"
        + (f" ({detail})" if detail else "")
        + (f", {repeats} of them repeats of a trained design (not retrained)" if repeats else "")
    )


def _data_line(study: optuna.Study) -> list[str]:
    """ "data: <name> SxS, train a, val b, test c images, k classes; ..." from the study's data record (none: [])."""
    data = study.user_attrs.get(StudyAttr.DATA)
    if not data:
        return []
    images = ", ".join(f"{split} {count:,}" for split, count in data["images"].items())
    size = data["image_size"]
    left_out = [
        f"{data[key]:,} {what} left out"
        for key, what in (
            ("unreadable_files", "unreadable files"),
            ("ignored_files", "files that are not images"),
        )
        if data.get(key)
    ]
    return [
        "; ".join(
            [
                f"data: {data['name']} {size}x{size}, {images} images, {len(data['class_names'])} classes",
                *left_out,
                f"cache {data['cache_key']}",
            ]
        )
    ]
