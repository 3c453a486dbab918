"""A low-rank query × model factorisation in the style of EmbedLLM (Zhuang et al., 2024):
score(q, m) ≈ ⟨W·x_q, v_m⟩ + b_m, with a rank-r query map W and model vectors v_m.

Fitted in closed form as reduced-rank ridge regression: the ridge solution B (d × M) is
projected on the top r right-singular vectors of the fitted scores X·B.
"""

from __future__ import annotations

import numpy as np

from avengers_core.data.table import RoutingTable
from avengers_core.routing.routers.base import Router, RouterConfig, register
from avengers_core.routing.routers.common import filled_targets

RANK, RIDGE = 4, 10.0  # r model dimensions; ridge penalty on the query map


@register("lowrank")
class LowRankRouter(Router):
    """Predicted score = x·W·V + b, W (d × r), V (r × M)."""

    def __init__(self, models: list[str], w: np.ndarray, v: np.ndarray, bias: np.ndarray):
        self.models, self.w, self.v, self.bias = models, w, v, bias

    @classmethod
    def fit(cls, table: RoutingTable, x: np.ndarray, config: RouterConfig) -> LowRankRouter:
        y = filled_targets(table.scores)
        bias = y.mean(axis=0)
        x = np.asarray(x, dtype=float)
        xm = x.mean(axis=0)
        xc = x - xm
        b = np.linalg.solve(xc.T @ xc + RIDGE * np.eye(x.shape[1]), xc.T @ (y - bias))
        _, _, vt = np.linalg.svd(xc @ b, full_matrices=False)
        v = vt[: min(RANK, len(vt))]  # (r, M) model vectors
        w = b @ v.T  # (d, r) query map
        return cls(table.models, w, v, bias - xm @ w @ v)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=float) @ self.w @ self.v + self.bias
