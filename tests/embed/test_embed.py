"""Embedding: normalised float32 vectors, the real MiniLM offline, and the disk cache."""

import numpy as np
import pytest

from avengers_core.embed.base import Embedder, normalise
from avengers_core.embed.cache import embed_texts, text_key
from avengers_core.embed.load import get_embedder
from tests.support.pickles import Boom


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
    from tests.support.fake_ollama import FakeOllama, ModelScript

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
    from avengers_core.embed import cache as embed

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


def _corrupt(shard, how, tmp_path):
    good = shard.read_bytes()
    if how == "truncated":
        shard.write_bytes(good[: len(good) // 2])
    elif how == "empty":
        shard.write_bytes(b"")
    elif how == "garbage":
        shard.write_bytes(np.random.default_rng(0).bytes(700))
    elif how == "object array":  # would run code if it were ever unpickled
        keys = np.array([Boom(tmp_path / "pwned")], dtype=object)
        np.savez(shard, keys=keys, vecs=np.ones((1, 4)))
    elif how == "lengths differ":
        np.savez(shard, keys=np.array(["k"], dtype="U64"), vecs=np.ones((2, 4)))
    elif how == "not finite":
        with np.load(shard) as z:
            keys = z["keys"]
        np.savez(shard, keys=keys, vecs=np.full((len(keys), 4), np.nan))


@pytest.mark.parametrize(
    "how", ["truncated", "empty", "garbage", "object array", "lengths differ", "not finite"]
)
def test_corrupt_shard_is_dropped_and_rebuilt(tmp_path, monkeypatch, how):
    monkeypatch.setenv("AVENGERS_CACHE_DIR", str(tmp_path / "cache"))
    texts = ["a", "bb", "ccc"]
    first = embed_texts(texts, CountingEmbedder())
    folder = tmp_path / "cache" / "embeddings" / "test_counting"
    (shard,) = folder.glob("shard-*.npz")
    _corrupt(shard, how, tmp_path)
    CountingEmbedder.calls = 0
    with pytest.warns(RuntimeWarning, match="unusable embedding cache shard"):
        again = embed_texts(texts, CountingEmbedder())
    np.testing.assert_array_equal(again, first)
    assert CountingEmbedder.calls == 3  # recomputed
    assert not shard.exists() and len(list(folder.glob("shard-*.npz"))) == 1
    assert not (tmp_path / "pwned").exists()  # the object array was never unpickled
    CountingEmbedder.calls = 0
    embed_texts(texts, CountingEmbedder())
    assert CountingEmbedder.calls == 0  # written again, readable


def test_shard_of_another_width_is_dropped(tmp_path):
    from avengers_core.embed.cache import EmbeddingCache

    cache = EmbeddingCache("test:w", root=tmp_path)
    cache.put(["k1", "k2"], np.ones((2, 4), dtype=np.float32))
    cache.put(["k3"], np.ones((1, 3), dtype=np.float32))  # e.g. copied from another model
    with pytest.warns(RuntimeWarning, match="width 3"):
        got = EmbeddingCache("test:w", root=tmp_path).get(["k1", "k2", "k3"])
    assert sorted(got) == ["k1", "k2"]


def test_cache_of_another_model_under_the_same_name_is_an_input_error(tmp_path, monkeypatch):
    from avengers_core.embed.cache import EmbeddingCache
    from avengers_core.errors import InputError

    monkeypatch.setenv("AVENGERS_CACHE_DIR", str(tmp_path))
    EmbeddingCache(CountingEmbedder.id).put([text_key("a")], np.ones((1, 7), dtype=np.float32))
    with pytest.raises(InputError, match="width 7 but test:counting gives 4"):
        embed_texts(["a", "new text"], CountingEmbedder())


def test_concurrent_writers_never_lose_a_shard(tmp_path):
    import threading

    from avengers_core.embed.cache import EmbeddingCache

    start = threading.Barrier(8)

    def write(t: int) -> None:
        cache = EmbeddingCache("test:threads", root=tmp_path)
        start.wait()
        for i in range(5):
            cache.put([f"t{t}-{i}"], np.full((1, 4), t, dtype=np.float32))

    threads = [threading.Thread(target=write, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    keys = [f"t{t}-{i}" for t in range(8) for i in range(5)]
    got = EmbeddingCache("test:threads", root=tmp_path).get(keys)
    assert len(got) == 40 and all(got[f"t{t}-0"][0] == t for t in range(8))
    assert not [p for p in (tmp_path / "embeddings").rglob("*") if p.suffix == ".tmp"]


def test_shard_that_cannot_be_opened_is_kept(tmp_path, monkeypatch):
    """An OSError (permissions, too many open files) says nothing about the content."""
    from avengers_core.embed import cache as embed

    monkeypatch.setenv("AVENGERS_CACHE_DIR", str(tmp_path / "cache"))
    first = embed_texts(["a", "bb"], CountingEmbedder())
    (shard,) = (tmp_path / "cache" / "embeddings" / "test_counting").glob("shard-*.npz")

    def refuse(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(embed, "_read_shard", refuse)
    CountingEmbedder.calls = 0
    with pytest.warns(RuntimeWarning, match="cannot read this embedding cache shard"):
        again = embed_texts(["a", "bb"], CountingEmbedder())
    np.testing.assert_array_equal(again, first)
    assert CountingEmbedder.calls == 2 and shard.exists()
