"""Scoring: the K × M capability profile, each cluster's model ranking, model selection.

`mean[c, j]` is model j's raw accuracy on the training queries of cluster c (the paper's
profile). Small clusters give noisy accuracies, so routing uses scores shrunk toward a prior
with strength `shrinkage` (0 = the paper's raw accuracies): each model's global mean, or
(`task_prior`) the query's task mixture, Σ_t P(task t | query) · model accuracy on task t.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class CapabilityProfile:
    """Per-cluster, per-model score sums and counts (missing scores are not counted)."""

    models: list[str]
    sums: np.ndarray  # (K, M)
    count: np.ndarray  # (K, M) int
    cost: np.ndarray | None = None  # (K, M) mean cost per query, NaN where unknown
    shrinkage: float = 0.0
    size: np.ndarray | None = None  # (K,) training queries per cluster

    @classmethod
    def build(
        cls,
        labels: np.ndarray,
        scores: np.ndarray,
        k: int,
        models: list[str],
        costs: np.ndarray | None = None,
        shrinkage: float = 0.0,
    ) -> CapabilityProfile:
        """Accumulate each cluster's scores (and costs) from the labelled training rows."""
        seen = ~np.isnan(scores)
        onehot = np.zeros((k, len(labels)))
        onehot[labels, np.arange(len(labels))] = 1.0
        sums = onehot @ np.where(seen, scores, 0.0)
        count = (onehot @ seen).astype(int)
        cost = None
        if costs is not None:
            cseen = ~np.isnan(costs)
            csum = onehot @ np.where(cseen, costs, 0.0)
            ccnt = onehot @ cseen
            with np.errstate(invalid="ignore", divide="ignore"):
                cost = np.where(ccnt > 0, csum / ccnt, np.nan)
        size = np.bincount(labels, minlength=k)
        return cls(list(models), sums, count, cost, float(shrinkage), size)

    @property
    def k(self) -> int:
        return self.sums.shape[0]

    @property
    def mean(self) -> np.ndarray:
        """Raw accuracy per cluster and model (NaN where a model has no score there)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, self.sums / np.maximum(self.count, 1), np.nan)

    @property
    def global_mean(self) -> np.ndarray:
        """Each model's accuracy over all training queries."""
        n = self.count.sum(axis=0)
        return np.where(n > 0, self.sums.sum(axis=0) / np.maximum(n, 1), 0.0)

    def shrunk(self, idx: np.ndarray, prior: np.ndarray,
               shrinkage: float | None = None) -> np.ndarray:
        """(N, k, M) scores of clusters `idx` (N, k), each shrunk toward its query's own
        prior (N, M): (sums + τ·prior) / (count + τ). τ = 0 gives the raw accuracy (NaN
        where a model was never scored in the cluster), as `scores`."""
        tau = self.shrinkage if shrinkage is None else shrinkage
        if tau <= 0:
            return self.mean[idx]
        return (self.sums[idx] + tau * prior[:, None, :]) / (self.count[idx] + tau)

    def scores(self, shrinkage: float | None = None) -> np.ndarray:
        """Routing scores: (sums + τ·global) / (count + τ); τ = 0 gives raw accuracy.

        With τ = 0 a model never scored in a cluster gets NaN (ranked last).
        """
        tau = self.shrinkage if shrinkage is None else shrinkage
        if tau <= 0:
            return self.mean
        return (self.sums + tau * self.global_mean) / (self.count + tau)

    def ranking(self, cluster: int, shrinkage: float | None = None) -> list[int]:
        """Model indices of one cluster, best first."""
        s = np.nan_to_num(self.scores(shrinkage)[cluster], nan=-1.0)
        return list(np.argsort(-s, kind="stable"))


def ranks(values: np.ndarray) -> np.ndarray:
    """Per-row rank of each column, 0 = best (NaN ranked last; ties by column order)."""
    order = np.argsort(-np.nan_to_num(values, nan=-np.inf), axis=1, kind="stable")
    out = np.empty_like(order)
    rows = np.arange(values.shape[0])[:, None]
    out[rows, order] = np.arange(values.shape[1])[None, :]
    return out


def cost_aware(perf: np.ndarray, cost: np.ndarray | None, alpha: float) -> np.ndarray:
    """Avengers-Pro: α·perf + (1 − α)·(1 − cost), both min-max normalised inside each cluster.

    `perf` and `cost` are (..., M): the last axis is the models (a cluster's row)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if cost is None or alpha >= 1.0:
        return perf

    def minmax(a: np.ndarray) -> np.ndarray:
        lo = np.nanmin(a, axis=-1, keepdims=True)
        hi = np.nanmax(a, axis=-1, keepdims=True)
        span = np.where(hi - lo > 0, hi - lo, 1.0)
        return np.nan_to_num((a - lo) / span, nan=0.0)

    return alpha * minmax(perf) + (1.0 - alpha) * (1.0 - minmax(cost))


def select_models(profile: CapabilityProfile, n: int, shrinkage: float | None = None) -> list[str]:
    """The paper's automatic selection: models by how often they rank first, then second, …"""
    r = ranks(profile.scores(shrinkage))
    m = len(profile.models)
    counts = np.stack([(r == pos).sum(axis=0) for pos in range(m)], axis=1)  # (M, positions)
    order = sorted(range(m), key=lambda j: tuple(-counts[j]) + (-profile.global_mean[j],))
    return [profile.models[j] for j in order[: max(1, n)]]


