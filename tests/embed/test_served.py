"""The `openai:` embedder: `/v1/embeddings` over the official client, on FakeOllama's
deterministic vectors and on the real llama.cpp engine (llama-cpp-python, SmolLM2)."""

import json

import numpy as np
import pytest

from avengers_core.embed.base import normalise
from avengers_core.embed.cache import embed_texts
from avengers_core.embed.load import get_embedder
from avengers_core.errors import InputError
from tests.support.fake_ollama import FakeOllama, ModelScript, fake_embedding

TEXTS = [f"question number {i} about {'apples' if i % 2 else 'trains'}" for i in range(23)]


def test_named_by_model_and_url_in_order_with_concurrent_batches(tmp_path, monkeypatch):
    monkeypatch.setenv("AVENGERS_CACHE_DIR", str(tmp_path))
    with FakeOllama({"embedder": ModelScript()}) as srv:
        emb = get_embedder(f"openai:embedder@{srv.url}/v1")
        assert emb.id == f"openai:embedder@{srv.url}/v1"
        emb.batch_size, emb.concurrency = 4, 3
        seen = []
        x = emb.encode(TEXTS, progress=lambda d, t, m: seen.append((d, t)))
        want = normalise(np.array([fake_embedding(t) for t in TEXTS]))
        np.testing.assert_allclose(x, want, rtol=1e-6)  # every vector in the texts' order
        calls = [r for r in srv.requests if r["path"] == "/v1/embeddings"]
        assert sorted(len(r["input"]) for r in calls) == [3] + [4] * 5  # batches of 4
        assert seen[-1] == (23, 23) and [d for d, _ in seen] == sorted(d for d, _ in seen)
        assert emb.dim == 32
    # the cache serves it once the server is gone
    with FakeOllama({"embedder": ModelScript()}) as srv:
        first = embed_texts(TEXTS[:5], get_embedder(f"openai:embedder@{srv.url}/v1"))
        again = embed_texts(TEXTS[:5], get_embedder(f"openai:embedder@{srv.url}/v1"))
        assert len([r for r in srv.requests if r["path"] == "/v1/embeddings"]) == 1
    np.testing.assert_array_equal(first, again)


def test_endpoints_file_spreads_batches_over_replicas(tmp_path, monkeypatch):
    monkeypatch.setenv("AVENGERS_CACHE_DIR", str(tmp_path))
    script = {"bge-small": ModelScript()}
    with FakeOllama(script) as a, FakeOllama(script) as b:
        path = tmp_path / "endpoints.json"
        path.write_text(json.dumps({"models": {"small": {
            "backend": "openai", "urls": [f"{a.url}/v1", f"{b.url}/v1"], "model": "bge-small"}}}))
        emb = get_embedder("openai:small", endpoints=path)
        assert emb.id == "openai:small"  # the cache follows the name, not the replica
        emb.batch_size = 5
        x = embed_texts(TEXTS, emb)
        np.testing.assert_allclose(x, normalise(np.array([fake_embedding(t) for t in TEXTS])),
                                   rtol=1e-6)
        na = len([r for r in a.requests if r["path"] == "/v1/embeddings"])
        nb = len([r for r in b.requests if r["path"] == "/v1/embeddings"])
        assert na + nb == 5 and na >= 2 and nb >= 2  # 23 texts in 5 batches, in turn


def test_bad_names_and_failures_are_one_clear_line(tmp_path):
    with pytest.raises(InputError, match="openai:<model>@<base URL>"):
        get_embedder("openai:model@not-a-url")
    with pytest.raises(InputError, match="no endpoints file given"):
        get_embedder("openai:small")
    path = tmp_path / "endpoints.json"
    path.write_text(json.dumps({"models": {"o": {"backend": "ollama", "urls": ["http://x"]}}}))
    with pytest.raises(InputError, match="backend 'ollama'"):
        get_embedder("openai:o", endpoints=path)
    with pytest.raises(InputError, match="not in the endpoints file"):
        get_embedder("openai:other", endpoints=path)
    with FakeOllama({"embedder": ModelScript()}) as srv:
        emb = get_embedder(f"openai:not-served@{srv.url}/v1")
        with pytest.raises(InputError, match="openai:not-served@"):
            emb.encode(["x"])


@pytest.mark.engine
def test_real_llama_cpp_engine_serves_embeddings(tmp_path, monkeypatch):
    """Structure only (never the tiny model's semantics): shape, unit norm, determinism,
    batches and concurrency agree with one-at-a-time requests, and the cache is used."""
    from tests.support.engine import MODEL, llama_server

    monkeypatch.setenv("AVENGERS_CACHE_DIR", str(tmp_path))
    texts = TEXTS[:6]
    with llama_server(embedding=True) as (url, _):
        emb = get_embedder(f"openai:{MODEL}@{url}")
        emb.batch_size, emb.concurrency = 2, 3
        x = embed_texts(texts, emb)
        assert x.shape == (6, emb.dim) and x.dtype == np.float32 and emb.dim > 8
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-5)
        one = np.stack([emb.encode([t], batch_size=1)[0] for t in texts[:3]])
        np.testing.assert_allclose(one, x[:3], atol=2e-3)  # batching does not mix rows
        assert not np.allclose(x[0], x[1])
    # server stopped: the same embedder name is served from the cache
    np.testing.assert_array_equal(embed_texts(texts, get_embedder(f"openai:{MODEL}@{url}")), x)
