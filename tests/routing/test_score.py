"""Scoring: the capability profile, shrinkage, rankings, cost-aware scores, selection."""

import numpy as np
import pytest

from avengers_core.routing.score import CapabilityProfile, cost_aware, ranks, select_models


def profile(shrinkage=0.0):
    labels = np.array([0, 0, 0, 1, 1])
    scores = np.array([[1, 0], [1, np.nan], [0, 1], [0, 1], [1, 1]], dtype=float)
    return CapabilityProfile.build(labels, scores, 2, ["A", "B"], shrinkage=shrinkage)


def test_means_counts_ignore_missing():
    p = profile()
    np.testing.assert_array_equal(p.count, [[3, 2], [2, 2]])
    np.testing.assert_allclose(p.mean, [[2 / 3, 0.5], [0.5, 1.0]])
    np.testing.assert_allclose(p.global_mean, [3 / 5, 3 / 4])
    assert p.size.tolist() == [3, 2]


def test_shrinkage_pulls_toward_global_mean():
    p = profile()
    raw, shrunk = p.scores(0.0), p.scores(1000.0)
    np.testing.assert_allclose(shrunk, np.tile(p.global_mean, (2, 1)), atol=0.01)
    mid = p.scores(2.0)
    assert raw[1, 1] > mid[1, 1] > p.global_mean[1]


def test_ranking_and_ranks():
    p = profile()
    assert p.ranking(0) == [0, 1]
    assert p.ranking(1) == [1, 0]
    r = ranks(np.array([[0.1, np.nan, 0.5]]))
    assert r.tolist() == [[1, 2, 0]]


def test_cost_aware_alpha_extremes():
    perf = np.array([[0.9, 0.5]])
    cost = np.array([[10.0, 1.0]])
    assert cost_aware(perf, cost, 1.0).argmax() == 0
    assert cost_aware(perf, cost, 0.0).argmax() == 1
    with pytest.raises(ValueError):
        cost_aware(perf, cost, 1.5)


def test_select_models_by_first_places():
    labels = np.arange(4)
    scores = np.array([[1, 0, 0.5], [1, 0, 0.5], [0, 1, 0.5], [0.2, 0.1, 0.9]])
    p = CapabilityProfile.build(labels, scores, 4, ["A", "B", "C"])
    assert select_models(p, 1) == ["A"]  # first in 2 clusters
    assert select_models(p, 3)[0] == "A"
    assert set(select_models(p, 3)) == {"A", "B", "C"}
