"""Shared fixtures: the demo data directory, the real demo table and its embeddings.

The demo table is embedded once per machine (the embedding cache is on disk), so only the
first test session pays the ~100 s of MiniLM on two cores.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

# Demo data: the data directory the user set, else the shared copy beside the checkout.
if "AVENGERS_DATA_DIR" not in os.environ and SHARED_DATA.exists():
    os.environ["AVENGERS_DATA_DIR"] = str(SHARED_DATA)

# The suites' profiles are embedded by the scripted engine's `ollama:` model, which a
# profile may only use when the user trusts it (issue 20). The rule itself is tested in
# tests/test_serve_security.py, with this variable removed.
os.environ.setdefault("AVENGERS_TRUST_PROFILE_EMBEDDER", "1")


def make_rows(n: int = 200, seed: int = 0) -> tuple[list[dict], np.ndarray]:
    """A small two-topic routing table and unit vectors: model A wins topic 0, B topic 1."""
    rng = np.random.default_rng(seed)
    topic = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 8))
    x[np.arange(n), topic] += 8.0  # topic 0 along axis 0, topic 1 along axis 1
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    rows = []
    for i in range(n):
        pa, pb = (0.9, 0.3) if topic[i] == 0 else (0.2, 0.8)
        rows.append({
            "id": f"q{i}",
            "query": f"question {i} about topic {topic[i]}",
            "task": f"topic{topic[i]}",
            "scores": {"A": float(rng.random() < pa), "B": float(rng.random() < pb)},
            "costs": {"A": 1.0, "B": 0.1},
        })
    return rows, x.astype(np.float32)


@pytest.fixture
def toy():
    """(table, vectors) for the two-topic toy table."""
    from avengers_core.data.table import from_rows

    rows, x = make_rows()
    return from_rows(rows, "toy"), x


@pytest.fixture(scope="session")
def demo_table():
    from avengers_core.data.datasets import available
    from avengers_core.data.load import load_table

    if not available("llmrouter"):
        pytest.fail("demo data missing: set AVENGERS_DATA_DIR or run `avengers data`")
    return load_table("llmrouter")


@pytest.fixture(scope="session")
def minilm():
    from avengers_core.embed.load import get_embedder

    return get_embedder("minilm")


@pytest.fixture(scope="session")
def demo_embeddings(demo_table, minilm):
    from avengers_core.embed.cache import embed_texts

    return embed_texts(demo_table.queries, minilm)
