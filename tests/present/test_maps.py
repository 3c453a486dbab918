"""2-D projections: PCA, placing new points, and the on-disk cache of background maps.

UMAP itself never runs here (numba compiles for 60-90 s); the background machinery is
exercised with the PCA method, which takes the same path through a subprocess.
"""

import time

import numpy as np
import pytest

from avengers_core.present import maps
from tests.support.pickles import Boom


def _vectors(n=40, d=8, seed=0):
    X = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def test_pca_shape_and_determinism():
    X = _vectors()
    a, b = maps.pca_2d(X), maps.pca_2d(X.copy())
    assert a.shape == (40, 2) and a.dtype == np.float32
    np.testing.assert_allclose(a, b)
    assert a[:, 0].var() >= a[:, 1].var()


def test_place_lands_near_its_twin():
    X = _vectors()
    coords = maps.pca_2d(X)
    np.testing.assert_allclose(maps.place(X[7], X, coords, k=1), coords[7], atol=1e-5)
    p = maps.place(X[7], X, coords, k=5)
    assert p.shape == (2,)


def test_nearest_is_sorted_best_first():
    X = _vectors()
    idx, sims = maps.nearest(X[3], X, 5)
    assert idx[0] == 3 and abs(sims[0] - 1.0) < 1e-5
    assert list(sims) == sorted(sims, reverse=True) and len(idx) == 5


def test_key_depends_on_texts_and_embedder():
    k = maps.texts_key(["a", "b"], "minilm")
    assert k == maps.texts_key(["a", "b"], "minilm")
    assert k != maps.texts_key(["a", "b "], "minilm")
    assert k != maps.texts_key(["ab"], "minilm")
    assert k != maps.texts_key(["a", "b"], "ollama:nomic-embed-text")
    assert "/" not in maps.texts_key(["a"], "sentence-transformers/all-MiniLM-L6-v2")


def test_background_map_written_once_and_reused(tmp_path):
    X = _vectors()
    texts = [f"q{i}" for i in range(len(X))]
    job = maps.start_map(X, texts, "test.emb", method="pca", folder=tmp_path)
    deadline = time.time() + 300  # generous: a loaded machine starts Python slowly
    while job.coords() is None and time.time() < deadline:
        assert job.status()["state"] in ("running", "done"), job.status()
        time.sleep(0.1)
    coords = job.coords()
    assert coords is not None and coords.shape == (40, 2)
    np.testing.assert_allclose(coords, maps.pca_2d(X), atol=1e-5)
    assert job.status()["state"] == "done"
    assert not job.vectors_path.exists()
    mtime = job.coords_path.stat().st_mtime_ns
    again = maps.start_map(X, texts, "test.emb", method="pca", folder=tmp_path)
    assert again == job and again.coords_path.stat().st_mtime_ns == mtime


def test_status_of_missing_and_dead_jobs(tmp_path):
    job = maps.map_job(["x"], "e", "umap", folder=tmp_path)
    assert job.status()["state"] == "missing" and job.coords() is None
    job.status_path.write_text('{"state": "running", "pid": 999999999, "message": "fit"}')
    assert job.status()["state"] == "failed"
    job.write_status("running", 1, 3, "fit")  # this process: alive
    assert job.status()["state"] == "running"
    job.status_path.write_text(job.status_path.read_text().replace('"started": ', '"started": -'))
    assert job.status()["state"] == "failed"  # started long ago: stale


def test_failed_job_is_not_respawned_at_once(tmp_path, monkeypatch):
    X = _vectors()
    texts = [f"q{i}" for i in range(len(X))]
    job = maps.map_job(texts, "e", "pca", folder=tmp_path)
    job.folder.mkdir(parents=True, exist_ok=True)
    job.write_status("failed", 0, 1, "boom")
    assert maps.start_map(X, texts, "e", "pca", folder=tmp_path).status()["message"] == "boom"
    assert not job.vectors_path.exists()  # nothing was started
    monkeypatch.setattr(maps, "RETRY_AFTER", 0.0)
    job = maps.start_map(X, texts, "e", "pca", folder=tmp_path)
    deadline = time.time() + 300  # generous: a loaded machine starts Python slowly
    while job.coords() is None and time.time() < deadline:
        time.sleep(0.1)
    assert job.status()["state"] == "done"


def test_failed_worker_reports_its_reason(tmp_path):
    job = maps.map_job(["x"], "e", "pca", folder=tmp_path)
    job.folder.mkdir(parents=True, exist_ok=True)
    np.save(job.vectors_path, np.zeros((0, 3), dtype=np.float32))
    try:
        maps.main([str(job.vectors_path), str(job.coords_path), "--method", "pca"])
    except ValueError:
        pass
    st = job.status()
    assert st["state"] == "failed" and "non-empty" in st["message"]


def _damage(path, how, tmp_path):
    good = path.read_bytes()
    if how == "truncated":
        path.write_bytes(good[: len(good) - 40])
    elif how == "garbage":
        path.write_bytes(np.random.default_rng(1).bytes(300))
    elif how == "object array":
        np.save(path, np.array([Boom(tmp_path / "pwned")], dtype=object), allow_pickle=True)
    elif how == "wrong shape":
        np.save(path, np.zeros((len(np.load(path)) - 1, 2), dtype=np.float32))
    elif how == "not finite":
        np.save(path, np.full((len(np.load(path)), 2), np.inf, dtype=np.float32))


def _finish(job, timeout=300):
    deadline = time.time() + timeout
    while job.status()["state"] == "running" and time.time() < deadline:
        time.sleep(0.1)
    return job.coords()


@pytest.mark.parametrize("how", ["truncated", "garbage", "object array", "wrong shape",
                                 "not finite"])
def test_damaged_map_file_is_dropped_and_recomputed(tmp_path, how):
    X = _vectors()
    texts = [f"q{i}" for i in range(len(X))]
    job = maps.start_map(X, texts, "e", method="pca", folder=tmp_path / "maps")
    good = _finish(job)
    assert good is not None
    _damage(job.coords_path, how, tmp_path)
    with pytest.warns(RuntimeWarning, match="unusable map cache file"):
        assert job.coords() is None
    assert not job.coords_path.exists() and not (tmp_path / "pwned").exists()
    assert job.status()["state"] == "missing"  # the old "done" status no longer counts
    again = maps.start_map(X, texts, "e", method="pca", folder=tmp_path / "maps")
    np.testing.assert_allclose(_finish(again), good)


def test_damaged_status_file_does_not_stop_a_map(tmp_path):
    X = _vectors()
    texts = [f"q{i}" for i in range(len(X))]
    job = maps.map_job(texts, "e", "pca", folder=tmp_path)
    tmp_path.mkdir(exist_ok=True)
    for bad in ('["not", "a", "dict"]', '{"state": "running", "started": "x"}', "{trunc"):
        job.status_path.write_text(bad)
        assert job.status()["state"] == "missing"
    job = maps.start_map(X, texts, "e", method="pca", folder=tmp_path)
    assert _finish(job) is not None and job.status()["state"] == "done"


def test_map_file_that_cannot_be_opened_is_kept(tmp_path, monkeypatch):
    """An OSError (permissions, too many open files) says nothing about the content."""
    X = _vectors()
    texts = [f"q{i}" for i in range(len(X))]
    job = maps.start_map(X, texts, "e", method="pca", folder=tmp_path)
    assert _finish(job) is not None

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(maps.np, "load", refuse)
    with pytest.warns(RuntimeWarning, match="cannot read this map cache file"):
        assert job.coords() is None
    assert job.coords_path.exists()
