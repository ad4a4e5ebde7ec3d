"""The successive-halving rule's pure parts: rung epochs, Pareto ranking with crowding, promotion, rung points."""

import numpy as np
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from xsearch.study.asha import (
    continuable,
    crowding_distance,
    next_promotion,
    pareto_rank,
    promoted,
    rung_points,
    rungs,
)
from xsearch.study.record import TrialAttr
from xsearch.study.spec import AshaSpec


def test_rungs_are_geometric_and_below_the_last_epoch():
    assert rungs(6, 1, 3) == [1, 3]
    assert rungs(6, 2, 2) == [2, 4]
    assert rungs(9, 1, 3) == [1, 3]
    assert rungs(2, 1, 3) == [1]


def test_pareto_rank_sorts_fronts_and_crowding_favours_the_extremes():
    losses = np.array([[0, 3], [1, 1], [3, 0], [2, 2], [4, 4], [1.5, 1.5]])
    rank = pareto_rank(losses)
    assert rank[:, 0].tolist() == [0, 0, 0, 2, 3, 1]
    assert np.isinf(rank[0, 1])
    assert np.isinf(rank[2, 1])
    assert np.isfinite(rank[1, 1])
    assert crowding_distance(np.array([[0.0, 1.0], [1.0, 0.0]])).tolist() == [np.inf, np.inf]


def test_a_trial_is_promoted_when_it_ranks_in_the_top_fraction():
    others = [
        [0.9, 10.0],
        [0.8, 20.0],
        [0.7, 30.0],
        [0.6, 40.0],
        [0.5, 50.0],
    ]  # a chain: each dominates the next
    assert promoted([0.95, 5.0], others, reduction_factor=3)  # dominates them all
    assert not promoted([0.55, 45.0], others, reduction_factor=3)  # 4 of 6 rank before it, keep 2
    assert promoted([0.85, 15.0], others, reduction_factor=3)  # one ahead, keep 2
    # worst accuracy, cheapest: on the first front, an extreme
    assert promoted([0.1, 1.0], others, reduction_factor=3)
    assert promoted([0.5, 50.0], [], reduction_factor=3)  # alone at the rung


def test_rung_points_take_other_trials_of_the_set_up_that_reached_the_rung():
    def trial(number, rung_accuracy, digest="a", repeat=False):
        attrs = {
            TrialAttr.SETUP_DIGEST: digest,
            TrialAttr.PARAMS: 100 + number,
            TrialAttr.RUNG_ACCURACY: rung_accuracy,
        }
        if repeat:
            attrs[TrialAttr.REPEAT_OF] = 0
        made = create_trial(
            params={"x": 0.0},
            distributions={"x": FloatDistribution(0, 1)},
            state=TrialState.RUNNING,
            user_attrs=attrs,
        )
        made.number = number
        return made

    trials = [
        trial(0, {"1": 0.5}),
        trial(1, {"1": 0.6, "3": 0.7}),
        trial(2, {"1": 0.4}, digest="b"),
        trial(3, {"1": 0.9}, repeat=True),
        trial(4, {}),
        trial(5, {"1": 0.3}),
    ]
    assert rung_points(trials, 1, [TrialAttr.PARAMS], "a", exclude=5) == [
        [0.5, 100.0],
        [0.6, 101.0],
    ]
    assert rung_points(trials, 3, [TrialAttr.PARAMS], "a", exclude=5) == [[0.7, 101.0]]


def _finished(
    number, x, rung_accuracy, params, stopped_at=None, state=TrialState.COMPLETE, **attrs
):
    """A trial of design ``x`` with its accuracy at each rung; stopped by the asha rule at ``stopped_at``."""
    attrs = {
        TrialAttr.SETUP_DIGEST: "a",
        TrialAttr.PARAMS: params,
        TrialAttr.RUNG_ACCURACY: rung_accuracy,
        **attrs,
    }
    if stopped_at is not None:
        attrs.update({TrialAttr.STOPPED_AT_EPOCH: stopped_at, TrialAttr.STOP_RULE: "asha"})
    made = create_trial(
        params={"x": x},
        distributions={"x": FloatDistribution(0, 1)},
        state=state,
        values=[0.5, params] if state == TrialState.COMPLETE else None,
        user_attrs=attrs,
    )
    made.number = number
    return made


def test_the_stopped_trial_promoted_first_ranks_best_at_its_rung_then_stopped_highest():
    trials = [
        _finished(0, 0.0, {"1": 0.9, "2": 0.95}, 100),  # trained fully
        _finished(1, 0.1, {"1": 0.5}, 200, stopped_at=1),  # dominated by 0 at rung 1: second front
        _finished(2, 0.2, {"1": 0.7}, 50, stopped_at=1),  # cheaper than 0: first front at rung 1
        # cheapest at rung 2: first front there
        _finished(3, 0.3, {"1": 0.8, "2": 0.6}, 40, stopped_at=2),
    ]
    # first front, the higher rung
    assert next_promotion(trials, [TrialAttr.PARAMS], "a").number == 3
    continuing = _finished(4, 0.3, {}, 40, state=TrialState.RUNNING, **{TrialAttr.CONTINUES: 3})
    assert next_promotion([*trials, continuing], [TrialAttr.PARAMS], "a").number == 2
    queued = create_trial(
        params={"x": 0.2}, distributions={"x": FloatDistribution(0, 1)}, state=TrialState.WAITING
    )
    queued.number = 5
    assert next_promotion([*trials, continuing, queued], [TrialAttr.PARAMS], "a").number == 1
    # its retry may continue 3
    failed = _finished(4, 0.3, {}, 40, state=TrialState.FAIL, **{TrialAttr.CONTINUES: 3})
    assert next_promotion([*trials, failed], [TrialAttr.PARAMS], "a").number == 3
    assert next_promotion(trials, [TrialAttr.PARAMS], "other set-up") is None


def test_a_stopped_trial_is_continued_once_and_only_under_the_rule_that_continues():
    stopped = _finished(1, 0.1, {"1": 0.5}, 200, stopped_at=1)
    rule = AshaSpec()  # continues stopped trials by default
    assert continuable(stopped, [stopped], rule)
    assert not continuable(stopped, [stopped], AshaSpec(continue_stopped=False))
    assert not continuable(stopped, [stopped], None)
    by_dominance = _finished(
        1, 0.1, {}, 200, **{TrialAttr.STOPPED_AT_EPOCH: 1, TrialAttr.STOP_RULE: "dominated"}
    )
    assert not continuable(by_dominance, [by_dominance], rule)
    running = _finished(2, 0.1, {}, 200, state=TrialState.RUNNING, **{TrialAttr.CONTINUES: 1})
    assert not continuable(stopped, [stopped, running], rule)
    died = _finished(2, 0.1, {}, 200, state=TrialState.FAIL, **{TrialAttr.CONTINUES: 1})
    assert continuable(stopped, [stopped, died], rule)
