"""Clustering and routing on a toy table where the right answer is known."""

import numpy as np
import pytest

from avengers_core.errors import InputError
from avengers_core.routing.cluster import kmeans
from avengers_core.routing.routers.avengers import AvengersRouter, softmax_neg_distance
from avengers_core.routing.routers.base import RouterConfig


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
    assert f"Nearest cluster {res.cluster}" in res.reason()
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


def test_reason_reads_well_without_scores_and_for_one_question(toy):
    table, x = toy
    r = AvengersRouter.fit(table, x, RouterConfig(k=4, prior="global", shrinkage=5.0))
    res = r.route_vector(x[0])
    c = res.explanation.clusters[0]
    c.n, c.tasks, c.raw[res.models[0]] = 1, {}, None  # as a one-query cluster reads
    text = res.reason()
    assert "1 question," in text and "mixed tasks" in text
    assert f"{res.models[0]} has no scores there, so its effective score there is the prior" \
        in text


# --- K-means at scale (issue 13): torch on a GPU, MiniBatchKMeans past 200k on CPU ------


def _blobs(n: int, k: int, d: int = 24, noise: float = 0.15, seed: int = 0):
    from avengers_core.embed.base import normalise

    rng = np.random.default_rng(seed)
    centres = normalise(rng.standard_normal((k, d)))
    truth = rng.integers(0, k, n)
    x = normalise(centres[truth] + noise * rng.standard_normal((n, d)).astype(np.float32))
    return x, truth


def _inertia(x, labels, k):
    cen = np.stack([x[labels == j].mean(axis=0) for j in range(k)])
    return float(((x - cen[labels]) ** 2).sum())


def test_torch_kmeans_on_cpu_is_seeded_and_agrees_with_scikit_learn():
    from sklearn.metrics import adjusted_rand_score

    from avengers_core.routing.cluster import torch_kmeans

    x, truth = _blobs(4000, 8)
    a, b = torch_kmeans(x, 8, seed=3, device="cpu"), torch_kmeans(x, 8, seed=3, device="cpu")
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    np.testing.assert_allclose(np.linalg.norm(a.centroids, axis=1), 1.0, rtol=1e-5)
    ref = kmeans(x, 8, seed=3)  # scikit-learn KMeans
    assert adjusted_rand_score(a.labels, ref.labels) > 0.95
    assert adjusted_rand_score(a.labels, truth) > 0.95
    # overlapping clusters: the objective within 2% of scikit-learn's
    y, _ = _blobs(3000, 16, noise=0.6, seed=1)
    mine, theirs = torch_kmeans(y, 16, seed=0, device="cpu"), kmeans(y, 16, seed=0)
    assert _inertia(y, mine.labels, 16) <= 1.02 * _inertia(y, theirs.labels, 16)


def test_torch_kmeans_refills_an_empty_cluster():
    from avengers_core.embed.base import normalise
    from avengers_core.routing.cluster import torch_kmeans

    points = normalise(np.random.default_rng(0).standard_normal((6, 8)))
    x = np.repeat(points, 50, axis=0)  # six distinct points, K = 6
    c = torch_kmeans(x, 6, seed=0, device="cpu")
    assert sorted(c.sizes().tolist()) == [50] * 6


def test_method_by_size_and_device(monkeypatch):
    import torch

    from avengers_core.routing import cluster

    monkeypatch.delenv("AVENGERS_DEVICE", raising=False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert cluster.method_for(cluster.GPU_MIN) == ("torch", "cuda")
    assert cluster.method_for(cluster.GPU_MIN - 1) == ("lloyd", "cpu")
    assert cluster.method_for(1_000_000, device="cpu") == ("minibatch", "cpu")
    monkeypatch.setenv("AVENGERS_DEVICE", "cpu")
    assert cluster.method_for(cluster.GPU_MIN) == ("lloyd", "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("AVENGERS_DEVICE")
    assert cluster.method_for(cluster.MINIBATCH_MIN) == ("lloyd", "cpu")
    assert cluster.method_for(cluster.MINIBATCH_MIN + 1) == ("minibatch", "cpu")


def test_minibatch_path_is_seeded_and_finds_the_clusters(monkeypatch):
    from sklearn.metrics import adjusted_rand_score

    from avengers_core.routing import cluster

    monkeypatch.setenv("AVENGERS_DEVICE", "cpu")
    monkeypatch.setattr(cluster, "MINIBATCH_MIN", 1000)
    monkeypatch.setattr(cluster, "MINIBATCH_SIZE", 256)
    x, truth = _blobs(5000, 8, seed=2)
    assert cluster.method_for(len(x)) == ("minibatch", "cpu")
    a, b = kmeans(x, 8, seed=5), kmeans(x, 8, seed=5)
    np.testing.assert_array_equal(a.labels, b.labels)
    # over seeds, the objective within 3% of scikit-learn's KMeans (a seed may merge blobs)
    mini = [kmeans(x, 8, seed=s).labels for s in range(4)]
    monkeypatch.setattr(cluster, "MINIBATCH_MIN", 10**9)
    full = [kmeans(x, 8, seed=s).labels for s in range(4)]
    assert (np.mean([_inertia(x, m, 8) for m in mini])
            <= 1.03 * np.mean([_inertia(x, f, 8) for f in full]))
    assert max(adjusted_rand_score(m, truth) for m in mini) > 0.95


def test_unit_vectors_are_clustered_in_place():
    from avengers_core.routing.cluster import unit_rows

    x, _ = _blobs(100, 3)
    assert unit_rows(x) is x  # no second copy of a large table
    y = unit_rows(3 * x)
    assert y is not x and np.allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)
    assert unit_rows(x.astype(np.float64)).dtype == np.float32


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")
def test_gpu_kmeans_repeats_and_matches_the_cpu():
    from sklearn.metrics import adjusted_rand_score

    from avengers_core.routing import cluster

    x, truth = _blobs(cluster.GPU_MIN, 32, d=64, noise=0.2)
    assert cluster.method_for(len(x), "cuda") == ("torch", "cuda")
    a, b = kmeans(x, 32, seed=0, device="cuda"), kmeans(x, 32, seed=0, device="cuda")
    np.testing.assert_array_equal(a.labels, b.labels)  # one-hot sums: bit for bit
    ref = cluster.torch_kmeans(x, 32, seed=0, device="cpu")
    assert adjusted_rand_score(a.labels, ref.labels) > 0.9
    assert _inertia(x, a.labels, 32) <= 1.02 * _inertia(x, kmeans(x, 32, 0, device="cpu")
                                                        .labels, 32)