@dataclass
class TaskPrior:
    """The task level of the evidence: which task a query looks like, and how each model
    does on each task.

    A multinomial logistic regression on the query vectors gives P(task | query) (T tasks);
    the prior of a query is Σ_t P(t | query) · accuracy of each model on task t (T × M, from
    the training table). Issue 15: with the true task label this prior alone scores 0.662
    held out on the demo table, the clusters' own profile 0.638.
    """

    tasks: list[str]
    coef: np.ndarray  # (T, d) logistic-regression weights
    intercept: np.ndarray  # (T,)
    sums: np.ndarray  # (T, M) score sums per task
    count: np.ndarray  # (T, M) scored queries per task

    C = 10.0  # inverse regularisation of the task classifier (issue 15: 1, 10, 100 within noise)
    FIT_ROWS = 100_000  # issue 13: the classifier learns from a seeded sample of this many

    @classmethod
    def fit(cls, x: np.ndarray, tasks: list[str] | None, scores: np.ndarray,
            seed: int = 0, init: TaskPrior | None = None) -> TaskPrior | None:
        """Fit on training vectors (N, d), their task labels and (N, M) scores.

        `init` (a prior fitted on the same tasks) warm-starts the classifier. None when
        fewer than two tasks have at least two queries (no task level then). A cold fit
        is remembered for the process (the last few inputs): the classifier does not
        depend on K, so a refit at another K (the app's K slider) reuses it."""
        if init is not None:
            return cls._fit(x, tasks, scores, seed, init)
        key = _digest(x, tasks, scores, seed)
        if key not in _TASK_PRIORS:
            if len(_TASK_PRIORS) >= 4:
                _TASK_PRIORS.pop(next(iter(_TASK_PRIORS)))
            _TASK_PRIORS[key] = cls._fit(x, tasks, scores, seed, None)
        return _TASK_PRIORS[key]

    @classmethod
    def _fit(cls, x: np.ndarray, tasks: list[str] | None, scores: np.ndarray,
             seed: int, init: TaskPrior | None) -> TaskPrior | None:
        from sklearn.linear_model import LogisticRegression
        from threadpoolctl import threadpool_limits

        if tasks is None:
            return None
        labels = np.array([t or "" for t in tasks])
        names, counts = np.unique(labels, return_counts=True)
        if (counts >= 2).sum() < 2:
            return None
        keep = np.isin(labels, names[counts >= 2])
        names = names[counts >= 2]
        rows = np.flatnonzero(keep)
        if len(rows) > cls.FIT_ROWS:  # T × d weights need no more; a 1M table takes minutes
            rng = np.random.default_rng(seed)
            rows = np.sort(rng.choice(rows, cls.FIT_ROWS, replace=False))
        with threadpool_limits(limits=1, user_api="blas"):
            clf = LogisticRegression(C=cls.C, tol=1e-3, max_iter=200, random_state=seed)
            if init is not None and init.tasks == [str(t) for t in names] and len(names) > 2:
                clf.set_params(warm_start=True)
                clf.coef_, clf.intercept_ = init.coef.astype(float), init.intercept.astype(float)
            clf.fit(np.asarray(x[rows], dtype=np.float64), labels[rows])
        onehot = (labels[keep][None, :] == clf.classes_[:, None]).astype(float)
        seen = ~np.isnan(scores[keep])
        sums = onehot @ np.where(seen, scores[keep], 0.0)
        count = onehot @ seen
        coef, intercept = clf.coef_, clf.intercept_
        if len(clf.classes_) == 2:  # scikit-learn keeps one row for two classes
            coef = np.vstack([-coef[0] / 2, coef[0] / 2])
            intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
        return cls([str(t) for t in clf.classes_], coef.astype(np.float32),
                   intercept.astype(np.float32), sums, count.astype(int))

    def proba(self, x: np.ndarray) -> np.ndarray:
        """(N, T) P(task | query) for query vectors (N, d)."""
        z = np.asarray(x, dtype=np.float32) @ self.coef.T + self.intercept
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def accuracy(self, global_mean: np.ndarray) -> np.ndarray:
        """(T, M) each model's accuracy per task; its global mean where never scored."""
        return np.where(self.count > 0, self.sums / np.maximum(self.count, 1), global_mean)

    def prior(self, x: np.ndarray, global_mean: np.ndarray) -> np.ndarray:
        """(N, M) expected accuracy of each model under the query's task mixture."""
        return self.proba(x) @ self.accuracy(global_mean)


_TASK_PRIORS: dict[str, TaskPrior | None] = {}


def _digest(x: np.ndarray, tasks: list[str] | None, scores: np.ndarray, seed: int) -> str:
    """A key for one task-prior fit: the bytes of its inputs."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    for part in (np.ascontiguousarray(x), np.ascontiguousarray(scores)):
        h.update(str(part.shape).encode() + part.dtype.str.encode())
        h.update(part.tobytes())
    h.update(repr((tasks, seed)).encode())
    return h.hexdigest()
