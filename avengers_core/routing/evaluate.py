"""Held-out evaluation: the router against best single, random, kNN and the oracle.

The table is already deduplicated on load, so the split (inside each task, seeded) cannot
leak a question into both halves. A router's score on a query is the score of the model it
picks among those evaluated on that query; missing scores never count as failures.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from avengers_core.data.table import RoutingTable
from avengers_core.errors import InputError
from avengers_core.routing.routers import baselines  # noqa: F401  (registers the comparison routers)
from avengers_core.routing.routers.avengers import AvengersRouter
from avengers_core.routing.routers.base import ROUTERS, Router, RouterConfig
from avengers_core.routing.shrinkage import choose_shrinkage

Progress = Callable[[int, int, str], None]
METHODS = ("router", "paper", "best_single", "knn", "random", "oracle")


def split(table: RoutingTable, test_size: float = 0.3, seed: int = 0):
    """Train and test row indices, drawn inside each task (seeded)."""
    if not 0.0 < test_size < 1.0:
        raise InputError(f"test size must be in (0, 1), got {test_size}")
    rng = np.random.default_rng(seed)
    groups = np.array(table.tasks if table.tasks is not None else [""] * len(table))
    train, test = [], []
    for g in np.unique(groups):
        idx = rng.permutation(np.flatnonzero(groups == g))
        n_test = int(round(len(idx) * test_size))
        if len(idx) > 1:
            n_test = min(max(n_test, 1), len(idx) - 1)
        test.extend(idx[:n_test])
        train.extend(idx[n_test:])
    return np.sort(np.array(train, dtype=int)), np.sort(np.array(test, dtype=int))


def halves(table: RoutingTable, test_size: float, seed: int):
    """(train table, test table, train rows, test rows) of the seeded split.

    Test queries that no model was scored on are left out: they say nothing about routing.
    """
    tr, te = split(table, test_size, seed)
    te = te[~np.isnan(table.scores[te]).all(axis=1)]
    return table.subset(tr), table.subset(te), tr, te


def picks(router: Router, x: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The model index each query goes to, among the models evaluated on it."""
    pref = np.where(np.isnan(scores), -np.inf, router.predict(x))
    return pref.argmax(axis=1)


def picked_scores(pick: np.ndarray, scores: np.ndarray) -> np.ndarray:
    return np.nan_to_num(scores[np.arange(len(pick)), pick], nan=0.0)


def oracle_scores(scores: np.ndarray) -> np.ndarray:
    """The best score any model got on each query."""
    best = np.where(np.isnan(scores), -np.inf, scores).max(axis=1)
    return np.where(np.isfinite(best), best, 0.0)


def paper_of(router: AvengersRouter) -> AvengersRouter:
    """The paper-exact router on `router`'s clustering.

    K-means is seeded, so this is what fitting `RouterConfig.paper(k, seed)` would give,
    without clustering the same vectors a second time.
    """
    paper = RouterConfig.paper(k=router.config.k, seed=router.config.seed)
    return router.with_config(**vars(paper))


@dataclass
class Split:
    """One seeded train/test split and the router fitted on its training half.

    Made once by `fit_split` and handed to `evaluate` and the sweeps, so they share one
    K-means instead of each clustering the same vectors again.
    """

    train: RoutingTable
    test: RoutingTable
    tr: np.ndarray  # train row indices into the full table
    te: np.ndarray  # test row indices (queries with at least one score)
    router: AvengersRouter
    seed: int
    test_size: float


def fit_split(
    table: RoutingTable,
    x: np.ndarray,
    config: RouterConfig | None = None,
    test_size: float = 0.3,
    seed: int = 0,
) -> Split:
    """The seeded split of `table` and the router (`config`) fitted on its training half."""
    config = replace(config or RouterConfig(), seed=seed)
    train, test, tr, te = halves(table, test_size, seed)
    return Split(train, test, tr, te, AvengersRouter.fit(train, x[tr], config), seed, test_size)


def fit_routers(
    train: RoutingTable,
    x: np.ndarray,
    config: RouterConfig,
    router: AvengersRouter | None = None,
) -> dict[str, Router]:
    """The default router (unless already fitted), the paper-exact one and the baselines."""
    router = router or AvengersRouter.fit(train, x, config)
    return {
        "router": router,
        "paper": paper_of(router),
        "best_single": ROUTERS["best_single"].fit(train, x, config),
        "knn": ROUTERS["knn"].fit(train, x, config),
        "random": ROUTERS["random"].fit(train, x, config),
    }


