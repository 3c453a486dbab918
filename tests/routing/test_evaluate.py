"""Evaluation on the toy table: split inside tasks, every method, sweeps."""

import numpy as np
import pytest

from avengers_core.errors import InputError
from avengers_core.routing.evaluate import (
    METHODS,
    evaluate,
    fit_split,
    halves,
    oracle_scores,
    paper_of,
    simulate_votes,
    split,
    sweep_alpha,
    sweep_fusion,
    sweep_k,
    sweep_models,
    sweep_shrinkage,
    vote_accuracy,
)
from avengers_core.routing.routers.avengers import AvengersRouter
from avengers_core.routing.routers.base import RouterConfig
from avengers_core.routing.shrinkage import SHRINKAGE_GRID


def test_split_inside_each_task_disjoint_and_seeded(toy):
    table, _ = toy
    tr, te = split(table, 0.3, seed=0)
    assert set(tr).isdisjoint(te) and len(tr) + len(te) == len(table)
    tasks = np.array(table.tasks)
    for t in ("topic0", "topic1"):
        share = (tasks[te] == t).sum() / (tasks == t).sum()
        assert share == pytest.approx(0.3, abs=0.02)
    np.testing.assert_array_equal(split(table, 0.3, 0)[1], te)
    assert not np.array_equal(split(table, 0.3, 1)[1], te)
    with pytest.raises(InputError):
        split(table, 1.5)


def test_evaluate_orders_methods_sensibly(toy):
    table, x = toy
    res = evaluate(table, x, RouterConfig(k=4))
    assert set(METHODS) <= set(res)
    assert res["oracle"] >= max(res[m] for m in METHODS if m != "oracle")
    assert res["router"] > res["best_single"] + 0.05  # topics favour different models
    assert res["router"] > res["random"]
    assert res["n_train"] + res["n_test"] == len(table)
    assert set(res["per_task"]) == {"topic0", "topic1"}
    assert res["per_task"]["topic0"]["n"] > 0


def test_oracle_ignores_missing():
    s = np.array([[np.nan, 0.0], [np.nan, np.nan], [0.5, 1.0]])
    assert oracle_scores(s).tolist() == [0.0, 0.0, 1.0]


def test_sweeps(toy):
    table, x = toy
    ks = sweep_k(table, x, [1, 4], RouterConfig(prior="global"))
    assert [r["k"] for r in ks] == [1, 4]
    assert ks[1]["router"] > ks[0]["router"]  # one cluster, global prior = best single model
    # the task prior routes by task even with one cluster (issue 15)
    assert sweep_k(table, x, [1], RouterConfig(prior="task"))[0]["router"] == ks[1]["router"]
    ms = sweep_models(table, x)
    assert [r["n"] for r in ms] == [1, 2] and ms[1]["router"] >= ms[0]["router"]
    al = sweep_alpha(table, x, [0.0, 1.0])
    assert al["curve"][0]["cost"] < al["curve"][1]["cost"]
    assert {m["model"] for m in al["models"]} == {"A", "B"}


def test_knn_router_follows_neighbours(toy):
    from avengers_core.routing.routers.baselines import KNNRouter

    table, x = toy
    knn = KNNRouter.fit(table, x, RouterConfig())
    pref = knn.predict(x)
    topic1 = np.array([t == "topic1" for t in table.tasks])
    assert (pref[topic1].argmax(1) == 1).mean() > 0.9
    assert (pref[~topic1].argmax(1) == 0).mean() > 0.9


def test_unscored_test_queries_are_left_out(toy):
    table, x = toy
    table.scores[::5] = np.nan  # every fifth query: no model was scored on it
    res = evaluate(table, x, RouterConfig(k=4))
    _, te = split(table, 0.3, seed=0)
    scored = int((~np.isnan(table.scores[te]).all(axis=1)).sum())
    assert scored < len(te)
    assert res["n_test"] == scored
    assert res["oracle"] > 0.85  # unscored rows no longer count as failures


def test_paper_of_is_a_paper_fit(toy):
    table, x = toy
    router = AvengersRouter.fit(table, x, RouterConfig(k=4, seed=3))
    direct = AvengersRouter.fit(table, x, RouterConfig.paper(k=4, seed=3))
    derived = paper_of(router)
    assert derived.config == direct.config
    np.testing.assert_allclose(derived.predict(x), direct.predict(x))


