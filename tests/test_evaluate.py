"""Evaluation on the toy table: split inside tasks, every method, sweeps."""

import numpy as np
import pytest

from avengers_core.errors import InputError
from avengers_core.evaluate import (
    METHODS,
    evaluate,
    oracle_scores,
    split,
    sweep_alpha,
    sweep_k,
    sweep_models,
)
from avengers_core.route import RouterConfig


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
    ks = sweep_k(table, x, [1, 4])
    assert [r["k"] for r in ks] == [1, 4]
    assert ks[1]["router"] > ks[0]["router"]  # one cluster = best single model
    ms = sweep_models(table, x)
    assert [r["n"] for r in ms] == [1, 2] and ms[1]["router"] >= ms[0]["router"]
    al = sweep_alpha(table, x, [0.0, 1.0])
    assert al["curve"][0]["cost"] < al["curve"][1]["cost"]
    assert {m["model"] for m in al["models"]} == {"A", "B"}


def test_knn_router_follows_neighbours(toy):
    from avengers_core.baselines import KNNRouter

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