def evaluate(
    table: RoutingTable,
    x: np.ndarray,
    config: RouterConfig | None = None,
    test_size: float = 0.3,
    seed: int = 0,
    progress: Progress | None = None,
    fitted: Split | None = None,
) -> dict:
    """Mean held-out score of every method, overall and per task.

    `fitted` (a `fit_split` of this table and `x`) supplies the split and the router; its
    seed and test size then replace `seed` and `test_size`.
    """
    if fitted:
        seed, test_size, config = fitted.seed, fitted.test_size, fitted.router.config
    config = replace(config or RouterConfig(), seed=seed)
    if progress:
        progress(0, 2, "fitting routers")
    f = fitted or fit_split(table, x, config, test_size, seed)
    train, test, tr, te = f.train, f.test, f.tr, f.te
    routers = fit_routers(train, x[tr], config, f.router)
    if progress:
        progress(1, 2, "scoring the test split")
    per_query = {name: picked_scores(picks(r, x[te], test.scores), test.scores)
                 for name, r in routers.items()}
    per_query["oracle"] = oracle_scores(test.scores)
    tasks = np.array(test.tasks if test.tasks is not None else [""] * len(test))
    per_task = {
        str(t): {"n": int((tasks == t).sum()),
                 **{m: float(v[tasks == t].mean()) for m, v in per_query.items()}}
        for t in np.unique(tasks)
    }
    best = routers["best_single"]
    result = {m: float(v.mean()) for m, v in per_query.items()}
    result.update(
        n_train=len(train),
        n_test=len(test),
        per_task=per_task,
        best_single_model=best.models[int(np.argmax(best.means))],
        shrinkage=routers["router"].config.shrinkage,
        config={k: v for k, v in vars(routers["router"].config).items()},
        seed=seed,
        test_size=test_size,
    )
    if progress:
        progress(2, 2, "done")
    return result


def sweep_k(
    table: RoutingTable,
    x: np.ndarray,
    ks: list[int],
    config: RouterConfig | None = None,
    test_size: float = 0.3,
    seed: int = 0,
    progress: Progress | None = None,
) -> list[dict]:
    """Held-out score of the default and paper-exact routers for each K (paper's Fig. 3)."""
    config = replace(config or RouterConfig(), seed=seed)
    train, test, tr, te = halves(table, test_size, seed)
    rows = []
    for i, k in enumerate(ks):
        if progress:
            progress(i, len(ks), f"K = {k}")
        router = AvengersRouter.fit(train, x[tr], replace(config, k=k))
        row = {"k": k, "shrinkage": router.config.shrinkage}
        for name, r in (("router", router), ("paper", paper_of(router))):
            row[name] = float(picked_scores(picks(r, x[te], test.scores), test.scores).mean())
        rows.append(row)
    if progress:
        progress(len(ks), len(ks), "done")
    return rows


def sweep_models(
    table: RoutingTable,
    x: np.ndarray,
    ns: list[int] | None = None,
    config: RouterConfig | None = None,
    test_size: float = 0.3,
    seed: int = 0,
    fitted: Split | None = None,
) -> list[dict]:
    """Held-out score when routing among the paper's N automatically selected models (Fig. 2).

    `fitted` (a `fit_split`) replaces `config`, `test_size` and `seed`, as in `evaluate`.
    """
    from avengers_core.routing.score import select_models

    f = fitted or fit_split(table, x, config, test_size, seed)
    test, te, base = f.test, f.te, f.router
    rows = []
    for n in ns or list(range(1, len(table.models) + 1)):
        r = base.with_config(n_models=n)
        score = picked_scores(picks(r, x[te], test.scores), test.scores).mean()
        rows.append({"n": n, "router": float(score), "models": select_models(base.profile, n)})
    return rows


def sweep_alpha(
    table: RoutingTable,
    x: np.ndarray,
    alphas: list[float] | None = None,
    config: RouterConfig | None = None,
    test_size: float = 0.3,
    seed: int = 0,
) -> dict:
    """Score versus mean cost over α (Avengers-Pro), with each single model as a point."""
    if table.costs is None:
        raise InputError(f"{table.source}: the table has no costs (expected cost:<model> data)")
    config = replace(config or RouterConfig(), seed=seed)
    train, test, tr, te = halves(table, test_size, seed)
    base = AvengersRouter.fit(train, x[tr], config)
    cost = np.nan_to_num(test.costs, nan=0.0)
    curve = []
    for a in alphas or [round(v, 2) for v in np.linspace(0, 1, 11)]:
        pick = picks(base.with_config(alpha=a), x[te], test.scores)
        curve.append({
            "alpha": float(a),
            "score": float(picked_scores(pick, test.scores).mean()),
            "cost": float(cost[np.arange(len(pick)), pick].mean()),
        })
    singles = [
        {"model": m, "score": float(np.nanmean(test.scores[:, j])),
         "cost": float(cost[:, j].mean())}
        for j, m in enumerate(test.models)
    ]
    return {"curve": curve, "models": singles}


