"""The successive-halving rule's pure parts: rung epochs, Pareto ranking with crowding, promotion, rung points."""

import numpy as np
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from xsearch.study.asha import crowding_distance, pareto_rank, promoted, rung_points, rungs
from xsearch.study.record import TrialAttr


def test_rungs_are_geometric_and_below_the_last_epoch():
    assert rungs(6, 1, 3) == [1, 3]
    assert rungs(6, 2, 2) == [2, 4]
    assert rungs(9, 1, 3) == [1, 3]
    assert rungs(2, 1, 3) == [1]


def test_pareto_rank_sorts_fronts_and_crowding_favours_the_extremes():
    losses = np.array([[0, 3], [1, 1], [3, 0], [2, 2], [4, 4], [1.5, 1.5]])
    rank = pareto_rank(losses)
    assert rank[:, 0].tolist() == [0, 0, 0, 2, 3, 1]
    assert np.isinf(rank[0, 1]) and np.isinf(rank[2, 1]) and np.isfinite(rank[1, 1])
    assert crowding_distance(np.array([[0.0, 1.0], [1.0, 0.0]])).tolist() == [np.inf, np.inf]


def test_a_trial_is_promoted_when_it_ranks_in_the_top_fraction():
    others = [[0.9, 10.0], [0.8, 20.0], [0.7, 30.0], [0.6, 40.0], [0.5, 50.0]]  # a chain: each dominates the next
    assert promoted([0.95, 5.0], others, reduction_factor=3)  # dominates them all
    assert not promoted([0.55, 45.0], others, reduction_factor=3)  # 4 of 6 rank before it, keep 2
    assert promoted([0.85, 15.0], others, reduction_factor=3)  # one ahead, keep 2
    assert promoted([0.1, 1.0], others, reduction_factor=3)  # worst accuracy, cheapest: on the first front, an extreme
    assert promoted([0.5, 50.0], [], reduction_factor=3)  # alone at the rung


def test_rung_points_take_other_trials_of_the_set_up_that_reached_the_rung():
    def trial(number, rung_accuracy, digest="a", repeat=False):
        attrs = {TrialAttr.SETUP_DIGEST: digest, TrialAttr.PARAMS: 100 + number, TrialAttr.RUNG_ACCURACY: rung_accuracy}
        if repeat:
            attrs[TrialAttr.REPEAT_OF] = 0
        made = create_trial(params={"x": 0.0}, distributions={"x": FloatDistribution(0, 1)}, state=TrialState.RUNNING,
                            user_attrs=attrs)
        made.number = number
        return made

    trials = [trial(0, {"1": 0.5}), trial(1, {"1": 0.6, "3": 0.7}), trial(2, {"1": 0.4}, digest="b"),
              trial(3, {"1": 0.9}, repeat=True), trial(4, {}), trial(5, {"1": 0.3})]
    assert rung_points(trials, 1, [TrialAttr.PARAMS], "a", exclude=5) == [[0.5, 100.0], [0.6, 101.0]]
    assert rung_points(trials, 3, [TrialAttr.PARAMS], "a", exclude=5) == [[0.7, 101.0]]
