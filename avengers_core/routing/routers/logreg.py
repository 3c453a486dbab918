"""Per-model logistic regression on the query vectors: P(model j is right | query).

As vLLM Semantic Router's learned selectors: one binary classifier per model; a fractional
score s counts as a right answer with weight s and a wrong one with weight 1 − s.
"""

from __future__ import annotations

import numpy as np

from avengers_core.data.table import RoutingTable
from avengers_core.routing.routers.base import Router, RouterConfig, register

C = 1.0  # scikit-learn's default regularisation (issue 15: 0.3-10 within noise)


@register("logreg")
class LogRegRouter(Router):
    """One logistic regression per model; prefers the highest P(right)."""

    def __init__(self, models: list[str], coef: np.ndarray, intercept: np.ndarray):
        self.models, self.coef, self.intercept = models, coef, intercept  # (M, d), (M,)

    @classmethod
    def fit(cls, table: RoutingTable, x: np.ndarray, config: RouterConfig) -> LogRegRouter:
        from sklearn.linear_model import LogisticRegression

        m = len(table.models)
        coef, intercept = np.zeros((m, x.shape[1])), np.zeros(m)
        for j in range(m):
            seen = ~np.isnan(table.scores[:, j])
            y = table.scores[seen, j]
            xs = np.vstack([x[seen], x[seen]])
            label = np.r_[np.ones(len(y)), np.zeros(len(y))]
            weight = np.r_[y, 1.0 - y]
            keep = weight > 0
            if len(np.unique(label[keep])) < 2:  # always right or always wrong
                intercept[j] = 10.0 if label[keep].mean() > 0.5 else -10.0
                continue
            lr = LogisticRegression(C=C, tol=1e-3, max_iter=200, random_state=config.seed)
            lr.fit(xs[keep], label[keep], sample_weight=weight[keep])
            coef[j], intercept[j] = lr.coef_[0], lr.intercept_[0]
        return cls(table.models, coef, intercept)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(N, M) log-odds that each model answers right (monotone in P)."""
        return np.asarray(x, dtype=float) @ self.coef.T + self.intercept
