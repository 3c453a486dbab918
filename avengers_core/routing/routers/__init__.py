"""Routers, one module each, registered by name in :data:`ROUTERS` as soon as this package
is imported: `avengers` (the recipe), `baselines` (oracle, random, best single model, …),
`logreg`, `mlp`, `lowrank` (learned on the query vectors), `evidence` (nearest neighbours
shrunk toward the recipe) and `auto` (picks one per table by inner cross-validation).

To add a router: write `routing/routers/<name>.py` with a :class:`Router` subclass decorated
with ``@register("<name>")`` (``fit(table, x, config)`` and ``predict(x) -> (n, M)`` scores),
import the module below, and add a test in `tests/routing/`.
"""

from avengers_core.routing.routers import (  # noqa: F401  (each module registers itself)
    auto,
    avengers,
    baselines,
    evidence,
    logreg,
    lowrank,
    mlp,
)
from avengers_core.routing.routers.avengers import AvengersRouter
from avengers_core.routing.routers.base import ROUTERS, Router, RouterConfig, RouteResult, register

__all__ = ["ROUTERS", "AvengersRouter", "RouteResult", "Router", "RouterConfig", "register"]
