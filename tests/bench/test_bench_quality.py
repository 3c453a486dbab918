"""The quality benchmark on the toy table: the pipeline runs, the section reads its numbers."""

import json
import re

import numpy as np
import pytest

from bench import bench_quality as bq
from bench import quality_report as qr


def test_lsa_is_fitted_on_training_queries_only():
    texts = ["apple banana", "apple cherry", "banana cherry", "apple banana cherry",
             "zebra yak", "zebra yak"]
    x = bq.lsa_vectors(texts, np.arange(4), dim=2, seed=0)
    assert x.shape == (6, 2)
    np.testing.assert_allclose(np.linalg.norm(x[:4], axis=1), 1.0, atol=1e-5)
    assert not x[4:].any()  # words never seen in training carry no weight


def test_cells_and_gap_closed():
    assert qr.cell([0.6, 0.7, 0.65]) == "0.650 (0.600–0.700)"
    assert qr.cell([0.6]) == "0.600"
    assert qr.pct_cell([0.1, 0.2, 0.3]) == "20 % (10 %–30 %)"
    assert qr.gap_closed({"router": 0.7, "best_single": 0.6, "oracle": 0.8}) == pytest.approx(0.5)
    assert np.isnan(qr.gap_closed({"router": 0.6, "best_single": 0.6, "oracle": 0.6}))


@pytest.fixture(scope="module")
def toy_results():
    from avengers_core.data.table import from_rows
    from tests.conftest import make_rows

    rows, x = make_rows(300)
    words = {"topic0": ["sum", "add", "number", "digit"], "topic1": ["poem", "verse", "rhyme"]}
    for i, r in enumerate(rows):  # topic words, so that LSA has something to find
        w = words[r["task"]]
        r["query"] = f"{w[i % len(w)]} {w[(i // 3) % len(w)]} item{i % 11} q{i}"
    return bq.run(repeats=2, quick=True, embedders=[], table=from_rows(rows, "toy"), x=x)


def test_run_is_json_ready_and_complete(toy_results):
    res = json.loads(json.dumps(toy_results))
    assert res["seeds"] == [0]  # quick: one seed
    assert [r["k"] for r in res["k_sweep"][0]] == bq.QUICK["ks"]
    assert [r["n"] for r in res["models"][0]] == [1, 2]
    assert len(res["fusion"][0]) == len(bq.QUICK["top_ks"]) * len(bq.QUICK["betas"])
    assert res["votes"]["tasks"] == ["topic0", "topic1"]  # 0/1 scores: both count
    assert "charts" not in res  # quick mode draws nothing
    h = res["heldout"][0]
    assert h["oracle"] >= h["router"] > h["best_single"]  # topics favour different models


def test_section_reports_the_numbers(toy_results):
    text = qr.section(toy_results)
    h = toy_results["heldout"][0]
    assert text.startswith("## Routing quality")
    assert f"| {bq.METHODS['router']} | {h['router']:.3f} |" in text
    gap = (h["router"] - h["best_single"]) / (h["oracle"] - h["best_single"])
    assert f"closing {100 * gap:.0f} % of the gap" in text
    for heading in ("Number of clusters K", "Number of models", "top-k", "Shrinkage",
                    "Embedder", "Voting"):
        assert heading in text
    assert "tried none" in text and "left out: none" in text
    assert text.count("Reading:") == 8  # one per part, the methods table of issue 15 included
    assert not re.search(r"\bnan\b", text)


def test_every_method_tried_is_timed_and_reported(toy_results):
    tried = toy_results["tried"][0]
    assert set(tried) == set(bq.TRIED)
    for row in tried.values():
        assert 0.0 <= row["score"] <= 1.0 and row["fit_s"] > 0 and row["route_ms"] > 0
    assert tried["paper"]["prior"] == "global" and tried["paper"]["shrinkage"] == 0.0
    assert tried["auto"]["choice"] in tried["auto"]["cv"]
    text = qr.section(toy_results)
    assert "### Every method tried" in text
    assert f"| {bq.TRIED['logreg'][0]} | {tried['logreg']['score']:.3f} |" in text
