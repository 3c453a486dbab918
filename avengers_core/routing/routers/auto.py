"""`auto`: the router for a table chosen by inner cross-validation on its training part.

Each candidate is fitted on two thirds of the training table and scored on the last third,
three times; the recipe ("avengers") is kept unless another candidate's mean routed score
beats it by more than one paired standard error (issue 15: the recipe stays the default
unless a learned router wins the inner cross-validation).
"""

from __future__ import annotations

import numpy as np

from avengers_core.data.table import RoutingTable
from avengers_core.routing.routers.base import ROUTERS, Router, RouterConfig, register
from avengers_core.routing.routers.common import routed_score

CANDIDATES = ("avengers", "evidence", "logreg", "mlp", "lowrank", "knn")
FOLDS = 3


@register("auto")
class AutoRouter(Router):
    """Whichever of `CANDIDATES` won the inner cross-validation, refitted on the whole table."""

    def __init__(self, chosen: Router, cv: dict[str, float]):
        self.chosen, self.cv, self.models = chosen, cv, chosen.models

    @classmethod
    def fit(cls, table: RoutingTable, x: np.ndarray, config: RouterConfig) -> AutoRouter:
        from avengers_core.routing.routers import baselines  # noqa: F401  (registers knn)

        rng = np.random.default_rng(config.seed)
        fold = rng.integers(0, FOLDS, len(table))
        got = np.zeros((len(CANDIDATES), len(table)))
        for f in range(FOLDS):
            tr, te = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
            sub = table.subset(tr)
            for c, name in enumerate(CANDIDATES):
                r = ROUTERS[name].fit(sub, x[tr], config)
                got[c, te] = routed_score(r.predict(x[te]), table.scores[te])
        diff = got - got[0]  # against the recipe, query by query
        se = diff.std(axis=1, ddof=1) / np.sqrt(max(len(table), 1))
        gain = diff.mean(axis=1) - se
        pick = int(np.argmax(gain)) if gain.max() > 0 else 0
        cv = {n: float(v) for n, v in zip(CANDIDATES, got.mean(axis=1))}
        return cls(ROUTERS[CANDIDATES[pick]].fit(table, x, config), cv)

    @property
    def choice(self) -> str:
        return self.chosen.name

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.chosen.predict(x)
