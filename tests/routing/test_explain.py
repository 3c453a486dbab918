"""Issue 19: one explanation of a routing decision, built where the decision is made.

The numbers every view shows (`RouteResult.explanation`, `avengers route --json`) must be
the numbers the router used: chosen = argmax of the fused scores, each cluster's best model
= argmax of its effective scores, every percentage of the reason a number of the JSON.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from avengers_core.data.table import from_rows
from avengers_core.routing.routers.avengers import AvengersRouter
from avengers_core.routing.routers.base import RouterConfig
from tests.support import specialists

ROOT = Path(__file__).resolve().parents[2]


def three_specialists(n: int = 240, seed: int = 0):
    """(table, vectors): three tasks along three axes; each model right on its own task
    (90 %), mostly wrong elsewhere (15 %); costs make coder the cheapest."""
    rng = np.random.default_rng(seed)
    topic = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 12))
    x[np.arange(n), topic] += 6.0
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    tasks = list(specialists.TASKS)
    rows = []
    for i in range(n):
        own = specialists.TASKS[tasks[topic[i]]]
        rows.append({
            "query": f"query {i}", "task": tasks[topic[i]],
            "scores": {m: float(rng.random() < (0.9 if m == own else 0.15))
                       for m in specialists.MODELS},
            "costs": {"mathwiz": 2.0, "coder": 0.5, "quizzer": 1.0},
        })
    return from_rows(rows, "specialists"), x.astype(np.float32)


def numbers(obj) -> list[float]:
    """Every number in a JSON value."""
    if isinstance(obj, bool):
        return []
    if isinstance(obj, (int, float)):
        return [float(obj)]
    if isinstance(obj, dict):
        return [v for x in obj.values() for v in numbers(x)]
    if isinstance(obj, (list, tuple)):
        return [v for x in obj for v in numbers(x)]
    return []


def assert_consistent(data: dict) -> None:
    """`route --json`'s invariants: chosen = argmax fused, best_model = argmax of the
    cluster's effective scores, every percentage of the reason a number of the JSON."""
    fused = data["scores"]
    assert data["models"][0] == max(fused, key=fused.get)
    assert list(fused) == sorted(fused, key=lambda m: -fused[m])
    for c in data["clusters"]:
        eff = {m: v for m, v in c["scores"].items() if m in fused and v is not None}
        assert c["best_model"] == max(eff, key=eff.get), c
        for key in ("id", "p", "label", "n", "raw", "count", "scores", "best_model"):
            assert key in c
    assert data["cluster"] == data["clusters"][0]["id"]
    values = numbers({k: v for k, v in data.items() if k != "reason"})
    pcts = [int(p) for p in re.findall(r"(\d+)%", data["reason"])]
    assert pcts, data["reason"]
    for pct in pcts:
        assert any(abs(100 * v - pct) <= 0.5 + 1e-9 for v in values), (pct, data["reason"])


CONFIGS = [
    RouterConfig(k=6, prior="task", shrinkage=1000.0),
    RouterConfig(k=6, prior="task", shrinkage=5.0),
    RouterConfig(k=6, prior="global", shrinkage=5.0),
    RouterConfig(k=6, prior="global", shrinkage=5.0, alpha=0.4),
    RouterConfig(k=6, prior="global", shrinkage=5.0, top_n=2, n_models=2),
    RouterConfig.paper(k=6),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.prior}-{c.shrinkage}-"
                         f"{c.fusion}-a{c.alpha}-n{c.n_models}")
def test_the_explanation_is_what_routes(config):
    table, x = three_specialists()
    r = AvengersRouter.fit(table, x, config)
    predicted = r.predict(x[:40])
    for i in range(40):
        res = r.route_vector(x[i], [f"label {c}" for c in range(6)])
        e = res.explanation
        data = e.to_json()
        json.dumps(data)  # plain JSON types
        assert_consistent(data)
        assert res.models == e.models and res.scores == e.fused
        for m, v in e.fused.items():  # the fused scores are the router's predict()
            assert v == pytest.approx(predicted[i, r.models.index(m)], rel=1e-5, abs=1e-9)
        assert [c.id for c in e.clusters] == [c["id"] for c in res.clusters]
        assert sum(c.p for c in e.clusters) == pytest.approx(1.0)
        assert e.prior.kind == r.config.prior and e.prior.tau == r.config.shrinkage
        if e.parts:  # prior + cluster evidence (or accuracy + cost) add up to the fused score
            for m, v in e.fused.items():
                assert sum(part[m] for part in e.parts.values()) == pytest.approx(v, abs=1e-6)
        if config.alpha < 1:
            assert e.cost is not None and set(e.parts) == {"accuracy", "cost"}
            assert "α = 0.40" in e.reason()
        if config.n_models:
            assert len(e.fused) == config.n_models
            assert all(c.best_model in e.fused for c in e.clusters)


