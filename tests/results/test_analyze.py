"""`xsearch.results.analyze`: EDFs, paired bootstrap comparisons with known answers, a study's designs, the
report section, the dashboard figure and `xsearch analyze`."""

from __future__ import annotations

import itertools
import math
import re
import warnings
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest

from xsearch.cli import main
from xsearch.model.config import XceptionConfig
from xsearch.results.analysis_figures import analysis_html, analysis_section, edf_figure
from xsearch.results.analyze import (
    DRAWS,
    MIN_DESIGNS,
    analyze,
    bootstrap,
    designs_frame,
    edf_frame,
    empirical_cdf,
    pareto_mask,
    read_table,
    value_order,
)
from xsearch.results.figures import FIGURES, attach_figures, design_space_edfs
from xsearch.results.report import report_html
from xsearch.study.record import TrialAttr
from xsearch.study.storage import open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)
EPOCHS = 6
MACS = {"1": 8.0e6, "4": 2.5e6, "depthwise": 2.0e6}  # per unit of width and middle repeat


def synthetic(seeds: tuple[int, ...] = (0, 1), noise: float = 0.002) -> pd.DataFrame:
    """A bench table whose answers are known: no intermediate activation is 5 pp more accurate than ReLU and
    ELU, residual designs converge faster (and end higher), and 4 segments are 3 pp more accurate than the
    others at a quarter more MACs than depthwise, so that they dominate the accuracy-vs-MACs front."""
    rng = np.random.default_rng(1)
    rows = []
    for repeats, width, segments, activation, residual, seed in itertools.product(
        (0, 1), (0.125, 0.25), MACS, ("none", "relu", "elu"), (True, False), seeds
    ):
        final = (
            0.80
            + 0.05 * (activation == "none")
            + 0.03 * (segments == "4")
            + 0.02 * (width == 0.25)
            + 0.01 * repeats
        )
        rate = 0.6 if residual else 2.5  # epochs to 63% of the final accuracy
        curve = [
            final * (1 - math.exp(-e / rate)) + rng.normal(0, noise) for e in range(1, EPOCHS + 1)
        ]
        macs = MACS[segments] * width * (1 + repeats)
        rows.append(
            {
                "depth_multiplier": 1,
                "intermediate_activation": activation,
                "middle_repeats": repeats,
                "residual": residual,
                "segments": segments,
                "width": width,
                "seed": seed,
                "params": macs / 4,
                "macs": macs,
                "flops": 2 * macs,
                "latency_ms": 1.0,
                **{f"val_acc_{e}": v for e, v in enumerate(curve, 1)},
                "test_accuracy": curve[-1],
            }
        )
    return pd.DataFrame(rows)


def _questions(frame: pd.DataFrame) -> dict[str, Any]:
    return {q.name: q for q in analyze(frame).questions}


@pytest.mark.parametrize("seeds", [(0,), (0, 1, 2)])
def test_the_known_answers_come_out_with_clear_intervals(seeds):
    questions = _questions(synthetic(seeds))
    activation = questions["activation"]
    versus_none = {e.value: e for e in activation.effects if e.reference == "none"}
    for other in ("relu", "elu"):
        assert versus_none[other].mean == pytest.approx(-0.05, abs=0.005)
        assert versus_none[other].high < 0
        assert versus_none[other].pairs == 24
    assert re.match(
        r"no intermediate activation best: \+[45]\.\d pp \[CI \+[45]\.\d, \+[45]\.\d\] over ReLU",
        activation.verdict,
    )
    assert "none best: agrees" in activation.verdict
    assert activation.counts == (("none", 24, 24), ("relu", 0, 24), ("elu", 0, 24))

    residual = {e.metric: e for e in questions["residual"].effects}
    assert set(residual) == {"final", "val_acc_1", "val_acc_2", "curve_mean"}
    assert all(
        e.value == "True" and e.reference == "False" and e.clear and e.mean > 0
        for e in residual.values()
    )
    # the gap is widest early: faster convergence
    assert residual["val_acc_1"].mean > residual["final"].mean
    assert "converges faster" in questions["residual"].verdict
    assert "agrees" in questions["residual"].verdict

    segments = questions["segments"]
    assert segments.verdict.startswith(
        "4 gives the best accuracy for its cost: 3 of its 24 designs on the accuracy-vs-MACs front"
    )
    assert {v: k for v, k, _ in segments.counts} == {"1": 0, "4": 3, "depthwise": 1}
    four = {e.metric: e for e in segments.effects if e.value == "4"}
    assert four["final"].mean == pytest.approx(0.03, abs=0.005)
    assert four["final"].clear
    assert (four["log_macs"].mean, four["log_macs"].low, four["log_macs"].high) == pytest.approx(
        (1.25, 1.25, 1.25)
    )
    assert re.search(r"vs depthwise: \+[23]\.\d pp \[CI .*\] accuracy at 1\.25x", segments.verdict)


