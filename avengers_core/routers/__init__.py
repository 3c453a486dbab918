"""Routers beside the recipe (issue 15), one module each, registered by name in
`avengers_core.route.ROUTERS` when imported: `logreg`, `mlp`, `lowrank` (learned on the
query vectors), `evidence` (nearest neighbours shrunk toward the recipe) and `auto` (picks
one of them per table by inner cross-validation)."""

from avengers_core.routers import auto, evidence, logreg, lowrank, mlp  # noqa: F401
