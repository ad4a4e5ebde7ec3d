"""A study's progress, read from its storage: one process shows it for all the workers of a run.

On a terminal a `rich` display stays below the output: trials done of N with an ETA, an epoch bar
for each running trial with its loss and accuracy (the ``epoch_logs`` a trial records after every
epoch), the best validation accuracy, the front size, and the counts of repeated designs (not
retrained, `is_repeat`) and of trials stopped early (`is_stopped`). Each finished trial gets one
plain line above it; when stdout is not a terminal those lines are all that is printed. Trials
count as `budget_trials` counts them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import keras
import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table

from xsearch.results.pareto import pareto_front
from xsearch.study.early_stop import stop_rule
from xsearch.study.record import (
    TrialAttr,
    failure_reason,
    is_feasible,
    is_repeat,
    is_stopped,
    repeat_of,
)
from xsearch.study.retries import budget_trials

POLL_S = 1.5  # `Progress.poll` reads the storage at most this often
BAR_WIDTH = 30


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """What the display shows, as read from the storage at ``time`` (`Progress` clock seconds)."""

    time: float
    done: int  # finished trials that count toward the budget
    work: float  # ``done`` plus the share of their epochs that running trials finished
    running: tuple[tuple[int, dict[str, Any]], ...]  # (number, epoch_logs) of each running trial
    best: float | None  # best validation accuracy of a feasible trial
    front: int
    repeats: int
    stopped: int
    stop_rules: list[str]  # the rules that stopped them: dominated, asha


class Progress:
    """Shows a study's progress while it runs: `refresh` reads the storage and redraws.

    ``enabled``: None (default) draws the live display on a terminal and prints one line per
    finished trial otherwise; True always draws it; False shows nothing.
    """

    def __init__(
        self,
        study: optuna.Study,
        total_trials: int,
        epochs: int,
        enabled: bool | None = None,
        console: Console | None = None,
        clock: Callable[[], float] = time.monotonic,
        digest: str | None = None,
    ) -> None:
        self.study, self.digest = study, digest
        self.total = total_trials
        self.epochs = epochs
        self.console = console or Console()
        self.enabled = enabled is not False
        self.live = self.console.is_terminal if enabled is None else enabled
        self.clock = clock
        self.snapshot: Snapshot | None = None
        self._first: Snapshot | None = None  # the ETA's starting point
        self._printed: set[int] | None = (
            None  # finished trials that have their line (None: none read yet)
        )
        self._front: tuple[int, int] = (-1, 0)  # (finished trials, front size) when last counted
        self._polled = -math.inf
        self._ended = False  # the run is over: no ETA
        self._live: Live | None = None

    def __enter__(self) -> Progress:
        self.refresh()  # trials that finished before this run get no line
        if self.live:
            self._live = Live(
                console=self.console, get_renderable=self.render, refresh_per_second=2
            )
            self._live.start()
        return self

    def __exit__(self, error: type[BaseException] | None, *exc: object) -> None:
        self._ended = True
        try:
            if error is None:
                self.refresh()  # the last trials' lines and the final state
        finally:
            if self._live is not None:
                self._live.stop()

    def refresh(self) -> None:
        """Read the storage: print the lines of newly finished trials and update the display."""
        if not self.enabled:
            return
        trials = self.study.get_trials(deepcopy=False)
        finished = [
            t for t in trials if t.state.is_finished() and not t.user_attrs.get(TrialAttr.SURPLUS)
        ]
        if self._printed is not None:
            for trial in finished:
                if trial.number not in self._printed:
                    self.console.print(
                        trial_line(trial), markup=False, highlight=False, soft_wrap=True
                    )
        self._printed = {t.number for t in finished}
        self.snapshot = self._read(trials, len(finished))
        self._first = self._first or self.snapshot
        if self._live is not None:
            self._live.refresh()

    def poll(self) -> None:
        """`refresh`, at most every ``POLL_S`` seconds (the supervisor calls this in its loop).

        A storage that fails to answer is read again at the next poll: the display must not stop
        the run (the workers, which write to it, report a storage that is down).
        """
        if self.clock() - self._polled >= POLL_S:
            self._polled = self.clock()
            with contextlib.suppress(Exception):
                self.refresh()

    def trial_started(self, trial: optuna.Trial) -> list[keras.callbacks.Callback]:
        """Callbacks for the trial's `fit` (run in this process): refresh after each epoch."""
        self.refresh()
        return [_RefreshEachEpoch(self)] if self.enabled else []

    def trial_finished(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Optuna callback: refresh after each trial."""
        self.refresh()

    def eta(self) -> float | None:
        """Seconds until the study has its trials, at this run's pace so far (None: no pace yet)."""
        first, now = self._first, self.snapshot
        if first is None or now is None or now.work <= first.work:
            return None
        pace = (now.time - first.time) / (now.work - first.work)
        return max(0.0, pace * (self.total - now.work) - (self.clock() - now.time))

    def render(self) -> RenderableType:
        """The live display (see the module docstring)."""
        s = self.snapshot
        if s is None:
            return ""
        table = Table.grid(padding=(0, 1))
        table.add_column(min_width=len("trial 10"))
        eta = "" if s.done >= self.total or self._ended else f"  ETA {_clock(self.eta())}"
        table.add_row(
            "trials",
            ProgressBar(total=self.total, completed=min(s.work, self.total), width=BAR_WIDTH),
            f"{s.done}/{self.total}{eta}",
        )
        for number, logs in s.running:
            epoch = int(logs.get("epoch", 0))
            text = f"epoch {epoch}/{self.epochs}" if logs else "starting"
            if "loss" in logs:
                text += f"  loss {logs['loss']:.4f}"
            if "accuracy" in logs:
                text += f"  acc {logs['accuracy']:.3f}"
            table.add_row(
                f"trial {number}",
                ProgressBar(total=self.epochs, completed=epoch, width=BAR_WIDTH),
                text,
            )
        parts = [f"best val acc {'-' if s.best is None else f'{s.best:.4f}'}", f"front {s.front}"]
        if s.repeats:
            parts.append(f"{s.repeats} repeated designs not retrained")
        if s.stopped:
            parts.append(f"{s.stopped} stopped early ({', '.join(s.stop_rules)})")
        return Group(table, "  ".join(parts))

    def _read(self, trials: list[FrozenTrial], finished: int) -> Snapshot:
        done = sum(t.state.is_finished() for t in budget_trials(trials, self.digest))
        running = tuple(
            (t.number, dict(t.user_attrs.get(TrialAttr.EPOCH_LOGS, {})))
            for t in trials
            if t.state == TrialState.RUNNING and not t.user_attrs.get(TrialAttr.SURPLUS)
        )
        accuracies = [
            t.user_attrs[TrialAttr.VAL_ACCURACY]
            for t in trials
            if is_feasible(t) and TrialAttr.VAL_ACCURACY in t.user_attrs
        ]
        if self._front[0] != finished:
            self._front = (finished, len(pareto_front(self.study)) if accuracies else 0)
        work = done + sum(min(logs.get("epoch", 0) / self.epochs, 1.0) for _, logs in running)
        return Snapshot(
            time=self.clock(),
            done=done,
            work=work,
            running=running,
            best=max(accuracies, default=None),
            front=self._front[1],
            repeats=sum(map(is_repeat, trials)),
            stopped=sum(is_stopped(t) and not is_repeat(t) for t in trials),
            stop_rules=sorted({stop_rule(t) for t in trials if is_stopped(t) and not is_repeat(t)}),
        )


def trial_line(trial: FrozenTrial) -> str:
    """One plain line for a finished trial: number, state (and why), val accuracy, params, duration."""
    attrs = trial.user_attrs
    notes = [
        note
        for note in (
            failure_reason(trial),
            None if repeat_of(trial) is None else f"repeat of {repeat_of(trial)}",
            None if TrialAttr.CONTINUES not in attrs else f"continues {attrs[TrialAttr.CONTINUES]}",
            None
            if not is_stopped(trial)
            else f"stopped at epoch {attrs[TrialAttr.STOPPED_AT_EPOCH]}",
        )
        if note
    ]
    parts = [
        f"trial {trial.number}",
        trial.state.name + (f" ({', '.join(notes)})" if notes else ""),
    ]
    if TrialAttr.VAL_ACCURACY in attrs:
        parts.append(f"val acc {attrs[TrialAttr.VAL_ACCURACY]:.4f}")
    if TrialAttr.PARAMS in attrs:
        parts.append(f"params {_count(attrs[TrialAttr.PARAMS])}")
    if trial.duration is not None:
        seconds = trial.duration.total_seconds()
        parts.append(f"{seconds:.1f} s" if seconds < 60 else _clock(seconds))
    return "  ".join(parts)


def _count(number: float) -> str:
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if number >= size:
            return f"{number / size:.2f}{suffix}"
    return f"{number:.0f}"


def _clock(seconds: float | None) -> str:
    """``m:ss`` or ``h:mm:ss``; ``-`` for an unknown time."""
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class _RefreshEachEpoch(keras.callbacks.Callback):
    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self.progress = progress

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.progress.refresh()