def test_seeds_are_resampled_within_designs():
    # every pair's means agree; its seeds do not
    spread = [(np.array([0.9, 0.7]), np.array([0.8]))] * 5
    point, low, high = bootstrap(spread)
    assert point == pytest.approx(0.0)
    assert low < 0 < high
    assert bootstrap([(np.array([0.9]), np.array([0.8]))] * 5) == pytest.approx((0.1, 0.1, 0.1))
    varied = [(np.array([x]), np.array([0.0])) for x in (0.1, 0.2, 0.3, 0.4)]
    point, low, high = bootstrap(varied)
    assert point == pytest.approx(0.25)
    assert 0.1 <= low < 0.25 < high <= 0.4
    # a fixed seed: the same interval every time
    assert bootstrap(varied) == bootstrap(varied, draws=DRAWS, seed=0)


def test_edf_of_a_tiny_table():
    ordered, fractions = empirical_cdf(np.array([0.2, 0.1, 0.2]))
    assert list(ordered) == [0.1, 0.2, 0.2]
    assert list(fractions) == pytest.approx([1 / 3, 1.0, 1.0])
    base = synthetic((0,)).iloc[0].to_dict()
    rows = [
        {
            **base,
            "segments": segments,
            "middle_repeats": index,
            **{f"val_acc_{e}": math.nan for e in range(2, EPOCHS)},
            f"val_acc_{EPOCHS}": final,
        }  # the last recorded accuracy counts
        for index, (segments, final) in enumerate(
            (("4", 0.9), ("4", 0.7), ("depthwise", 0.8), ("depthwise", 0.8))
        )
    ]
    frame = pd.DataFrame(rows)
    edfs = edf_frame(frame)
    segments = edfs[edfs["axis"] == "segments"]
    assert list(segments["value"]) == ["4", "4", "depthwise", "depthwise"]
    assert list(segments["error"]) == pytest.approx([0.1, 0.3, 0.2, 0.2])
    assert list(segments["fraction"]) == pytest.approx([0.5, 1.0, 1.0, 1.0])
    assert set(edfs["axis"]) == {
        "segments",
        "middle_repeats",
    }  # the axes that take one value are left out


def test_value_order_and_the_front():
    assert value_order("segments", ["depthwise", "8", "1", 16]) == ["1", "8", "16", "depthwise"]
    assert value_order("intermediate_activation", ["elu", "none", "relu"]) == [
        "none",
        "relu",
        "elu",
    ]
    assert value_order("residual", [True, False]) == ["False", "True"]
    accuracy, cost = np.array([0.9, 0.8, 0.9, 0.95, 0.7]), np.array([2.0, 1.0, 3.0, 5.0, 1.0])
    assert list(pareto_mask(accuracy, cost)) == [True, True, False, True, False]


