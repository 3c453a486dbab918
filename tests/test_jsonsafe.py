"""Issue 22: no JSON the package writes holds NaN or Infinity, and no probability, cosine
or score in [0, 1] is printed above 1."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from avengers_core import jsonsafe
from avengers_core.data.table import from_rows
from avengers_core.routing.profile import load_profile, profile_files
from avengers_core.routing.routers.avengers import AvengersRouter
from avengers_core.routing.routers.base import RouterConfig
from avengers_core.routing.score import CapabilityProfile


def strict_loads(text: str):
    """json.loads refusing NaN and Infinity, as browsers, jq and Go do."""
    def refuse(word: str):
        raise ValueError(f"non-standard JSON constant {word}")
    return json.loads(text, parse_constant=refuse)


def test_dumps_writes_null_for_every_non_finite_number():
    obj = {"a": math.nan, "b": [math.inf, -math.inf, np.float32("nan")], "c": np.float64(0.5),
           "d": np.array([1.0, np.nan]), "e": (np.int64(3), np.bool_(True)), "f": "NaN"}
    text = jsonsafe.dumps(obj)
    assert strict_loads(text) == {"a": None, "b": [None, None, None], "c": 0.5,
                                  "d": [1.0, None], "e": [3, True], "f": "NaN"}


def _router_with_costs(cost: np.ndarray) -> AvengersRouter:
    x = np.eye(3, dtype=np.float32)
    prof = CapabilityProfile(["a", "b"], np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]),
                             np.ones((3, 2), dtype=int), cost, 0.0, np.ones(3, dtype=int))
    return AvengersRouter(x, prof, RouterConfig(k=3, shrinkage=0.0, prior="global"), "e")


def test_profile_json_never_holds_nan_or_infinity(tmp_path):
    cost = np.array([[np.inf, 1.0], [np.nan, 2.0], [1.0, -np.inf]])
    text = profile_files(_router_with_costs(cost))["profile.json"].decode()
    assert "NaN" not in text and "Infinity" not in text
    doc = strict_loads(text)
    assert doc["clusters"][0]["cost"] == [None, 1.0]


def test_routed_scores_similarities_and_probabilities_are_at_most_one():
    rng = np.random.default_rng(0)
    rows = [{"query": f"q{i}", "scores": {"always": 1.0, "never": 0.0}} for i in range(60)]
    table = from_rows(rows, "t")
    x = rng.normal(size=(60, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    r = AvengersRouter.fit(table, x, RouterConfig(k=8, prior="global", shrinkage=0.0))
    for v in list(x) + list(r.centroids):
        res = r.route_vector(v)
        assert res.scores["always"] <= 1.0, res.scores
        assert all(c["p"] <= 1.0 and c["similarity"] <= 1.0 for c in res.clusters)
        assert all(m["score"] <= 1.0 for d in res.details for m in d["models"].values())
    assert r.route_vector(r.centroids[0]).clusters[0]["similarity"] == pytest.approx(1.0)


def test_a_saved_profile_round_trips_with_costs_missing(tmp_path):
    cost = np.array([[np.nan, 1.0], [0.5, 2.0], [1.0, 0.0]])
    r = _router_with_costs(cost)
    folder = tmp_path / "p"
    folder.mkdir()
    for name, data in profile_files(r).items():
        (folder / name).write_bytes(data)
    back = load_profile(folder)
    assert math.isnan(back.profile.cost[0, 0]) and back.profile.cost[1, 1] == 2.0
