"""The Optuna callbacks that end a worker's run: repeats in a row, recycling, the study's budget and failure
streaks (on synthetic trials; `tests/run/test_faults.py` runs them in whole studies, in the slow tier)."""

from optuna.trial import TrialState, create_trial

from xsearch.run.optuna_callbacks import (
    FAILURE_STREAK_WARNING,
    FailureStreak,
    Recycler,
    RepeatStreak,
    stop_at_budget,
)
from xsearch.study.record import TrialAttr
from xsearch.study.retries import worker_identity

HOST = worker_identity()[TrialAttr.WORKER_HOST]


class FakeStudy:
    """What the callbacks use of a study: its trials, and `stop` (which Optuna allows only inside `optimize`)."""

    def __init__(self, trials=()):
        self.trials = list(trials)
        self.stops = 0

    def get_trials(self, deepcopy=True, states=None):
        return list(self.trials)

    def stop(self):
        self.stops += 1


def _trial(number, reason=None, host=HOST, state=None, **attrs):
    attrs = {
        TrialAttr.WORKER_HOST: host,
        **({TrialAttr.FAILURE_REASON: reason} if reason else {}),
        **attrs,
    }
    state = state or (
        TrialState.FAIL if reason not in (None, "constraint", "oom") else TrialState.COMPLETE
    )
    trial = create_trial(
        state=state, values=[0.5] if state == TrialState.COMPLETE else None, user_attrs=attrs
    )
    trial.number = number
    return trial


def test_repeat_streak_stops_after_limit_repeats_in_a_row():
    study, streak = FakeStudy(), RepeatStreak(limit=2)
    for trial in (_trial(0, repeat_of=9), _trial(1), _trial(2, repeat_of=9)):
        streak(study, trial)
    assert not streak.stopped
    assert study.stops == 0
    streak(study, _trial(3, repeat_of=9))
    assert streak.stopped
    assert study.stops == 1


def test_recycler_counts_trained_trials_only():
    study, recycler = FakeStudy(), Recycler(limit=2)
    for trial in (_trial(0), _trial(1, repeat_of=0)):
        recycler(study, trial)
    assert (recycler.ran, recycler.due, study.stops) == (1, False, 0)
    recycler(study, _trial(2))
    assert (recycler.ran, recycler.due, study.stops) == (2, True, 1)
    never = Recycler(limit=None)
    for number in range(5):
        never(study, _trial(number))
    assert not never.due
    assert study.stops == 1


def test_the_budget_counts_neither_repeats_nor_surplus_trials():
    trials = [_trial(0), _trial(1, repeat_of=0), _trial(2, surplus=True, state=TrialState.PRUNED)]
    study, callback = FakeStudy(trials), stop_at_budget(2, digest="now")
    callback(study, trials[-1])
    assert study.stops == 0
    # failed under another set-up: not counted
    study.trials.append(_trial(3, reason="error", setup_digest="before"))
    callback(study, study.trials[-1])
    assert study.stops == 0
    # a failure that was not retried counts
    study.trials.append(_trial(4, reason="error", setup_digest="now"))
    callback(study, study.trials[-1])
    assert study.stops == 1


def test_a_failure_streak_warns_at_three_and_stops_at_max_failures(capsys):
    study, streak = FakeStudy(), FailureStreak(max_failures=None)
    for number in range(FAILURE_STREAK_WARNING):
        streak(study, _trial(number, reason="nan", error="loss is NaN"))
    assert (
        "3 trials in a row failed with reason 'nan' (last: trial 2: loss is NaN)"
        in capsys.readouterr().err
    )
    streak(study, _trial(3, reason="constraint"))  # not a failure: the streak ends
    streak(study, _trial(4, repeat_of=0))  # ran nothing: the streak stays as it was
    assert (streak.count, streak.stopped, study.stops) == (0, False, 0)

    history = [
        _trial(0, reason="error"),
        _trial(1, reason="error"),
        _trial(2, reason="error", host="other-host"),
        _trial(3, reason="interrupted"),
    ]  # a restarted worker goes on with its own host's streak: 2
    streak = FailureStreak(max_failures=3, history=history)
    assert (streak.reason, streak.count) == ("error", 2)
    streak(study, _trial(5, reason="oom"))  # another reason starts a new streak
    assert (streak.reason, streak.count, streak.stopped) == ("oom", 1, False)
    for number in (6, 7):
        streak(study, _trial(number, reason="oom"))
    assert streak.stopped
    assert study.stops == 1
    assert streak.message.endswith("--max-failures 3 reached")