def sweep_fusion(
    table: RoutingTable,
    x: np.ndarray,
    top_ks: list[int],
    betas: list[float],
    config: RouterConfig | None = None,
    test_size: float = 0.3,
    seed: int = 0,
    fitted: Split | None = None,
) -> list[dict]:
    """Held-out score for each (clusters fused, β) pair on one clustering.

    The shrinkage is chosen by cross-validation for every pair, as `fit` does with 'auto'.
    `fitted` (a `fit_split`) replaces `config`, `test_size` and `seed`, as in `evaluate`.
    """
    f = fitted or fit_split(table, x, config, test_size, seed)
    train, test, tr, te, base = f.train, f.test, f.tr, f.te, f.router
    rows = []
    for top_k in top_ks:
        for beta in betas:
            cfg = replace(base.config, top_k=top_k, beta=beta, shrinkage="auto")
            tau = choose_shrinkage(train, x[tr], base.centroids, base.labels, cfg,
                                   base.task_prior, router_cls=AvengersRouter)
            r = base.with_config(top_k=top_k, beta=beta, shrinkage=tau)
            score = picked_scores(picks(r, x[te], test.scores), test.scores).mean()
            rows.append({"top_k": top_k, "beta": float(beta), "shrinkage": float(tau),
                         "router": float(score)})
    return rows


def sweep_shrinkage(
    table: RoutingTable,
    x: np.ndarray,
    taus: list[float | str],
    config: RouterConfig | None = None,
    test_size: float = 0.3,
    seed: int = 0,
    fitted: Split | None = None,
) -> list[dict]:
    """Held-out score for each prior strength τ (a number, or 'auto' = chosen by CV).

    `fitted` (a `fit_split`) replaces `config`, `test_size` and `seed`, as in `evaluate`.
    """
    f = fitted or fit_split(table, x, config, test_size, seed)
    train, test, tr, te, base = f.train, f.test, f.tr, f.te, f.router
    rows = []
    for tau in taus:
        used = tau
        if tau == "auto":
            used = choose_shrinkage(train, x[tr], base.centroids, base.labels,
                                    replace(base.config, shrinkage="auto"), base.task_prior,
                                    router_cls=AvengersRouter)
        r = base.with_config(shrinkage=float(used))
        score = picked_scores(picks(r, x[te], test.scores), test.scores).mean()
        rows.append({"shrinkage": tau, "used": float(used), "router": float(score)})
    return rows


def vote_accuracy(p: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Chance that a vote over `n` samples is right, when each sample is right with chance `p`.

    Returns (pessimistic, optimistic): pessimistic when every wrong sample gives the same
    wrong answer (the right one needs a strict majority), optimistic when no two wrong
    samples agree (the right one wins with two votes or more). Ties go to the earlier
    answer, as in `vote`, so a tie between t answers is won with chance 1/t.
    """
    if n < 1:
        raise InputError(f"the number of samples must be >= 1, got {n}")
    p = np.asarray(p, dtype=float)
    x = np.arange(n + 1)
    comb = np.array([math.comb(n, int(i)) for i in x], dtype=float)
    pmf = comb * p[..., None] ** x * (1.0 - p[..., None]) ** (n - x)  # P(X = x right)
    pess = pmf[..., x > n / 2].sum(-1)
    if n % 2 == 0:
        pess = pess + 0.5 * pmf[..., n // 2]
    opt = pmf[..., 2:].sum(-1) + pmf[..., 1] / n
    return pess, opt


def simulate_votes(
    table: RoutingTable,
    x: np.ndarray,
    ns: list[int],
    config: RouterConfig | None = None,
    test_size: float = 0.3,
    seed: int = 0,
    tasks: list[str] | None = None,
    fitted: Split | None = None,
) -> dict:
    """Expected accuracy of voting over n samples of the routed and the best single model.

    Each test query's chance that one sample is right is the chosen model's training
    accuracy in the query's nearest clusters (weighted as routing weighs them), so the vote
    gain assumes all queries of a cluster are equally hard for a model. Only test queries of
    `tasks` (default: all) count. `observed` is the table's score of the routed model on
    those queries: the single-sample accuracy the estimate should match. `fitted` (a
    `fit_split`) replaces `config`, `test_size` and `seed`, as in `evaluate`.
    """
    f = fitted or fit_split(table, x, config, test_size, seed)
    train, test, tr, te, router = f.train, f.test, f.tr, f.te, f.router
    keep = np.ones(len(test), dtype=bool)
    if tasks is not None:
        keep = np.isin(np.array(test.tasks or [""] * len(test)), list(tasks))
    if not keep.any():
        raise InputError(f"{table.source}: no test query in tasks {sorted(tasks or [])}")
    best = ROUTERS["best_single"].fit(train, x[tr], router.config)
    xt, st = x[te][keep], test.scores[keep]
    idx, _, weight = router.nearest(xt)
    prof = router.profile  # raw accuracies: shrinkage is tuned for ranking, not estimation
    acc = np.where(prof.count > 0, prof.mean, prof.global_mean)
    est = np.clip(np.einsum("nk,nkm->nm", weight, acc[idx]), 0.0, 1.0)
    choice = {"router": picks(router, xt, st), "best_single": picks(best, xt, st)}
    out: dict = {"n_queries": int(keep.sum()), "seed": f.seed}
    for name, pick in choice.items():
        p = est[np.arange(len(pick)), pick]
        rows = []
        for n in ns:
            pess, opt = vote_accuracy(p, n)
            rows.append({"n": n, "pessimistic": float(pess.mean()),
                         "optimistic": float(opt.mean())})
        out[name] = {"observed": float(picked_scores(pick, st).mean()), "votes": rows}
    return out
