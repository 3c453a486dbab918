"""The router interface, its registry and the recipe's configuration.

:class:`Router` (fit on a table and its query vectors, predict an (n, M) score matrix),
:data:`ROUTERS` filled by ``@register(name)`` (lm-evaluation-harness style), :class:`RouterConfig`
(K, top-k, β, the prior and its strength τ, α, top-n) and :class:`RouteResult` (one decision)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from avengers_core.data.table import RoutingTable
from avengers_core.errors import InputError
from avengers_core.routing.cluster import DEFAULT_K
from avengers_core.routing.explain import Explanation

PRIORS = ("global", "task")  # what cluster scores shrink toward; "auto" = chosen by CV


class Router(ABC):
    """Fit on a routing table and its query vectors; prefer models for new query vectors."""

    name: str = "router"
    models: list[str]

    @classmethod
    @abstractmethod
    def fit(cls, table: RoutingTable, x: np.ndarray, config: RouterConfig) -> Router: ...

    @abstractmethod
    def predict(self, x: np.ndarray) -> np.ndarray:
        """(N, M) preference per model; the router picks the argmax."""


ROUTERS: dict[str, type[Router]] = {}


def register(name: str):
    """Class decorator adding a router to the registry under `name`."""

    def wrap(cls: type[Router]) -> type[Router]:
        cls.name = name
        ROUTERS[name] = cls
        return cls

    return wrap


@dataclass
class RouterConfig:
    """Every knob of the recipe. Defaults come from the held-out evaluation (BENCHMARKS.md)."""

    k: int = DEFAULT_K
    seed: int = 0
    top_k: int = 3  # clusters fused per query (the paper's code: 3; its text: 1)
    beta: float = 6.0  # softmax temperature over cosine distance (the paper's code: 6)
    top_n: int = 1  # models chosen per query
    shrinkage: float | str = "auto"  # prior strength toward the prior; 0 = paper exact
    prior: str = "auto"  # "global" mean, the query's "task" mixture, or "auto" (CV, issue 15)
    fusion: str = "score"  # "score": Σ p·score; "rank": the paper's Σ p/(rank + 0.1)
    alpha: float = 1.0  # Avengers-Pro trade-off: 1 = performance only, 0 = cost only
    n_models: int | None = None  # restrict to the paper's automatic selection of N models

    @classmethod
    def paper(cls, **kw) -> RouterConfig:
        """Exactly as the paper's text: nearest cluster, raw accuracies, its top model."""
        base = dict(top_k=1, shrinkage=0.0, fusion="rank", prior="global")
        base.update(kw)
        return cls(**base)

    def validate(self) -> RouterConfig:
        if self.k < 1:
            raise InputError(f"K must be >= 1, got {self.k}")
        if self.top_k < 1:
            raise InputError(f"top-k must be >= 1, got {self.top_k}")
        if self.top_n < 1:
            raise InputError(f"top-n must be >= 1, got {self.top_n}")
        if self.beta < 0:
            raise InputError(f"beta must be >= 0, got {self.beta}")
        if not 0.0 <= self.alpha <= 1.0:
            raise InputError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.fusion not in ("score", "rank"):
            raise InputError(f"fusion must be 'score' or 'rank', got {self.fusion!r}")
        if self.prior not in (*PRIORS, "auto"):
            raise InputError(f"prior must be 'global', 'task' or 'auto', got {self.prior!r}")
        if self.shrinkage != "auto" and float(self.shrinkage) < 0:
            raise InputError(f"shrinkage must be 'auto' or >= 0, got {self.shrinkage}")
        return self


@dataclass
class RouteResult:
    """One routing decision, with what is needed to explain it on screen.

    `explanation` is the structured explanation built by the router that decided
    (`routing.explain.Explanation`); every view renders from it."""

    cluster: int
    clusters: list[dict]  # [{"id", "p", "similarity"}], nearest first
    scores: dict[str, float]  # model → fused score
    models: list[str]  # chosen top-n, best first
    ranking: list[str]  # every model, best first
    task: str | None  # most common task of the nearest cluster
    details: list[dict] = field(default_factory=list)  # per cluster: size, tasks, per-model stats
    explanation: Explanation | None = None

    def to_dict(self) -> dict:
        """The decision as plain JSON types (the explanation as `Explanation.to_json`)."""
        out = asdict(self)
        out["explanation"] = None if self.explanation is None else self.explanation.to_json()
        return out

    def reason(self, label: str | None = None, escape: Callable[[str], str] = str) -> str:
        """A plain-language reason for the top choice, from the explanation's numbers only
        (`Explanation.reason`). `label` names the nearest cluster when the explanation has
        no label; `escape` is applied to every piece of data (model, task, label), e.g.
        Markdown escaping in the app. ValueError for a result without an explanation."""
        if self.explanation is None:
            raise ValueError("this route result carries no explanation")
        expl = self.explanation
        if label is not None and expl.clusters and expl.clusters[0].label is None:
            expl = replace(expl, clusters=[replace(expl.clusters[0], label=label),
                                           *expl.clusters[1:]])
        return expl.reason(escape)


def at_most_one(value: float) -> float:
    """`value` as a Python float, rounding error above 1 removed: a probability, a cosine
    or a score in [0, 1] computed in float32 can come out as 1.0000000149 (issue 22)."""
    return min(float(value), 1.0)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
