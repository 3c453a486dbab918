"""Embedding: normalised float32 vectors, the real MiniLM offline, and the disk cache."""

import numpy as np
import pytest

from avengers_core.embed import Embedder, embed_texts, get_embedder, normalise


class CountingEmbedder(Embedder):
    """A deterministic embedder that counts the texts it was asked to encode."""

    id = "test:counting"
    calls = 0

    @property
    def dim(self) -> int:
        return 4

    def _encode(self, texts):
        CountingEmbedder.calls += len(texts)
        return np.array([[len(t), t.count("a"), 1.0, 2.0] for t in texts], dtype=float)


def test_normalise_unit_rows_and_zero_rows():
    x = normalise(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert x.dtype == np.float32
    np.testing.assert_allclose(x[0], [0.6, 0.8], rtol=1e-6)
    assert (x[1] == 0).all()


def test_cache_reuses_vectors_across_calls(tmp_path, monkeypatch):
    monkeypatch.setenv("AVENGERS_CACHE_DIR", str(tmp_path))
    emb = CountingEmbedder()
    CountingEmbedder.calls = 0
    seen = []
    a = embed_texts(["a", "bb", "a"], emb, progress=lambda d, t, m: seen.append((d, t)))
    assert CountingEmbedder.calls == 2  # the duplicate text is embedded once
    assert seen[-1] == (3, 3)
    b = embed_texts(["bb", "a", "ccc"], emb)
    assert CountingEmbedder.calls == 3  # only "ccc" is new
    np.testing.assert_array_equal(a[1], b[0])
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, rtol=1e-6)
    assert any((tmp_path / "embeddings" / "test_counting").glob("shard-*.npz"))


def test_minilm_offline_similarity(minilm):
    assert minilm.id == "st:all-MiniLM-L6-v2"
    x = minilm.encode(["How many apples are left?", "How many pears remain?", "def f(x): pass"])
    assert x.shape == (3, 384) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-5)
    assert x[0] @ x[1] > x[0] @ x[2]


def test_get_embedder_names():
    assert get_embedder("minilm").id == get_embedder("st:all-MiniLM-L6-v2").id


def test_ollama_embedder_over_http(tmp_path, monkeypatch):
    """The Ollama embedder calls /api/embed through the real client; results are cached."""
    from avengers_core.errors import InputError
    from tests.fake_ollama import FakeOllama, ModelScript

    monkeypatch.setenv("AVENGERS_CACHE_DIR", str(tmp_path))
    with FakeOllama({"nomic-embed-text": ModelScript()}) as srv:
        monkeypatch.setenv("OLLAMA_HOST", srv.url)
        emb = get_embedder("ollama:nomic-embed-text")
        assert emb.id == "ollama:nomic-embed-text" and emb.dim == 32
        x = embed_texts(["apples and pears", "apples and plums", "the stock market"], emb)
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-5)
        assert x[0] @ x[1] > x[0] @ x[2]
        missing = get_embedder("ollama:not-pulled")
        with pytest.raises(InputError, match="ollama:not-pulled"):
            missing.encode(["x"])
    # served from the disk cache with the server gone
    again = embed_texts(["apples and pears"], get_embedder("ollama:nomic-embed-text"))
    np.testing.assert_array_equal(again[0], x[0])


def test_interrupted_embedding_keeps_finished_chunks(tmp_path, monkeypatch):
    from avengers_core import embed

    monkeypatch.setenv("AVENGERS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(embed, "CHUNK", 2)

    class Failing(CountingEmbedder):
        def _encode(self, texts):
            if "boom" in texts:
                raise RuntimeError("killed")
            return super()._encode(texts)

    with pytest.raises(RuntimeError):
        embed_texts(["a", "b", "c", "boom"], Failing(), progress=None)
    CountingEmbedder.calls = 0
    embed_texts(["a", "b"], CountingEmbedder())
    assert CountingEmbedder.calls == 0  # the first chunk was already on disk
