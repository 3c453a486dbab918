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

    if k < 1:
        raise InputError(f"K must be at least 1, got {k}")
    if len(x) < k:
        raise InputError(f"{len(x)} queries but K = {k} clusters asked for (expected N >= K)")
    km = KMeans(n_clusters=k, init="k-means++", n_init=n_init, random_state=seed)
    labels = km.fit_predict(normalise(x))
    return Clustering(centroids=normalise(km.cluster_centers_), labels=labels.astype(int))
