"""Integration on the real demo table (LLMRouter, 9 models) with real MiniLM embeddings."""

import numpy as np
import pytest

from avengers_core.routing.evaluate import evaluate
from avengers_core.routing.profile import load_profile, save_profile
from avengers_core.routing.routers.avengers import AvengersRouter
from avengers_core.routing.routers.base import RouterConfig

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def result(demo_table, demo_embeddings):
    return evaluate(demo_table, demo_embeddings, RouterConfig(k=64), test_size=0.3, seed=0)


def test_router_beats_best_single_model_on_held_out_split(result):
    assert result["n_test"] == pytest.approx(0.3 * 5989, abs=10)
    assert result["router"] > result["best_single"]
    assert result["paper"] > result["random"]
    assert result["oracle"] > result["router"]
    assert result["best_single_model"] == "llama-3.1-nemotron-51b-instruct"
    assert len(result["per_task"]) == 14


def test_fitted_demo_profile_routes_math_and_code(demo_table, demo_embeddings, minilm, tmp_path):
    r = AvengersRouter.fit(demo_table, demo_embeddings, RouterConfig(k=64), embedder_id=minilm.id)
    back = load_profile(save_profile(r, tmp_path / "p"), embedder_id=minilm.id)
    math = back.route("Natalia sold clips to 48 of her friends in April, and then she sold "
                      "half as many clips in May. How many clips did she sell altogether?",
                      embedder=minilm)
    assert math.task in ("gsm8k", "agentverse-mgsm", "math")
    code = back.route("Write a python function to find the first repeated character "
                      "in a given string.", embedder=minilm)
    assert code.task in ("mbpp", "human_eval")
    assert np.isclose(sum(c["p"] for c in code.clusters), 1.0)


def test_shrinkage_protects_a_slice_with_one_dominant_model(demo_table, demo_embeddings):
    """On mmlu + math one model dominates; the default must not lose to it beyond noise."""
    idx = [i for i, t in enumerate(demo_table.tasks) if t in ("mmlu", "math")]
    res = evaluate(demo_table.subset(idx), demo_embeddings[idx], RouterConfig(k=64), seed=0)
    assert res["router"] >= res["best_single"] - 0.01
    assert res["router"] >= res["paper"]
    assert res["shrinkage"] > 0