def test_questions_it_cannot_answer_say_why():
    frame = synthetic((0,))
    one_residual = frame[frame["residual"]]
    questions = _questions(one_residual)
    assert not questions["residual"].answered
    assert questions["residual"].verdict == "skipped: every design has residual=True."
    assert questions["activation"].answered
    assert questions["segments"].answered
    few = frame[
        (frame["middle_repeats"] == 0) & (frame["width"] == 0.125) & (frame["segments"] != "1")
    ]
    # 2 activation pairs per value
    few = few[~((few["intermediate_activation"] != "none") & few["residual"])]
    activation = _questions(few)["activation"]
    assert not activation.answered
    assert "fewer than 3 design pairs" in activation.verdict
    no_curves = frame.assign(**{f"val_acc_{e}": math.nan for e in range(1, EPOCHS)})
    residual = _questions(no_curves)["residual"]
    assert residual.answered
    assert [e.metric for e in residual.effects] == ["final"]
    assert "convergence not compared" in residual.verdict
    with pytest.raises(ValueError, match=r"lacks the column.s. macs, val_acc_<epoch>"):
        analyze(frame.drop(columns=["macs", *(f"val_acc_{e}" for e in range(1, EPOCHS + 1))]))
    with pytest.raises(ValueError, match="no trained design"):
        analyze(frame.assign(**{f"val_acc_{e}": math.nan for e in range(1, EPOCHS + 1)}))


def _study(frame: pd.DataFrame, storage: Any = None, name: str = "synthetic") -> optuna.Study:
    """A study shaped like xsearch's, one COMPLETE trial per row of a bench-format ``frame``, recorded as
    xsearch records them; then a repeat, a trial stopped early, an infeasible one and a failed one."""
    study = optuna.create_study(
        study_name=name, storage=storage, directions=["maximize", "minimize", "minimize"]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["val_accuracy", "params", "latency_ms"])
    for row in frame.to_dict("records"):
        segments = row["segments"] if row["segments"] == "depthwise" else int(row["segments"])
        config = XceptionConfig(
            middle_repeats=row["middle_repeats"],
            width=row["width"],
            segments=segments,
            intermediate_activation=row["intermediate_activation"],
            residual=row["residual"],
        )
        curve = [row[f"val_acc_{e}"] for e in range(1, EPOCHS + 1)]
        attrs = {
            TrialAttr.CONFIG: config.to_json(),
            TrialAttr.SEED: row["seed"],
            TrialAttr.PARAMS: row["params"],
            TrialAttr.MACS: row["macs"],
            TrialAttr.FLOPS: row["flops"],
            TrialAttr.LATENCY_MS: row["latency_ms"],
            TrialAttr.CURVES: {"loss": [1.0] * EPOCHS, TrialAttr.VAL_ACCURACY: curve},
            TrialAttr.EPOCHS: EPOCHS,
            TrialAttr.VAL_ACCURACY: curve[-1],
            TrialAttr.TEST_ACCURACY: row["test_accuracy"],
        }
        study.add_trial(
            optuna.trial.create_trial(
                values=[curve[-1], row["params"], row["latency_ms"]], user_attrs=attrs
            )
        )
    first = study.trials[0]
    attrs = dict(first.user_attrs)
    for extra, constraints in (
        ({TrialAttr.REPEAT_OF: 0}, None),
        ({TrialAttr.STOPPED_AT_EPOCH: 2}, None),
        ({}, [1.0]),
    ):
        study.add_trial(
            optuna.trial.create_trial(
                values=first.values,
                user_attrs={**attrs, **extra},
                system_attrs={"constraints": constraints} if constraints else None,
            )
        )
    failed = optuna.trial.TrialState.FAIL
    study.add_trial(
        optuna.trial.create_trial(
            state=failed, user_attrs={TrialAttr.CONFIG: attrs[TrialAttr.CONFIG]}
        )
    )
    return study


def test_a_studys_designs_read_as_the_bench_table(tmp_path):
    table = synthetic((0,))
    study = _study(table)
    frame = designs_frame(study)
    # the repeat, the stopped, infeasible and failed trials left out
    assert list(frame["trial"]) == list(range(len(table)))
    columns = [c for c in table.columns if c not in ("segments",)]
    pd.testing.assert_frame_equal(frame[columns], table[columns], check_dtype=False)
    assert list(frame["segments"].map(str)) == list(table["segments"])
    path = tmp_path / "designs.csv"
    frame.to_csv(path, index=False)
    # the CSV of a study reads back the same
    assert analyze(read_table(path)) == analyze(frame) == analyze(table)

    attrs = {k: v for k, v in study.trials[0].user_attrs.items() if k != TrialAttr.CURVES}
    study.add_trial(optuna.trial.create_trial(values=study.trials[0].values, user_attrs=attrs))
    without_curve = designs_frame(study).iloc[-1]
    assert without_curve["val_acc_6"] == attrs[TrialAttr.VAL_ACCURACY]
    assert without_curve[["val_acc_1", "val_acc_5"]].isna().all()
    assert list(designs_frame(optuna.create_study()).columns)[-2:] == ["val_acc_1", "test_accuracy"]


