"""Evidence at every level (issue 15): a query's nearest training queries, shrunk toward
the recipe's score for it (its clusters, themselves shrunk toward the global or task prior).

score_m(q) = (Σ_{i ∈ kNN(q)} s_im + τ_n · recipe_m(q)) / (n_m(q) + τ_n): an empirical-Bayes
blend of the kNN baseline and the recipe; τ_n is chosen by cross-validation on the training
table with the recipe's own criterion (best mean within one paired standard error, then the
strongest τ_n, i.e. the recipe).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from avengers_core.data.table import RoutingTable
from avengers_core.routing.routers.avengers import AvengersRouter
from avengers_core.routing.routers.base import Router, RouterConfig, register
from avengers_core.routing.score import CapabilityProfile, TaskPrior

NEIGHBOURS = 30
GRID = (5.0, 20.0, 50.0, 1e6)  # 1e6 ≈ the recipe alone


def _knn(xq: np.ndarray, xs: np.ndarray, scores: np.ndarray, k: int):
    """Score sums and counts (N, M) over each query's k most similar rows of `xs`."""
    sims = np.asarray(xq, dtype=np.float32) @ np.asarray(xs, dtype=np.float32).T
    k = min(k, len(xs))
    idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    block = scores[idx]
    seen = ~np.isnan(block)
    return np.where(seen, block, 0.0).sum(1), seen.sum(1)


def _blend(sums: np.ndarray, count: np.ndarray, base: np.ndarray, tau: float) -> np.ndarray:
    return (sums + tau * base) / (count + tau)


@register("evidence")
class EvidenceRouter(Router):
    """kNN scores shrunk toward the fitted recipe's fused scores."""

    def __init__(self, base: AvengersRouter, x: np.ndarray, scores: np.ndarray, tau: float):
        self.base, self.x, self.scores, self.tau = base, x, scores, tau
        self.models = base.models

    @classmethod
    def fit(cls, table: RoutingTable, x: np.ndarray, config: RouterConfig) -> EvidenceRouter:
        base = AvengersRouter.fit(table, x, config)
        x = np.asarray(x, dtype=np.float32)
        return cls(base, x, table.scores, choose_tau(table, x, base))

    def predict(self, x: np.ndarray) -> np.ndarray:
        sums, count = _knn(x, self.x, self.scores, NEIGHBOURS)
        return _blend(sums, count, self.base.predict(x), self.tau)


def choose_tau(table: RoutingTable, x: np.ndarray, base: AvengersRouter, folds: int = 5) -> float:
    """τ_n by 5-fold cross-validation on the training table (clustering held fixed; each
    fold's profile, task classifier and neighbours come from the other folds)."""
    from avengers_core.routing.routers.common import routed_score

    rng = np.random.default_rng(base.config.seed)
    fold = rng.integers(0, folds, len(table))
    got = np.zeros((len(GRID), len(table)))
    for f in range(folds):
        train, test = fold != f, fold == f
        if not test.any() or not train.any():
            continue
        prof = CapabilityProfile.build(
            base.labels[train], table.scores[train], len(base.centroids), table.models,
            None if table.costs is None else table.costs[train], base.config.shrinkage)
        tp = None
        if base.task_prior is not None:
            tp = TaskPrior.fit(x[train], list(np.array(table.tasks)[train]),
                               table.scores[train], base.config.seed, init=base.task_prior)
        r = AvengersRouter(base.centroids, prof, replace(base.config), task_prior=tp)
        sums, count = _knn(x[test], x[train], table.scores[train], NEIGHBOURS)
        pred = r.predict(x[test])
        for g, tau in enumerate(GRID):
            got[g, test] = routed_score(_blend(sums, count, pred, tau), table.scores[test])
    best = int(np.argmax(got.mean(axis=1)))
    diff = got[best] - got
    se = diff.std(axis=1, ddof=1) / np.sqrt(max(len(table), 1))
    return float(max(GRID[g] for g in range(len(GRID)) if diff[g].mean() <= se[g]))
