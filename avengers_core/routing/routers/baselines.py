"""Comparison routers for the evaluation: best single model, random choice, kNN."""

from __future__ import annotations

import numpy as np

from avengers_core.data.table import RoutingTable
from avengers_core.routing.routers.base import Router, RouterConfig, register


def _train_means(scores: np.ndarray) -> np.ndarray:
    seen = ~np.isnan(scores)
    return np.where(seen, scores, 0.0).sum(0) / np.maximum(seen.sum(0), 1)


@register("best_single")
class BestSingleRouter(Router):
    """Always the model with the best mean score on the training table."""

    def __init__(self, models: list[str], means: np.ndarray):
        self.models, self.means = models, means

    @classmethod
    def fit(cls, table: RoutingTable, x: np.ndarray, config: RouterConfig) -> BestSingleRouter:
        return cls(table.models, _train_means(table.scores))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.tile(self.means, (len(x), 1))


@register("random")
class RandomRouter(Router):
    """A uniformly random model per query (seeded)."""

    def __init__(self, models: list[str], seed: int):
        self.models, self.seed = models, seed

    @classmethod
    def fit(cls, table: RoutingTable, x: np.ndarray, config: RouterConfig) -> RandomRouter:
        return cls(table.models, config.seed)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.random.default_rng(self.seed).random((len(x), len(self.models)))


@register("knn")
class KNNRouter(Router):
    """Mean scores of the `k` most similar training queries (cosine), per model."""

    def __init__(self, models: list[str], x: np.ndarray, scores: np.ndarray, k: int = 20):
        self.models, self.x, self.scores, self.k = models, x, scores, k

    @classmethod
    def fit(cls, table: RoutingTable, x: np.ndarray, config: RouterConfig) -> KNNRouter:
        return cls(table.models, np.asarray(x, dtype=np.float32), table.scores)

    def predict(self, x: np.ndarray) -> np.ndarray:
        sims = np.asarray(x, dtype=np.float32) @ self.x.T
        k = min(self.k, len(self.x))
        idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        block = self.scores[idx]  # (N, k, M)
        seen = ~np.isnan(block)
        return np.where(seen, block, 0.0).sum(1) / np.maximum(seen.sum(1), 1)
