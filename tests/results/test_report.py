import re

import optuna
import pandas as pd
import pytest

from xsearch.results.report import FORMATS, report_summary, write_report
from xsearch.study.record import is_feasible
from xsearch.study.storage import open_storage, run_storage


@pytest.fixture
def stored(tiny_run) -> optuna.Study:
    """The finished tiny study, read back from its storage."""
    return optuna.load_study(
        study_name="tiny", storage=open_storage(run_storage("tiny", out=tiny_run), create=False)
    )


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.slow
def test_tables_hold_every_trial_attribute_and_the_pareto_flag(stored, tmp_path, fmt):
    path = write_report(stored, tmp_path, fmt)
    assert path == tmp_path / f"report.{fmt}"
    frame = pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path)
    assert list(frame["number"]) == [t.number for t in stored.trials]
    assert set(frame.loc[frame["pareto"], "number"]) == {t.number for t in stored.best_trials}
    every_attr = {a for t in stored.trials for a in t.user_attrs} | {
        f"param_{p}" for t in stored.trials for p in t.params
    }
    assert every_attr <= set(frame.columns)
    for trial, (_, row) in zip(stored.trials, frame.iterrows()):
        assert row["state"] == trial.state.name
        assert row["feasible"] == is_feasible(trial)
        assert [row[m] for m in stored.metric_names] == pytest.approx(trial.values)
        assert row["param_segments"] == trial.params["segments"]
        assert row["config"] == trial.user_attrs["config"]
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically: no temp file left


@pytest.mark.slow
def test_html_is_one_offline_page_with_figures_and_front(stored, tmp_path):
    page = write_report(stored, tmp_path, "html").read_text()
    # nothing fetched from the network
    assert not re.search(r"<(script|link|img|iframe)[^>]*\b(src|href)=", page)
    assert page.count("Plotly.newPlot") == 3
    for title in (
        "xsearch: Pareto front",
        "xsearch: hypervolume history",
        "xsearch: segment spectrum",
    ):
        assert title in page
    front_rows = re.findall(r"<tr>\s*<td>(\d+)</td>", page[page.index("<h2>Pareto front</h2>") :])
    assert [int(n) for n in front_rows] == [
        t.number for t in sorted(stored.best_trials, key=lambda t: (-t.values[0], t.number))
    ]


@pytest.mark.slow
def test_bad_format_names_the_valid_ones(stored, tmp_path):
    with pytest.raises(
        ValueError, match="unknown report format 'xlsx'; choose one of csv, parquet, html"
    ):
        write_report(stored, tmp_path, "xlsx")
    assert FORMATS == ("csv", "parquet", "html")
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_summary(stored):
    text = report_summary(stored)
    assert text.splitlines()[:3] == [
        "study 'tiny': 3 trials (COMPLETE 3)",
        "failure reasons: none",
        "Pareto front:",
    ]
    assert "val_acc" in text
    assert "depthwise" in text


def test_summary_and_reports_of_an_empty_study(tmp_path):
    study = optuna.create_study(study_name="empty", directions=["maximize", "minimize", "minimize"])
    assert (
        report_summary(study)
        == "study 'empty': 0 trials\nfailure reasons: none\nPareto front:\nno completed trials yet"
    )
    failed = optuna.trial.create_trial(
        state=optuna.trial.TrialState.FAIL, user_attrs={"failure_reason": "oom"}
    )
    study.add_trials([failed, failed])
    assert "FAIL 2" in report_summary(study)
    assert "failure reasons: oom 2" in report_summary(study)
    for fmt in FORMATS:
        assert write_report(study, tmp_path, fmt).stat().st_size > 0
