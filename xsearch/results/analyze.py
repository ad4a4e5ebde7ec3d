"""Design-space analysis (`xsearch analyze`): error distributions per axis, and the Xception paper's questions
answered with paired designs and bootstrap intervals.

The input is a frame in the bench-table format (``benchmarks/xception_bench.csv``, or `designs_frame` of a
study): one row per design and seed, with the six axes, ``seed``, ``params``, ``macs`` and ``val_acc_<e>``
(validation accuracy after epoch e). A run's accuracy is its last recorded ``val_acc_<e>``; a design's is the
mean over its seeds, and its error 1 - accuracy. Per axis, the empirical distribution function (EDF) of the
designs' error at each axis value compares the values over the whole space (Radosavovic et al. 2020,
"Designing Network Design Spaces"). The questions compare designs identical on every other axis ("pairs");
each difference comes with a 95% percentile interval from `bootstrap` (pairs resampled with replacement,
and each design's seeds within it). This module computes; `xsearch.results.analysis_figures` draws.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from xsearch.model.config import ACTIVATIONS, XceptionConfig
from xsearch.model.space import AXES
from xsearch.study.record import TrialAttr, epoch_series, is_feasible, is_repeat, is_stopped

AXIS_COLUMNS = tuple(sorted(AXES))  # the bench table's order
CURVE = "val_acc_"
DRAWS = 2000
RNG_SEED = 0
MIN_PAIRS = 3  # fewer matched pairs: the comparison is left out
MIN_DESIGNS = 10  # the study report's section needs this many trained designs
ACTIVATION, RESIDUAL, SEGMENTS = "intermediate_activation", "residual", "segments"
_FINAL, _CURVE_MEAN, _LOG_PARAMS, _LOG_MACS = "final", "curve_mean", "log_params", "log_macs"
_NAMES = {
    "none": "no intermediate activation",
    "relu": "ReLU",
    "elu": "ELU",
    "True": "on",
    "False": "off",
}


@dataclasses.dataclass(frozen=True)
class Effect:
    """``value`` against ``reference`` on one metric, over designs paired on the other axes: the mean and
    its 95% bootstrap interval. Accuracies are differences (value - reference, as fractions); costs
    (``ratio``) are geometric-mean ratios value / reference."""

    metric: str
    value: str
    reference: str
    pairs: int
    mean: float
    low: float
    high: float
    ratio: bool = False

    @property
    def clear(self) -> bool:
        """Whether the interval leaves out no difference (0, or a ratio of 1)."""
        null = 1.0 if self.ratio else 0.0
        return self.low > null or self.high < null

    def flipped(self) -> Effect:
        """``reference`` against ``value`` (of a difference)."""
        return dataclasses.replace(
            self,
            value=self.reference,
            reference=self.value,
            mean=-self.mean,
            low=-self.high,
            high=-self.low,
        )

    def text(self) -> str:
        """``+0.8 pp [CI +0.2, +1.4]``, or ``2.10x [CI 2.05, 2.15]`` for a ratio."""
        if self.ratio:
            return f"{self.mean:.2f}x [CI {self.low:.2f}, {self.high:.2f}]"
        return f"{100 * self.mean:+.1f} pp [CI {100 * self.low:+.1f}, {100 * self.high:+.1f}]"


@dataclasses.dataclass(frozen=True)
class Question:
    """One of the paper's questions: a one-line verdict (or why it was skipped), the effects behind it, and
    a count per axis value (``count_label``: wins in matched groups, designs on the Pareto front)."""

    name: str
    verdict: str
    answered: bool
    effects: tuple[Effect, ...] = ()
    counts: tuple[tuple[str, int, int], ...] = ()  # (value, count, out of)
    count_label: str = ""


@dataclasses.dataclass(frozen=True)
class AxisValue:
    """The error of the designs at one value of one axis (a summary of its EDF)."""

    axis: str
    value: str
    designs: int
    median_error: float
    lowest_error: float


@dataclasses.dataclass(frozen=True)
class Analysis:
    """What `analyze` found: the data's size, the EDF summaries of the axes that vary, the questions."""

    runs: int
    designs: int
    seeds: tuple[int, ...]
    seeds_per_design: tuple[int, int]  # fewest, most
    axes: tuple[AxisValue, ...]
    fixed_axes: tuple[tuple[str, str], ...]  # (axis, its one value)
    questions: tuple[Question, ...]


