"""Issue 15: the task level of the evidence, the prior chosen by CV, and the routers
registered beside the recipe, on the two-topic toy table (A wins topic 0, B topic 1)."""

import json

import numpy as np
import pytest

import avengers_core.routing.routers  # noqa: F401  (registers the routers)
from avengers_core.errors import InputError
from avengers_core.routing.profile import load_profile, save_profile
from avengers_core.routing.routers.avengers import AvengersRouter
from avengers_core.routing.routers.base import ROUTERS, RouterConfig
from avengers_core.routing.score import TaskPrior
from avengers_core.routing.shrinkage import choose_evidence


def _topic(table):
    return np.array([t == "topic1" for t in table.tasks])


def test_task_prior_recognises_tasks_and_their_best_model(toy):
    table, x = toy
    tp = TaskPrior.fit(x, table.tasks, table.scores)
    assert tp.tasks == ["topic0", "topic1"]
    p = tp.proba(x)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    assert (p.argmax(axis=1) == _topic(table)).mean() > 0.95
    g = np.nanmean(table.scores, axis=0)
    prior = tp.prior(x, g)
    assert prior.shape == (len(x), 2)
    topic = _topic(table)
    assert (prior[~topic].argmax(1) == 0).mean() > 0.9
    assert (prior[topic].argmax(1) == 1).mean() > 0.9


def test_task_prior_needs_two_tasks(toy):
    table, x = toy
    assert TaskPrior.fit(x, None, table.scores) is None
    assert TaskPrior.fit(x, ["one"] * len(x), table.scores) is None


def test_task_prior_alone_routes_by_task(toy):
    table, x = toy
    r = AvengersRouter.fit(table, x, RouterConfig(k=2, prior="task", shrinkage=1000.0))
    assert r.config.prior == "task" and r.task_prior is not None
    pick, topic = r.predict(x).argmax(1), _topic(table)
    assert (pick[~topic] == 0).mean() > 0.9 and (pick[topic] == 1).mean() > 0.9
    res = r.route_vector(x[0])  # the explanation still has per-cluster stats
    assert res.models and set(res.details[0]["models"]) == {"A", "B"}


def test_global_prior_is_the_recipe_before(toy):
    table, x = toy
    r = AvengersRouter.fit(table, x, RouterConfig(k=4, prior="global", shrinkage=5.0))
    assert r.task_prior is None
    idx, _, p = r.nearest(x)
    want = np.einsum("nk,nkm->nm", p, r.cluster_scores()[idx])  # shrunk toward global means
    np.testing.assert_allclose(r.predict(x), want, rtol=1e-6)


def test_paper_ignores_the_prior(toy):
    table, x = toy
    r = AvengersRouter.fit(table, x, RouterConfig.paper(k=4))
    assert r.config.prior == "global" and r.config.shrinkage == 0.0
    idx, _, _ = r.nearest(x)
    raw = np.nan_to_num(r.profile.mean, nan=-1.0)[idx[:, 0]]
    np.testing.assert_array_equal(r.predict(x).argmax(1), raw.argmax(1))


def test_choose_evidence_returns_a_candidate(toy):
    table, x = toy
    r = AvengersRouter.fit(table, x, RouterConfig(k=4, prior="global", shrinkage=0.0))
    tp = TaskPrior.fit(x, table.tasks, table.scores)
    prior, tau = choose_evidence(table, x, r.centroids, r.labels, RouterConfig(k=4), tp,
                                  router_cls=AvengersRouter)
    assert prior in ("global", "task") and tau >= 0
    only = choose_evidence(table, x, r.centroids, r.labels, RouterConfig(k=4, prior="global"),
                           tp, router_cls=AvengersRouter)
    assert only[0] == "global"


def test_bad_prior_is_one_clear_error(toy):
    table, x = toy
    with pytest.raises(InputError, match="prior must be"):
        AvengersRouter.fit(table, x, RouterConfig(k=2, prior="tasks"))
    r = AvengersRouter.fit(table, x, RouterConfig(k=2, prior="global"))
    with pytest.raises(InputError, match="refit"):
        r.with_config(prior="task")


@pytest.mark.parametrize("name", ["logreg", "mlp", "lowrank", "evidence", "auto"])
def test_registered_router_routes_each_topic(toy, name):
    table, x = toy
    r = ROUTERS[name].fit(table, x, RouterConfig(k=4))
    pred = r.predict(x)
    assert pred.shape == (len(x), 2) and np.isfinite(pred).all()
    pick, topic = pred.argmax(1), _topic(table)
    assert (pick[~topic] == 0).mean() > 0.8 and (pick[topic] == 1).mean() > 0.8


def test_auto_reports_its_choice(toy):
    table, x = toy
    r = ROUTERS["auto"].fit(table, x, RouterConfig(k=4))
    assert r.choice in r.cv and set(r.cv) >= {"avengers", "logreg", "knn"}
    assert all(0.0 <= v <= 1.0 for v in r.cv.values())


def test_profile_keeps_the_task_prior(toy, tmp_path):
    table, x = toy
    r = AvengersRouter.fit(table, x, RouterConfig(k=4, prior="task", shrinkage=20.0),
                           embedder_id="test:toy")
    back = load_profile(save_profile(r, tmp_path / "p"))
    assert back.config.prior == "task" and back.task_prior.tasks == ["topic0", "topic1"]
    np.testing.assert_allclose(back.predict(x), r.predict(x), rtol=1e-5)


def test_profile_without_task_prior_loads_as_global(toy, tmp_path):
    table, x = toy
    r = AvengersRouter.fit(table, x, RouterConfig(k=4, prior="task", shrinkage=20.0),
                           embedder_id="test:toy")
    folder = save_profile(r, tmp_path / "p")
    doc = json.loads((folder / "profile.json").read_text())
    del doc["task_prior"]  # as a profile saved before issue 15
    (folder / "profile.json").write_text(json.dumps(doc))
    back = load_profile(folder)
    assert back.config.prior == "global" and back.task_prior is None
    g = AvengersRouter.fit(table, x, RouterConfig(k=4, prior="global", shrinkage=20.0))
    np.testing.assert_allclose(back.predict(x), g.predict(x), rtol=1e-5)


def test_profile_with_damaged_task_prior_is_refused(toy, tmp_path):
    table, x = toy
    r = AvengersRouter.fit(table, x, RouterConfig(k=4, prior="task", shrinkage=20.0))
    folder = save_profile(r, tmp_path / "p")
    doc = json.loads((folder / "profile.json").read_text())
    doc["task_prior"]["sums"] = doc["task_prior"]["sums"][:1]
    (folder / "profile.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match="task prior shapes"):
        load_profile(folder)


def test_cli_prior_flag():
    from avengers_core.cli.commands import build_parser

    p = build_parser()
    assert p.parse_args(["fit", "t.csv", "--out", "o", "--prior", "task"]).prior == "task"
    assert p.parse_args(["evaluate", "t.csv"]).prior == "auto"
    with pytest.raises(SystemExit) as e:
        p.parse_args(["fit", "t.csv", "--out", "o", "--prior", "nope"])
    assert e.value.code == 2
