"""Clustering: K-means (k-means++, seeded) over L2-normalised query embeddings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avengers_core.embed import normalise
from avengers_core.errors import InputError

DEFAULT_K = 64


@dataclass
class Clustering:
    """K unit-norm centroids and each training query's cluster."""

    centroids: np.ndarray  # (K, d) float32, unit norm
    labels: np.ndarray  # (N,) int

    @property
    def k(self) -> int:
        return len(self.centroids)

    def sizes(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.k)


def kmeans(x: np.ndarray, k: int = DEFAULT_K, seed: int = 0, n_init: int = 1) -> Clustering:
    """K-means with k-means++ seeding; centroids are re-normalised for cosine routing."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    if k < 1:
        raise InputError(f"K must be at least 1, got {k}")
    if len(x) < k:
        raise InputError(f"{len(x)} queries but K = {k} clusters asked for (expected N >= K)")
    km = KMeans(n_clusters=k, init="k-means++", n_init=n_init, random_state=seed)
    # One BLAS thread: k-means++ seeding does many small matrix products, and two BLAS
    # threads waiting on each other run 2-10x slower when another program (Ollama, a
    # browser) holds a core; quiet, the difference is within noise (BENCHMARKS.md).
    with threadpool_limits(limits=1, user_api="blas"):
        labels = km.fit_predict(normalise(x))
    return Clustering(centroids=normalise(km.cluster_centers_), labels=labels.astype(int))