def designs_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trained design of ``study`` in the bench-table format.

    Trained: feasible COMPLETE trials that neither repeat an earlier design nor were stopped early. The axes
    come from the trial's ``config`` (an axis it lacks takes the paper's value), ``seed`` is the trial's
    seed (0 when unrecorded), ``val_acc_<e>`` its validation curve; a trial without a curve has its
    ``val_accuracy`` at its last epoch (``epochs``, else the study's longest curve). There is always at
    least a ``val_acc_1`` column.
    """
    trials = [
        t
        for t in study.get_trials(deepcopy=False)
        if is_feasible(t)
        and not is_repeat(t)
        and not is_stopped(t)
        and TrialAttr.CONFIG in t.user_attrs
    ]
    curves = [_curve(t.user_attrs) for t in trials]
    longest = max([1, *map(len, curves)])
    curves = [curve or _final_only(t.user_attrs, longest) for t, curve in zip(trials, curves)]
    rows = [_design_row(t, curve) for t, curve in zip(trials, curves)]
    epochs = max([1, *map(len, curves)])
    columns = [
        *AXIS_COLUMNS,
        TrialAttr.SEED,
        "trial",
        TrialAttr.PARAMS,
        TrialAttr.MACS,
        TrialAttr.FLOPS,
        TrialAttr.LATENCY_MS,
        *(f"{CURVE}{e}" for e in range(1, epochs + 1)),
        TrialAttr.TEST_ACCURACY,
    ]
    return pd.DataFrame(rows, columns=columns)


def read_table(path: Path) -> pd.DataFrame:
    """A bench table (CSV) as a frame; FileNotFoundError or ValueError, naming the file, when it is missing,
    unreadable or lacks a column the analysis needs."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no such table (a CSV in the bench-table format, e.g. benchmarks/xception_bench.csv)."
        )
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a readable CSV table ({error}).") from None
    _check_columns(frame, str(path))
    return frame


def analyze(frame: pd.DataFrame) -> Analysis:
    """The EDF summaries and the three questions (activation, residual, segments) of a bench-format frame.

    Raises ValueError when the frame lacks a needed column or holds no run with an accuracy.
    """
    runs = _runs(frame)
    if runs.empty:
        raise ValueError("no trained design to analyse: no row has a validation accuracy.")
    designs = _designs(runs)
    seeds = designs["seeds"]
    fixed = tuple(
        (axis, str(designs[axis].iloc[0])) for axis in AXIS_COLUMNS if designs[axis].nunique() == 1
    )
    return Analysis(
        runs=len(runs),
        designs=len(designs),
        seeds=tuple(sorted(int(s) for s in runs[TrialAttr.SEED].unique())),
        seeds_per_design=(int(seeds.min()), int(seeds.max())),
        axes=_axis_values(designs),
        fixed_axes=fixed,
        questions=(activation_question(runs), residual_question(runs), segments_question(runs)),
    )


