"""Issue 22, near-duplicate queries: the clusters that exist are fitted, the effective K is
said once (CLI, profile, app), and scikit-learn's warning never reaches the user raw."""

from __future__ import annotations

import hashlib
import json
import re
import warnings

import numpy as np
import pytest

from avengers_core.cli import main
from avengers_core.data.table import from_rows
from avengers_core.embed.base import Embedder
from avengers_core.routing.cluster import kmeans
from avengers_core.routing.effective_k import effective_k_note, keep_distinct
from avengers_core.routing.profile import load_profile
from avengers_core.routing.routers.avengers import AvengersRouter
from avengers_core.routing.routers.base import RouterConfig

QUESTIONS = ["What is 2 + 2?", "Name the capital of France.", "Who wrote Hamlet?",
             "Sort a list in Python.", "Translate 'cat' into German."]


class CaseBlindEmbedder(Embedder):
    """Like MiniLM (an uncased tokenizer) for these texts: case and spacing variants of a
    question embed to the same vector."""

    def __init__(self, name: str = "test:caseblind", dim: int = 8):
        self.id, self._dim = name, dim

    @property
    def dim(self) -> int:
        return self._dim

    def _encode(self, texts: list[str]) -> np.ndarray:
        keys = [" ".join(t.lower().split()) for t in texts]
        seeds = [int(hashlib.sha256(k.encode()).hexdigest()[:8], 16) for k in keys]
        return np.stack([np.random.default_rng(s).normal(size=self._dim) for s in seeds])


def variants() -> list[dict]:
    rows = []
    for qi, q in enumerate(QUESTIONS):
        for vi, v in enumerate([q, q.upper(), q.lower(), "  " + q, q.replace(" ", "  ")]):
            rows.append({"query": v, "task": f"t{qi}",
                         "scores": {"A": float((qi + vi) % 2), "B": float(qi % 2)}})
    return rows


@pytest.fixture
def caseblind(monkeypatch, tmp_path):
    monkeypatch.setenv("AVENGERS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr("avengers_core.embed.load.get_embedder",
                        lambda name="minilm", **_: CaseBlindEmbedder())


def test_kmeans_keeps_only_clusters_that_hold_queries():
    x = CaseBlindEmbedder().encode([r["query"] for r in variants()])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a raw library warning fails the test
        clus = kmeans(x, 16, seed=0)
    assert clus.k == 5 and clus.asked == 16
    assert (np.bincount(clus.labels, minlength=clus.k) == 5).all()
    sims = clus.centroids @ clus.centroids.T
    assert (sims[~np.eye(5, dtype=bool)] < 0.999).all()  # no centroid repeats another


def test_keep_distinct_merges_repeats_and_renumbers():
    c = np.eye(4, dtype=np.float32)[[0, 1, 0, 2, 3]]  # cluster 2 repeats cluster 0
    labels = np.array([0, 2, 1, 1, 4])  # cluster 3 is empty
    kept, lab = keep_distinct(c, labels)
    np.testing.assert_array_equal(kept, np.eye(4, dtype=np.float32)[[0, 1, 3]])
    assert lab.tolist() == [0, 0, 1, 1, 2]
    same_c, same_l = keep_distinct(np.eye(3), np.array([0, 1, 2]))
    assert same_l.tolist() == [0, 1, 2] and same_c.shape == (3, 3)


def test_router_fits_the_effective_k_and_routes_only_to_filled_clusters():
    table = from_rows(variants(), "dups")
    x = CaseBlindEmbedder().encode(table.queries)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = AvengersRouter.fit(table, x, RouterConfig(k=16, seed=0))
    assert r.config.k == 5 and r.k_asked == 16 and len(r.centroids) == 5
    assert (r.profile.size > 0).all()
    res = r.route_vector(x[0])
    assert all(r.profile.size[c["id"]] > 0 for c in res.clusters)
    assert effective_k_note(r.k_asked, r.config.k).startswith("effective K = 5 of the 16")
    assert effective_k_note(5, 5) is None
    assert r.with_config(top_k=2).k_asked == 16


def test_cli_fit_reports_the_effective_k_once_and_the_profile_keeps_it(tmp_path, caseblind,
                                                                      capsys):
    table = tmp_path / "dups.jsonl"
    table.write_text("\n".join(json.dumps(r) for r in variants()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["fit", str(table), "--out", str(tmp_path / "p"), "--k", "16"]) == 0
    cap = capsys.readouterr()
    assert re.search(r"^fitted K = 5 on 25 queries", cap.out, re.M), cap.out
    notes = [line for line in cap.err.splitlines() if "effective K" in line]
    assert notes == ["note: effective K = 5 of the 16 asked: the queries form only 5 distinct "
                     "clusters (near-duplicate queries embed alike), so the empty or repeated "
                     "ones were dropped"]
    assert "ConvergenceWarning" not in cap.err + cap.out
    doc = json.loads((tmp_path / "p" / "profile.json").read_text())
    assert doc["k"] == 5 and doc["k_asked"] == 16 and len(doc["clusters"]) == 5
    assert load_profile(tmp_path / "p").k_asked == 16


def test_torch_kmeans_result_is_reduced_to_the_clusters_that_exist():
    """The GPU path (`torch_kmeans`, run here on the CPU) goes through the same reduction."""
    from avengers_core.routing.cluster import torch_kmeans
    from avengers_core.routing.effective_k import distinct, refit_if_fewer

    x = CaseBlindEmbedder().encode([r["query"] for r in variants()])
    raw = torch_kmeans(x, 16, seed=0, device="cpu")
    assert raw.k == 16  # copies of the 5 vectors, as K-means returns them
    clus = refit_if_fewer(distinct(raw, 16), x, lambda d: torch_kmeans(x, d, 0, "cpu"))
    assert clus.k == 5 and clus.asked == 16
    assert sorted(np.bincount(clus.labels).tolist()) == [5] * 5