def test_task_prior_explains_the_task_mixture():
    table, x = three_specialists()
    r = AvengersRouter.fit(table, x, RouterConfig(k=6, prior="task", shrinkage=1000.0))
    e = r.route_vector(x[0]).explanation
    assert e.prior.kind == "task" and e.prior.tasks
    assert e.prior.tasks[0][0] == table.tasks[0]  # the query's own task, most likely
    probs = [p for _, p in e.prior.tasks]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    assert "task mixture" in e.reason() and "τ = 1000" in e.reason()
    g = AvengersRouter.fit(table, x, RouterConfig(k=6, prior="global", shrinkage=5.0))
    eg = g.route_vector(x[0]).explanation
    assert eg.prior.kind == "global" and eg.prior.tasks == []
    np.testing.assert_allclose([eg.prior.scores[m] for m in g.models], g.profile.global_mean)


def test_cluster_best_models_are_where_routing_goes():
    """Clusters coloured by best model: with the task prior, each cluster's best model is
    the model a query at its centre is routed to, and the three specialists all appear
    (the global shrinkage gave one model nearly everywhere: issue 19)."""
    table, x = three_specialists()
    for config in (RouterConfig(k=6, prior="task", shrinkage=1000.0, top_k=1),
                   RouterConfig(k=6, prior="global", shrinkage=5.0, top_k=1)):
        r = AvengersRouter.fit(table, x, config)
        best = r.best_models()
        assert set(best) == set(specialists.MODELS)
        for c in range(6):
            assert r.route_vector(r.centroids[c]).models[0] == best[c]
        by_model = r.cluster_order("best model")
        assert [best[c] for c in by_model] == sorted(best, key=r.models.index)


def test_reason_escapes_data_and_reads_without_scores():
    rows = [{"query": f"q {i}", "task": "t*", "scores": {"m_1": float(i % 2), "m_2": None
                                                         if i < 6 else 1.0}}
            for i in range(12)]
    x = np.eye(12, 4, dtype=np.float32) + 0.1
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    r = AvengersRouter.fit(from_rows(rows, "t"), x,
                           RouterConfig(k=2, prior="global", shrinkage=0.0, top_k=1))
    for i in range(12):
        res = r.route_vector(x[i], ["a_b", "c_d"])
        text = res.reason(escape=lambda s: s.replace("_", "\\_"))
        assert "m_1" not in text and "m\\_1" in text or "m\\_2" in text
        assert "No prior (τ = 0)" in text
        assert_consistent(res.explanation.to_json())


def test_route_json_on_three_specialists(tmp_path):
    """`avengers route --json` on a fitted three-specialist table (MiniLM): the issue's
    keys, and the invariants above."""
    table = specialists.write_csv(tmp_path / "spec.csv")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = [sys.executable, "-m", "avengers_core.cli"]
    fit = subprocess.run([*run, "fit", str(table), "--k", "4", "--out", str(tmp_path / "p")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert fit.returncode == 0, fit.stderr
    seen = set()
    for query in ("What is 9 times 7?", "Who painted The Starry Night?",
                  "Write a Python function that adds two numbers."):
        out = subprocess.run([*run, "route", str(tmp_path / "p"), query, "--json"],
                             capture_output=True, text=True, env=env, timeout=600)
        assert out.returncode == 0, out.stderr
        data = json.loads(out.stdout)
        assert {"cluster", "clusters", "models", "scores", "task", "reason",
                "prior"} <= set(data)
        assert {"kind", "scores", "tasks"} <= set(data["prior"])
        assert all(c["label"] for c in data["clusters"])  # the saved c-TF-IDF labels
        assert_consistent(data)
        seen.add(data["models"][0])
    assert seen == set(specialists.MODELS)  # each specialist gets its own kind of query


def test_effective_heatmap_and_report_show_what_routes():
    """The Leaderboard's and the report's effective heatmap is `cluster_scores()`; the
    report has the map by best model and that heatmap after the raw one."""
    from avengers_core.present import plots
    from avengers_core.present.explain import effective_heatmap, fused_parts
    from avengers_core.present.report import dataset_report
    from avengers_core.routing.explain import describe_prior

    table, x = three_specialists()
    r = AvengersRouter.fit(table, x, RouterConfig(k=6, prior="task", shrinkage=1000.0))
    names = [f"c{c}" for c in range(6)]
    order = r.cluster_order("best model")
    heat = effective_heatmap(r, names, order)
    cols = [r.models.index(m) for m in heat.data[0].x]
    np.testing.assert_allclose(np.asarray(heat.data[0].z, dtype=float),
                               r.cluster_scores()[order][:, cols])
    best = r.best_models()
    best_map = plots.cluster_map(np.zeros((len(x), 2)), table.queries,
                                 [best[c] for c in r.labels])
    sentence = describe_prior(r.config.prior, r.config.shrinkage)
    assert "task prior" in sentence and "τ = 1000" in sentence
    rows = [{"k": 4, "router": 0.6, "paper": 0.58}]
    evaluation = {"router": 0.7, "paper": 0.69, "best_single": 0.6, "n_train": 1,
                  "n_test": 1, "best_single_model": "m"}
    page = dataset_report("spec", len(x), best_map, heat, evaluation, rows,
                          routing=(sentence, best_map, heat))
    assert page.count("Plotly.newPlot(") == 6
    assert "<h2>Where the router sends each cluster</h2>" in page
    assert "<h2>What the router uses</h2>" in page
    fig = fused_parts(r.route_vector(x[0]).explanation)
    assert [t.name for t in fig.data] == ["from the prior", "from the clusters' own answers",
                                         "fused score"]