def edf_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The EDF of the designs' error at each value of each axis that takes 2+ values: rows of ``axis``,
    ``value``, ``error`` (sorted) and ``fraction`` (the share of that value's designs with error <= it)."""
    designs = _designs(_runs(frame))
    parts = []
    for axis in AXIS_COLUMNS:
        if designs[axis].nunique() < 2:
            continue
        for value in value_order(axis, designs[axis]):
            errors, fractions = empirical_cdf(
                designs.loc[designs[axis] == value, "error"].to_numpy()
            )
            parts.append(
                pd.DataFrame({"axis": axis, "value": value, "error": errors, "fraction": fractions})
            )
    columns = ["axis", "value", "error", "fraction"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def design_count(frame: pd.DataFrame) -> int:
    """How many trained designs a bench-format frame holds (a design counts once, however many seeds it has)."""
    return len(_designs(_runs(frame)))


def empirical_cdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The values sorted, and at each the share of values <= it."""
    ordered = np.sort(np.asarray(values, dtype=float))
    return ordered, np.searchsorted(ordered, ordered, side="right") / len(ordered)


def bootstrap(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]], draws: int = DRAWS, seed: int = RNG_SEED
) -> tuple[float, float, float]:
    """The mean over pairs of (mean of the first design's seed values - mean of the second's), and its 95%
    percentile interval: each draw resamples the pairs with replacement and, within each drawn design, its
    seed values (a design with one seed keeps it)."""
    rng = np.random.default_rng(seed)
    point = float(np.mean([a.mean() - b.mean() for a, b in pairs]))
    picks = rng.integers(0, len(pairs), size=(draws, len(pairs)))
    first, second = _padded([a for a, _ in pairs]), _padded([b for _, b in pairs])
    samples = (_resampled_means(first, picks, rng) - _resampled_means(second, picks, rng)).mean(
        axis=1
    )
    low, high = np.percentile(samples, [2.5, 97.5])
    return point, float(low), float(high)


def pareto_mask(accuracy: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Which designs no other design beats (at least as accurate and at most as costly, better in one)."""
    at_least = (accuracy[None, :] >= accuracy[:, None]) & (cost[None, :] <= cost[:, None])
    better = (accuracy[None, :] > accuracy[:, None]) | (cost[None, :] < cost[:, None])
    return np.logical_not((at_least & better).any(axis=1))


def value_order(axis: str, values: Iterable[Any]) -> list[str]:
    """The distinct values as strings: activations in ``ACTIVATIONS`` order, else numbers ascending, then the
    others in alphabetical order ("depthwise" after the segment counts, "False" before "True")."""
    labels = {str(v) for v in values}
    if axis == ACTIVATION:
        return sorted(
            labels,
            key=lambda v: (ACTIVATIONS.index(v) if v in ACTIVATIONS else len(ACTIVATIONS), v),
        )
    return sorted(labels, key=lambda v: (0, float(v), "") if _is_number(v) else (1, 0.0, v))


def activation_question(runs: pd.DataFrame) -> Question:
    """Intermediate activation none vs ReLU vs ELU (Xception paper, fig. 10: none was best)."""
    name, values = "activation", value_order(ACTIVATION, runs[ACTIVATION])
    if len(values) < 2:
        return Question(
            name, f"skipped: every design has intermediate_activation={values[0]}.", answered=False
        )
    effects = [
        e
        for a, b in itertools.combinations(values, 2)
        if (e := _effect(runs, _FINAL, ACTIVATION, b, a))
    ]
    if not effects:
        return Question(
            name,
            f"skipped: fewer than {MIN_PAIRS} design pairs differ only in intermediate_activation.",
            answered=False,
        )
    winner = max(
        values, key=lambda v: min((e.mean for e in _oriented(effects, v)), default=-math.inf)
    )
    won = _oriented(effects, winner)
    counts = _wins(runs, ACTIVATION, values)
    groups = counts[0][2] if counts else 0
    wins = {value: count for value, count, _ in counts}.get(winner, 0)
    standing = (
        "best"
        if all(e.clear and e.mean > 0 for e in won)
        else "ahead, not clearly (an interval includes 0)"
    )
    against = ", ".join(f"{e.text()} over {_NAMES.get(e.reference, e.reference)}" for e in won)
    over_none = [e for e in won if e.reference == "none"]
    paper = (
        "agrees"
        if winner == "none"
        else "differs"
        if over_none and over_none[0].clear and over_none[0].mean > 0
        else "none within noise of the best"
    )
    verdict = (
        f"{_NAMES.get(winner, winner)} {standing}: {against}; best in {wins} of {groups} matched groups "
        f"(paper fig. 10, none best: {paper})."
    )
    return Question(name, verdict, True, tuple(effects), counts, "best in matched groups")


def residual_question(runs: pd.DataFrame) -> Question:
    """Residual connections on vs off: final accuracy, and convergence speed from the curves (accuracy after
    epochs 1 and 2, mean accuracy over the curve) (Xception paper, fig. 9: residual converges faster)."""
    name, values = "residual", value_order(RESIDUAL, runs[RESIDUAL])
    if len(values) < 2:
        return Question(name, f"skipped: every design has residual={values[0]}.", answered=False)
    off, on = values[0], values[-1]  # "False", "True"
    epochs = _epoch_columns(runs)
    metrics = [
        _FINAL,
        *(c for c in epochs[:2] if c != epochs[-1]),
        *([_CURVE_MEAN] if len(epochs) > 1 else []),
    ]
    found = {m: e for m in metrics if (e := _effect(runs, m, RESIDUAL, on, off))}
    if _FINAL not in found:
        return Question(
            name,
            f"skipped: fewer than {MIN_PAIRS} design pairs differ only in residual.",
            answered=False,
        )
    speed = [e for m, e in found.items() if m != _FINAL]
    paper = (
        {True: "agrees", False: "differs", None: "not shown"}[_faster(speed)]
        if speed
        else "not compared"
    )
    verdict = (
        f"on vs off: {found[_FINAL].text()} final accuracy ({found[_FINAL].pairs} pairs); "
        f"{_convergence(speed)} (paper fig. 9, residual converges faster: {paper})."
    )
    return Question(name, verdict, True, tuple(found.values()))


def segments_question(runs: pd.DataFrame) -> Question:
    """Which segment count gives the best accuracy for its cost (Xception paper, section 5, open question):
    per count, accuracy, params and MACs against a reference count (depthwise, else the first) on paired
    designs, and how many of its designs lie on the accuracy-vs-MACs Pareto front."""
    name, values = "segments", value_order(SEGMENTS, runs[SEGMENTS])
    if len(values) < 2:
        return Question(name, f"skipped: every design has segments={values[0]}.", answered=False)
    reference = "depthwise" if "depthwise" in values else values[0]
    effects = [
        e
        for value in values
        if value != reference
        for metric, ratio in ((_FINAL, False), (_LOG_PARAMS, True), (_LOG_MACS, True))
        if (e := _effect(runs, metric, SEGMENTS, value, reference, ratio))
    ]
    designs = _designs(runs).dropna(subset=[TrialAttr.MACS])
    if designs.empty:
        return Question(name, "skipped: no design has its MACs recorded.", answered=False)
    on_front = pareto_mask(
        designs[_FINAL].to_numpy(), designs[TrialAttr.MACS].to_numpy(dtype=float)
    )
    counts = tuple(
        (v, int(on_front[designs[SEGMENTS] == v].sum()), int((designs[SEGMENTS] == v).sum()))
        for v in values
    )
    best, front, total = max(counts, key=lambda c: (c[1] / c[2], c[1]))
    others = ", ".join(f"{v}: {k}/{n}" for v, k, n in counts if v != best)
    verdict = (
        f"{best} gives the best accuracy for its cost: {front} of its {total} designs on the accuracy-vs-MACs "
        f"front (others {others}){_segment_costs(effects, best, reference)} (paper section 5: open question)."
    )
    return Question(
        name, verdict, True, tuple(effects), counts, "designs on the accuracy-vs-MACs front"
    )


def _segment_costs(effects: list[Effect], best: str, reference: str) -> str:
    """The verdict's clause on accuracy and MACs: ``best`` against the reference, or, when ``best`` is the
    reference, the most accurate other count against it."""
    accuracy = {e.value: e for e in effects if e.metric == _FINAL}
    macs = {e.value: e for e in effects if e.metric == _LOG_MACS}
    if best != reference:
        return (
            f"; vs {reference}: {accuracy[best].text()} accuracy at {macs[best].text()} the MACs"
            if best in accuracy and best in macs
            else ""
        )
    rival = max((v for v in accuracy if v in macs), key=lambda v: accuracy[v].mean, default=None)
    if rival is None:
        return ""
    versus = f"{accuracy[rival].text()} accuracy at {macs[rival].text()} the MACs"
    if accuracy[rival].clear and accuracy[rival].mean > 0:
        return f"; {rival} is clearly more accurate: {versus}"
    return f"; no other count is clearly more accurate (the closest, {rival}: {versus})"


def analysis_summary(analysis: Analysis, title: str = "design-space analysis") -> str:
    """The analysis as terminal text: size, EDF summaries per axis, the verdicts and their effects."""
    fewest, most = analysis.seeds_per_design
    per_design = f"{fewest}" if fewest == most else f"{fewest}-{most}"
    lines = [
        f"{title}: {analysis.designs} designs, {analysis.runs} runs (seeds {', '.join(map(str, analysis.seeds))}; "
        f"{per_design} per design)",
        "error = 1 - final validation accuracy, averaged over a design's seeds; per axis value: designs, median error, "
        "lowest error",
    ]
    lines += [f"  {axis}: one value ({value})" for axis, value in analysis.fixed_axes]
    for axis, group in itertools.groupby(analysis.axes, key=lambda a: a.axis):
        lines.append(
            f"  {axis}: "
            + "   ".join(
                f"{a.value} {a.designs}, {a.median_error:.3f}, {a.lowest_error:.3f}" for a in group
            )
        )
    for question in analysis.questions:
        lines.append(f"{question.name}: {question.verdict}")
        lines += [
            f"  {metric_label(e.metric)}: {e.value} vs {e.reference} {e.text()} ({e.pairs} pairs)"
            for e in question.effects
        ]
        if question.counts:
            lines.append(
                f"  {question.count_label}: "
                + ", ".join(f"{v} {k}/{n}" for v, k, n in question.counts)
            )
    lines.append(
        f"intervals: 95% percentile bootstrap, {DRAWS} draws over matched pairs (and seeds within designs), "
        f"rng seed {RNG_SEED}; comparisons with fewer than {MIN_PAIRS} pairs left out"
    )
    return "\n".join(lines)


def _check_columns(frame: pd.DataFrame, source: str) -> None:
    """ValueError naming ``source`` when the frame lacks an axis, ``params``, ``macs`` or every ``val_acc_<e>``."""
    missing = [c for c in (*AXIS_COLUMNS, TrialAttr.PARAMS, TrialAttr.MACS) if c not in frame]
    missing += [] if _epoch_columns(frame) else [f"{CURVE}<epoch>"]
    if missing:
        raise ValueError(
            f"{source}: lacks the column(s) {', '.join(missing)}; expected the bench-table format "
            "(benchmarks/xception_bench.csv)."
        )


def trained_rows(frame: pd.DataFrame) -> pd.Series:
    """Which rows of a bench-format frame count as trained designs: no failure reason, and an accuracy at the
    final epoch (a row whose curve stops short, e.g. a trial cut off mid-training, does not count). The bench
    replay, its noise estimate and `analyze` all choose rows by this rule."""
    epochs = _epoch_columns(frame)
    final = (
        pd.to_numeric(frame[epochs[-1]], errors="coerce")
        if epochs
        else pd.Series(float("nan"), index=frame.index)
    )
    reason = (
        frame["failure_reason"].astype("string").fillna("") if "failure_reason" in frame else ""
    )
    return (reason == "") & final.notna()


def _epoch_columns(frame: pd.DataFrame) -> list[str]:
    """The ``val_acc_<e>`` columns, by epoch."""
    found = [c for c in frame.columns if re.fullmatch(rf"{CURVE}\d+", str(c))]
    return sorted(found, key=lambda c: int(c[len(CURVE) :]))


def _runs(frame: pd.DataFrame) -> pd.DataFrame:
    """The `trained_rows`: the axes as strings, ``seed``, the curve, ``final`` (the final epoch's accuracy),
    ``curve_mean`` (NaN for a curve with gaps), and the logs of params and MACs."""
    _check_columns(frame, "the frame")
    epochs = _epoch_columns(frame)
    curve = frame[epochs].apply(pd.to_numeric, errors="coerce").astype(float)
    runs = pd.DataFrame({axis: frame[axis].map(str) for axis in AXIS_COLUMNS}, index=frame.index)
    runs[TrialAttr.SEED] = (
        frame[TrialAttr.SEED].fillna(0).astype(int) if TrialAttr.SEED in frame else 0
    )
    runs[epochs] = curve
    runs[_FINAL] = curve.iloc[:, -1]
    runs[_CURVE_MEAN] = curve.mean(axis=1, skipna=False)
    for column, log in ((TrialAttr.PARAMS, _LOG_PARAMS), (TrialAttr.MACS, _LOG_MACS)):
        runs[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
        runs[log] = np.log(runs[column].where(runs[column] > 0))
    return runs[trained_rows(frame)].reset_index(drop=True)


def _designs(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per design: the axes, ``final`` (the mean over its seeds), ``error``, ``seeds``, params, MACs."""
    grouped = runs.groupby(list(AXIS_COLUMNS), sort=False)
    designs = grouped[[_FINAL, TrialAttr.PARAMS, TrialAttr.MACS]].mean()
    designs["seeds"] = grouped.size()
    designs["error"] = 1 - designs[_FINAL]
    return designs.reset_index()


def _axis_values(designs: pd.DataFrame) -> tuple[AxisValue, ...]:
    """The error summaries of every value of every axis that takes 2+ values."""
    return tuple(
        AxisValue(axis, value, len(errors), float(errors.median()), float(errors.min()))
        for axis in AXIS_COLUMNS
        if designs[axis].nunique() > 1
        for value in value_order(axis, designs[axis])
        for errors in [designs.loc[designs[axis] == value, "error"]]
    )


def _effect(
    runs: pd.DataFrame, metric: str, axis: str, value: str, reference: str, ratio: bool = False
) -> Effect | None:
    """``value`` against ``reference`` on ``metric`` over the pairs of designs that differ only in ``axis``,
    or None with fewer than `MIN_PAIRS` pairs. A ratio metric is a log: its difference is turned into a ratio."""
    pairs = _pairs(_seed_values(runs, metric), AXIS_COLUMNS.index(axis), value, reference)
    if len(pairs) < MIN_PAIRS:
        return None
    mean, low, high = bootstrap(pairs)
    if ratio:
        mean, low, high = math.exp(mean), math.exp(low), math.exp(high)
    return Effect(metric, value, reference, len(pairs), mean, low, high, ratio)


def _seed_values(runs: pd.DataFrame, metric: str) -> dict[tuple[str, ...], np.ndarray]:
    """The recorded values of ``metric`` per design (its seeds), for the designs that have one."""
    known = runs[runs[metric].notna()]
    return {
        tuple(key): group[metric].to_numpy(dtype=float)
        for key, group in known.groupby(list(AXIS_COLUMNS), sort=False)
    }


def _pairs(
    values: dict[tuple[str, ...], np.ndarray], position: int, value: str, reference: str
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(the ``value`` design's values, the ``reference`` design's) for each two designs that differ
    only at ``position``."""
    pairs = []
    for key, theirs in values.items():
        twin = (*key[:position], value, *key[position + 1 :])
        if key[position] == reference and twin in values:
            pairs.append((values[twin], theirs))
    return pairs


def _padded(groups: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The groups as the rows of one array (padded with zeros), and their lengths."""
    lengths = np.array([len(group) for group in groups])
    values = np.zeros((len(groups), int(lengths.max())))
    for row, group in enumerate(groups):
        values[row, : len(group)] = group
    return values, lengths


def _resampled_means(
    padded: tuple[np.ndarray, np.ndarray], picks: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """For each drawn group (``picks``: draws x slots), the mean of its values resampled with replacement."""
    values, lengths = padded
    counts = lengths[picks]
    width = values.shape[1]
    index = (rng.random((*picks.shape, width)) * counts[..., None]).astype(int)
    drawn = values[picks[..., None], index]
    return np.where(np.arange(width) < counts[..., None], drawn, 0.0).sum(axis=-1) / counts


def _oriented(effects: Iterable[Effect], value: str) -> list[Effect]:
    """The effects that involve ``value``, each as ``value`` against the other value."""
    return [
        e if e.value == value else e.flipped() for e in effects if value in (e.value, e.reference)
    ]


def _wins(runs: pd.DataFrame, axis: str, values: list[str]) -> tuple[tuple[str, int, int], ...]:
    """Over the groups of designs identical but for ``axis`` that hold every value: how often each value is
    the most accurate (value, wins, groups)."""
    designs = _designs(runs)
    others = [a for a in AXIS_COLUMNS if a != axis]
    wins = dict.fromkeys(values, 0)
    groups = 0
    for _, group in designs.groupby(others, sort=False):
        if set(group[axis]) == set(values):
            groups += 1
            wins[str(group.loc[group[_FINAL].idxmax(), axis])] += 1
    return tuple((value, wins[value], groups) for value in values) if groups else ()


def _faster(speed: list[Effect]) -> bool | None:
    """True when a convergence effect is clearly positive and none clearly negative, False the other way, else None."""
    up, down = (
        any(e.clear and e.mean > 0 for e in speed),
        any(e.clear and e.mean < 0 for e in speed),
    )
    return True if up and not down else False if down and not up else None


def _convergence(speed: list[Effect]) -> str:
    """The verdict on convergence speed from the epoch-1, epoch-2 and curve-mean effects."""
    if not speed:
        return "convergence not compared (no curves, or too few pairs with them)"
    word = {
        True: "converges faster",
        False: "converges slower",
        None: "no clear difference in convergence",
    }[_faster(speed)]
    return f"{word}: " + ", ".join(f"{e.text()} {metric_label(e.metric)}" for e in speed)


def metric_label(metric: str) -> str:
    """How an effect's metric reads in the summary, the verdicts and the figures."""
    labels = {
        _FINAL: "final accuracy",
        _CURVE_MEAN: "mean accuracy over the curve",
        _LOG_PARAMS: "params",
        _LOG_MACS: "MACs",
    }
    return labels.get(metric, f"accuracy after epoch {metric[len(CURVE) :]}")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.lower() not in ("nan", "inf", "-inf")


def _curve(attrs: dict[str, Any]) -> list[float]:
    """The trial's validation-accuracy curve from epoch 1 (empty when it has none)."""
    curves = attrs.get(TrialAttr.CURVES) or {}
    curves = json.loads(curves) if isinstance(curves, str) else curves
    return (
        epoch_series(attrs, curves.get(TrialAttr.VAL_ACCURACY))
        if curves.get(TrialAttr.VAL_ACCURACY)
        else []
    )


def _final_only(attrs: dict[str, Any], longest: int) -> list[float]:
    """A curve that holds only the final ``val_accuracy``, at the trial's last epoch (``epochs``, else ``longest``),
    or an empty one without it."""
    final = attrs.get(TrialAttr.VAL_ACCURACY)
    return (
        []
        if final is None
        else [math.nan] * (int(attrs.get(TrialAttr.EPOCHS) or longest) - 1) + [float(final)]
    )


def _design_row(trial: optuna.trial.FrozenTrial, curve: list[float]) -> dict[str, Any]:
    """The `designs_frame` row of one trial."""
    attrs = trial.user_attrs
    design = {**XceptionConfig.paper().to_dict(), **json.loads(attrs[TrialAttr.CONFIG])}
    row: dict[str, Any] = {axis: design[axis] for axis in AXIS_COLUMNS}
    row.update({TrialAttr.SEED: int(attrs.get(TrialAttr.SEED) or 0), "trial": trial.number})
    row.update(
        {
            key: attrs.get(key, math.nan)
            for key in (
                TrialAttr.PARAMS,
                TrialAttr.MACS,
                TrialAttr.FLOPS,
                TrialAttr.LATENCY_MS,
                TrialAttr.TEST_ACCURACY,
            )
        }
    )
    row.update({f"{CURVE}{e}": value for e, value in enumerate(curve, start=1)})
    return row