def test_the_report_has_the_section_when_there_are_enough_designs():
    page = report_html(_study(synthetic((0,))))
    section = page[page.index("<h2>Design-space analysis</h2>") :]
    assert "no intermediate activation best" in section
    assert "4 gives the best accuracy for its cost" in section
    assert page.count("Plotly.newPlot") == 5
    assert page.count("* plotly.js v") == 1  # plotly.js inlined once
    small = synthetic((0,)).head(MIN_DESIGNS - 1)
    assert (
        f"<p>Skipped: {MIN_DESIGNS - 1} trained designs; the analysis needs {MIN_DESIGNS}.</p>"
        in report_html(_study(small))
    )
    assert analysis_section(small, include_plotlyjs=False) != analysis_section(
        small, False, min_designs=MIN_DESIGNS
    )


def test_the_dashboard_figure_draws_one_edf_per_axis_value():
    study = _study(synthetic((0,)))
    figure = design_space_edfs(study)
    assert figure.layout.title.text == "xsearch: design-space EDFs of error, per axis"
    # the panel titles: depth_multiplier takes one value
    assert [a.text for a in figure.layout.annotations] == [
        "intermediate_activation",
        "middle_repeats",
        "residual",
        "segments",
        "width",
    ]
    assert len(figure.data) == 3 + 2 + 2 + 3 + 2
    assert all(trace.y[0] == 0 and trace.y[-1] == 1 for trace in figure.data)
    attach_figures(study)
    assert "xsearch-design-space" in FIGURES
    one = synthetic((0,)).head(1)
    assert [a.text for a in edf_figure(one).layout.annotations] == ["no axis takes two values"]


def test_analyze_a_table_from_the_command_line(tmp_path, capsys):
    table = tmp_path / "bench.csv"
    synthetic((0, 1)).to_csv(table, index=False)
    page = tmp_path / "out" / "analysis.html"
    assert main(["analyze", "--table", str(table), "--html", str(page)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        "xsearch analysis: bench.csv: 72 designs, 144 runs (seeds 0, 1; 2 per design)"
    )
    assert "activation: no intermediate activation best" in out
    assert f"analysis: {page}" in out
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert "<h2>Design-space analysis</h2>" in text
    assert not re.search(r"<(script|link|img|iframe)[^>]*\b(src|href)=", text)  # opens offline
    # the figures' div ids
    uuid = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
    assert uuid.sub("id", text) == uuid.sub(
        "id", analysis_html(synthetic((0, 1)), "xsearch analysis: bench.csv")
    )


def test_analyze_a_study_from_the_command_line(tmp_path, capsys):
    storage = open_storage(str(tmp_path / "study.journal"))
    _study(synthetic((0,)), storage, name="bench")
    assert main(["analyze", "--study", "bench", "--out", str(tmp_path)]) == 0
    assert f"analysis: {tmp_path / 'analysis.html'}" in capsys.readouterr().out
    assert (tmp_path / "analysis.html").is_file()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--table", "missing.csv"], "missing.csv: no such table"),
        (["--table", "{table}", "--out", "runs/x"], "--storage and --out locate a study"),
        (["--table", "{bad}"], "lacks the column(s) depth_multiplier"),
        (["--study", "nothing-here", "--out", "{folder}"], "has no run folder storage"),
    ],
)
def test_bad_input_exits_2_with_a_message(tmp_path, capsys, argv, message):
    (tmp_path / "table.csv").write_text(synthetic((0,)).to_csv(index=False))
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    paths = {"table": tmp_path / "table.csv", "bad": tmp_path / "bad.csv", "folder": tmp_path}
    assert main(["analyze", *(arg.format(**paths) for arg in argv)]) == 2
    assert message in capsys.readouterr().err
