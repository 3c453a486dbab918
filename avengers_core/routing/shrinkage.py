"""The prior's strength τ (shrinkage) and the prior itself, chosen by cross-validation.

A cluster's score for a model is shrunk toward a prior: the model's global mean (the
recipe's, Zhang et al. 2025 §3 with τ = 0 as in the paper) or its accuracy on the query's
predicted task mixture (the task prior). τ is the number of pseudo-queries the prior is
worth: effective = (n·raw + τ·prior) / (n + τ). Which prior and which τ is decided here on
the training table, with the clustering held fixed (issues 8, 13 and 15).

The router class is passed in (`router_cls`, normally `AvengersRouter`) so that this module
does not import the recipe that calls it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from avengers_core.routing.score import (
    CapabilityProfile,
    TaskPrior,
)

if TYPE_CHECKING:  # annotations only: the recipe imports this module
    from avengers_core.data.table import RoutingTable
    from avengers_core.routing.routers.base import RouterConfig

SHRINKAGE_GRID = (0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 1000.0)  # 1000 ≈ the prior alone
CV_ROWS = 50_000  # issue 13: queries scored per fold at most (a seeded sample of the fold)


def choose_shrinkage(
    table: RoutingTable,
    x: np.ndarray,
    centroids: np.ndarray,
    labels: np.ndarray,
    config: RouterConfig,
    task_prior: TaskPrior | None = None,
    grid: tuple[float, ...] = SHRINKAGE_GRID,
    folds: int = 5,
    *,
    router_cls: Any,
) -> float:
    """Prior strength τ chosen by cross-validation for the configured prior (`choose_evidence`
    with the prior fixed; "auto" counts as "global" unless `task_prior` is given).
    `router_cls`: the router whose routing is cross-validated (`AvengersRouter`)."""
    prior = config.prior if config.prior != "auto" or task_prior else "global"
    cfg = replace(config, prior=prior, shrinkage="auto")
    return choose_evidence(table, x, centroids, labels, cfg, task_prior, grid, folds,
                           router_cls=router_cls)[1]


def choose_evidence(
    table: RoutingTable,
    x: np.ndarray,
    centroids: np.ndarray,
    labels: np.ndarray,
    config: RouterConfig,
    task_prior: TaskPrior | None = None,
    grid: tuple[float, ...] = SHRINKAGE_GRID,
    folds: int = 5,
    *,
    router_cls: Any,
) -> tuple[str, float]:
    """The prior ("global" or "task") and its strength τ, chosen by cross-validated routed
    score on the training table (whichever of the two config leaves at "auto").

    The clustering is held fixed; each fold's profile, and its task classifier, are rebuilt
    from the other folds (the classifier warm-started from `task_prior`), and the fold's
    queries are routed with the configured top-k, β and fusion (on a large table, a seeded
    sample of `CV_ROWS` of them per fold, and the fold's classifier from the sample
    `TaskPrior.FIT_ROWS` of its training rows; the profile counts every row: issue 13).
    One criterion picks both:
    the candidates whose mean score is within one paired standard error of the best are
    kept, then the recipe's global prior is preferred over the task prior, and the strongest
    τ over weaker ones: a difference smaller than the noise does not justify the extra level,
    nor trusting small clusters over the prior (issue 15).
    """
    priors = [config.prior] if config.prior != "auto" else ["global", "task"]
    if task_prior is None:
        priors = [p for p in priors if p == "global"] or ["global"]
    taus = grid if config.shrinkage == "auto" else (float(config.shrinkage),)
    cands = [(p, t) for p in priors for t in taus]
    rng = np.random.default_rng(config.seed)
    fold = rng.integers(0, folds, len(table))
    filled = np.nan_to_num(table.scores, nan=0.0)
    tasks = np.array(table.tasks) if table.tasks is not None else None
    scored: list[np.ndarray] = []
    for f in range(folds):
        train, rows = fold != f, np.flatnonzero(fold == f)
        if not len(rows) or not train.any():
            continue
        if len(rows) > CV_ROWS:
            rows = np.sort(rng.choice(rows, CV_ROWS, replace=False))
        scored.append(rows)
    got = np.zeros((len(cands), len(table)))
    for f, rows in zip(range(folds), scored):
        train = fold != f
        base = CapabilityProfile.build(
            labels[train], table.scores[train], len(centroids), table.models,
            None if table.costs is None else table.costs[train],
        )
        fold_prior = None
        if "task" in priors:
            fit = np.flatnonzero(train)
            if len(fit) > TaskPrior.FIT_ROWS:
                fit = np.sort(rng.choice(fit, TaskPrior.FIT_ROWS, replace=False))
            fold_prior = TaskPrior.fit(x[fit], list(tasks[fit]), table.scores[fit],
                                       config.seed, init=task_prior)
        xt = x[rows]
        near = router_cls(centroids, base, config).nearest(xt)  # same for all
        for g, (prior, tau) in enumerate(cands):
            prof = replace(base, shrinkage=tau)
            cfg = replace(config, shrinkage=tau, prior=prior)
            r = router_cls(centroids, prof, cfg, task_prior=fold_prior)
            got[g, rows] = filled[rows, r.predict(xt, near).argmax(axis=1)]
    used = np.concatenate(scored) if scored else np.arange(0)
    got = got[:, np.sort(used)] if len(used) < len(table) else got
    best = int(np.argmax(got.mean(axis=1)))
    diff = got[best] - got
    n = got.shape[1]
    se = diff.std(axis=1, ddof=1) / np.sqrt(n) if n > 1 else np.zeros(len(cands))
    ok = [g for g in range(len(cands)) if diff[g].mean() <= se[g]]
    prior = next(p for p in priors if any(cands[g][0] == p for g in ok))
    tau = max(cands[g][1] for g in ok if cands[g][0] == prior)
    return prior, float(tau)