def test_fusion_and_shrinkage_sweeps_agree_with_evaluate(toy):
    table, x = toy
    cfg = RouterConfig(k=4)
    ref = evaluate(table, x, cfg, seed=1)
    grid = sweep_fusion(table, x, [1, 3], [1.0, 6.0], cfg, seed=1)
    assert [(r["top_k"], r["beta"]) for r in grid] == [(1, 1.0), (1, 6.0), (3, 1.0), (3, 6.0)]
    default = next(r for r in grid if r["top_k"] == 3 and r["beta"] == 6.0)
    assert default["router"] == pytest.approx(ref["router"])
    assert default["shrinkage"] == ref["shrinkage"]
    rows = sweep_shrinkage(table, x, [0.0, "auto"], cfg, seed=1)
    assert rows[1]["used"] == ref["shrinkage"] and rows[1]["used"] in SHRINKAGE_GRID
    assert rows[1]["router"] == pytest.approx(ref["router"])
    raw = evaluate(table, x, RouterConfig(k=4, shrinkage=0.0), seed=1)
    assert rows[0]["router"] == pytest.approx(raw["router"])


def test_vote_accuracy_closed_form():
    p = np.array([0.0, 0.3, 0.5, 0.8, 1.0])
    pess, opt = vote_accuracy(p, 1)
    np.testing.assert_allclose(pess, p)
    np.testing.assert_allclose(opt, p)
    pess, opt = vote_accuracy(p, 3)
    np.testing.assert_allclose(pess, p**3 + 3 * p**2 * (1 - p))
    np.testing.assert_allclose(opt, pess + p * (1 - p) ** 2)  # one right of three: a 1-in-3 tie
    with pytest.raises(InputError):
        vote_accuracy(p, 0)


@pytest.mark.parametrize("n,p", [(4, 0.4), (5, 0.3), (10, 0.55)])
def test_vote_accuracy_matches_counting_votes(n, p):
    """Draw samples, count votes with ties to the earlier answer: the formula agrees."""
    rng = np.random.default_rng(0)
    trials = 20000
    right = rng.random((trials, n)) < p
    wins = {"pessimistic": 0, "optimistic": 0}
    for row in right:
        for case in wins:
            answers = ["R" if r else ("W" if case == "pessimistic" else f"W{i}")
                       for i, r in enumerate(row)]
            counts = {a: answers.count(a) for a in answers}
            top = max(counts.values())
            winner = next(a for a in answers if counts[a] == top)  # earliest of the tied
            wins[case] += winner == "R"
    pess, opt = vote_accuracy(np.array([p]), n)
    assert wins["pessimistic"] / trials == pytest.approx(pess[0], abs=0.012)
    assert wins["optimistic"] / trials == pytest.approx(opt[0], abs=0.012)


def test_simulate_votes(toy):
    table, x = toy
    cfg = RouterConfig(k=4)
    sim = simulate_votes(table, x, [1, 3, 5], cfg, seed=0)
    ref = evaluate(table, x, cfg, seed=0)
    assert sim["n_queries"] == ref["n_test"]
    assert sim["router"]["observed"] == pytest.approx(ref["router"])
    assert sim["best_single"]["observed"] == pytest.approx(ref["best_single"])
    one, three, five = sim["router"]["votes"]
    assert one["pessimistic"] == pytest.approx(one["optimistic"])
    assert abs(one["pessimistic"] - sim["router"]["observed"]) < 0.1  # estimate is calibrated
    assert one["pessimistic"] < three["pessimistic"] < five["pessimistic"]  # p > 1/2 here
    assert all(r["optimistic"] >= r["pessimistic"] for r in sim["router"]["votes"])
    only = simulate_votes(table, x, [1], cfg, seed=0, tasks=["topic0"])
    _, test, _, _ = halves(table, 0.3, 0)
    assert only["n_queries"] == sum(t == "topic0" for t in test.tasks)
    with pytest.raises(InputError):
        simulate_votes(table, x, [1], cfg, seed=0, tasks=["nope"])


def test_a_shared_fit_gives_the_same_results(toy):
    table, x = toy
    cfg = RouterConfig(k=4)
    f = fit_split(table, x, cfg, seed=2)
    alone, shared = evaluate(table, x, cfg, seed=2), evaluate(table, x, fitted=f)
    assert {m: alone[m] for m in METHODS} == {m: shared[m] for m in METHODS}
    assert shared["seed"] == 2 and shared["n_test"] == len(f.te)
    assert sweep_models(table, x, config=cfg, seed=2) == sweep_models(table, x, fitted=f)
    assert (sweep_shrinkage(table, x, [5.0, "auto"], cfg, seed=2)
            == sweep_shrinkage(table, x, [5.0, "auto"], fitted=f))
    assert simulate_votes(table, x, [3], cfg, seed=2) == simulate_votes(table, x, [3], fitted=f)
