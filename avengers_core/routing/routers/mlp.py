"""A small multi-output MLP regressing every model's score on the query vector
(scikit-learn's MLPRegressor; vLLM Semantic Router's `mlp` selector is of this kind)."""

from __future__ import annotations

import numpy as np

from avengers_core.data.table import RoutingTable
from avengers_core.routing.routers.base import Router, RouterConfig, register
from avengers_core.routing.routers.common import filled_targets

HIDDEN, ALPHA = 64, 1e-2  # one hidden layer, L2 penalty; early stopping on 10 % of train


@register("mlp")
class MLPRouter(Router):
    """Predicted score per model from one hidden layer of `HIDDEN` units."""

    def __init__(self, models: list[str], net):
        self.models, self.net = models, net

    @classmethod
    def fit(cls, table: RoutingTable, x: np.ndarray, config: RouterConfig) -> MLPRouter:
        from sklearn.neural_network import MLPRegressor

        net = MLPRegressor(hidden_layer_sizes=(HIDDEN,), alpha=ALPHA, max_iter=200,
                           early_stopping=True, random_state=config.seed)
        return cls(table.models, net.fit(x, filled_targets(table.scores)))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.net.predict(x)).reshape(len(x), -1)
