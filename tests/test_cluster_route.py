"""Clustering and routing on a toy table where the right answer is known."""

import numpy as np
import pytest

from avengers_core.cluster import kmeans
from avengers_core.errors import InputError
from avengers_core.route import AvengersRouter, RouterConfig, softmax_neg_distance


def test_kmeans_seeded_and_normalised(toy):
    _, x = toy
    a, b = kmeans(x, 4, seed=1), kmeans(x, 4, seed=1)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_allclose(np.linalg.norm(a.centroids, axis=1), 1.0, rtol=1e-5)
    assert a.sizes().sum() == len(x)
    with pytest.raises(InputError, match="K = 500"):
        kmeans(x, 500)


def test_softmax_prefers_closer_cluster():
    p = softmax_neg_distance(np.array([[0.9, 0.5, 0.1]]), beta=6.0)
    assert p.sum() == pytest.approx(1.0)
    assert p[0, 0] > p[0, 1] > p[0, 2]
    flat = softmax_neg_distance(np.array([[0.9, 0.5]]), beta=0.0)
    np.testing.assert_allclose(flat, [[0.5, 0.5]])


def test_router_routes_each_topic_to_its_model(toy):
    table, x = toy
    r = AvengersRouter.fit(table, x, RouterConfig(k=4, top_k=1))
    topic = np.array([t == "topic1" for t in table.tasks])
    pick = r.predict(x).argmax(axis=1)
    assert (pick[~topic] == 0).mean() > 0.9  # A for topic 0
    assert (pick[topic] == 1).mean() > 0.9  # B for topic 1


def test_route_result_explains(toy):
    table, x = toy
    r = AvengersRouter.fit(table, x, RouterConfig(k=4, top_k=2, top_n=2))
    res = r.route_vector(x[0])
    assert len(res.clusters) == 2
    assert sum(c["p"] for c in res.clusters) == pytest.approx(1.0)
    assert res.models == res.ranking[:2]
    assert set(res.scores) == {"A", "B"}
    assert res.task in ("topic0", "topic1")
    assert f"Cluster {res.cluster}" in res.reason()
    assert res.details[0]["size"] > 0
    with pytest.raises(InputError, match="dimension"):
        r.route_vector(np.zeros(3))


def test_paper_rank_fusion_matches_nearest_cluster_top_model(toy):
    table, x = toy
    r = AvengersRouter.fit(table, x, RouterConfig.paper(k=4))
    assert r.config.shrinkage == 0.0 and r.config.top_k == 1
    nearest = (x @ r.centroids.T).argmax(axis=1)
    best = np.nan_to_num(r.profile.mean, nan=-1).argmax(axis=1)
    np.testing.assert_array_equal(r.predict(x).argmax(axis=1), best[nearest])


def test_auto_shrinkage_picked_from_grid_and_settable(toy):
    table, x = toy
    auto = AvengersRouter.fit(table, x, RouterConfig(k=4))
    assert auto.config.shrinkage in (0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
    fixed = AvengersRouter.fit(table, x, RouterConfig(k=4, shrinkage=7.0))
    assert fixed.config.shrinkage == 7.0 and fixed.profile.shrinkage == 7.0


def test_cost_aware_routing_prefers_cheap_model(toy):
    table, x = toy
    r = AvengersRouter.fit(table, x, RouterConfig(k=4, alpha=0.0))
    assert (r.predict(x).argmax(axis=1) == 1).all()  # B costs 0.1, A costs 1.0


def test_model_selection_restricts_choices(toy):
    table, x = toy
    r = AvengersRouter.fit(table, x, RouterConfig(k=4, n_models=1))
    assert len(set(r.predict(x).argmax(axis=1))) == 1
    assert len(r.route_vector(x[0]).ranking) == 1


def test_with_config_keeps_profile(toy):
    table, x = toy
    r = AvengersRouter.fit(table, x, RouterConfig(k=4))
    r2 = r.with_config(top_n=2, beta=2.0)
    assert r2.config.top_n == 2 and r2.profile.sums is r.profile.sums
    with pytest.raises(InputError, match="refit"):
        r.with_config(k=8)
    with pytest.raises(InputError, match="alpha"):
        r.with_config(alpha=2.0)


def test_cluster_order_and_best_models(toy):
    table, x = toy
    r = AvengersRouter.fit(table, x, RouterConfig(k=4))
    best = r.best_models()
    assert len(best) == 4 and set(best) == {"A", "B"}
    by_size = r.cluster_order("size")
    assert sorted(by_size) == [0, 1, 2, 3]
    sizes = r.profile.size[by_size]
    assert list(sizes) == sorted(sizes, reverse=True)
    by_model = r.cluster_order("best model")
    assert [best[c] for c in by_model] == sorted(best, key=r.models.index)


def test_reason_reads_well_without_scores_and_for_one_question():
    from avengers_core.route import RouteResult

    stats = {"A": {"mean": None, "count": 0, "score": 0.5}}
    res = RouteResult(cluster=3, clusters=[{"id": 3, "p": 1.0, "similarity": 0.9}],
                      scores={"A": 0.5}, models=["A"], ranking=["A"], task=None,
                      details=[{"id": 3, "size": 1, "task": None, "tasks": {}, "models": stats}])
    text = res.reason()
    assert "1 question," in text and "mixed tasks" in text
    assert "A has no scores in this cluster" in text
