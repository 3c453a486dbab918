"""Routing: a query goes to its nearest cluster(s) and the models that score best there.

A small `Router` base with a registry (as in RouteLLM): every router turns query vectors
into an (N, M) preference matrix, higher = better. `AvengersRouter` is the paper's recipe;
`baselines` registers the comparison routers used by `evaluate`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from avengers_core.cluster import DEFAULT_K, kmeans
from avengers_core.errors import InputError
from avengers_core.score import CapabilityProfile, TaskPrior, cost_aware, ranks, select_models
from avengers_core.table import RoutingTable, check_enough_rows

SHRINKAGE_GRID = (0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 1000.0)  # 1000 ≈ the prior alone
CV_ROWS = 50_000  # issue 13: queries scored per fold at most (a seeded sample of the fold)
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
    """One routing decision, with what is needed to explain it on screen."""

    cluster: int
    clusters: list[dict]  # [{"id", "p", "similarity"}], nearest first
    scores: dict[str, float]  # model → fused score
    models: list[str]  # chosen top-n, best first
    ranking: list[str]  # every model, best first
    task: str | None  # most common task of the nearest cluster
    details: list[dict] = field(default_factory=list)  # per cluster: size, tasks, per-model stats

    def to_dict(self) -> dict:
        return asdict(self)

    def reason(self, label: str | None = None, escape: Callable[[str], str] = str) -> str:
        """A one-line plain-language reason for the top choice.

        `label` names the nearest cluster; `escape` is applied to every piece of data
        (model, task, label), e.g. Markdown escaping in the app.
        """
        top, d = self.models[0], self.details[0]
        stat = d["models"][top]
        name = f" “{escape(label)}”" if label else ""
        what = escape(d["task"]) if d["task"] else "mixed tasks"
        if stat["count"] == 0:
            why = (f"{escape(top)} has no scores in this cluster, so its rank comes from its "
                   "global mean and the neighbouring clusters")
        else:
            why = f"here {escape(top)} answered {stat['mean']:.0%} of "
            why += _plural(stat["count"], "question")
        size, p = _plural(d["size"], "question"), self.clusters[0]["p"]
        return f"Cluster {self.cluster}{name} ({what}, {size}, p = {p:.2f}): {why}"


def at_most_one(value: float) -> float:
    """`value` as a Python float, rounding error above 1 removed: a probability, a cosine
    or a score in [0, 1] computed in float32 can come out as 1.0000000149 (issue 22)."""
    return min(float(value), 1.0)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def softmax_neg_distance(sims: np.ndarray, beta: float) -> np.ndarray:
    """Row-wise softmax(−β·(1 − cos)) over the given similarities."""
    z = -beta * (1.0 - sims)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@register("avengers")
class AvengersRouter(Router):
    """Nearest-cluster routing over a K × M capability profile (Zhang et al., 2025)."""

    def __init__(
        self,
        centroids: np.ndarray,
        profile: CapabilityProfile,
        config: RouterConfig,
        embedder_id: str = "",
        cluster_tasks: list[dict[str, int]] | None = None,
        labels: np.ndarray | None = None,
        task_prior: TaskPrior | None = None,
    ):
        self.centroids = centroids.astype(np.float32)
        self.task_prior = task_prior  # used when config.prior == "task"
        self.profile = profile
        self.config = config
        self.embedder_id = embedder_id
        self.models = profile.models
        self.cluster_tasks = cluster_tasks or [{} for _ in range(len(centroids))]
        self.labels = labels  # training queries' clusters (not saved)
        self.k_asked = len(centroids)  # the K asked for at fit (more when clusters were dropped)
        self._allowed = self._allowed_mask()

    @classmethod
    def fit(
        cls,
        table: RoutingTable,
        x: np.ndarray,
        config: RouterConfig | None = None,
        embedder_id: str = "",
        progress=None,
        device: str | None = None,
    ) -> AvengersRouter:
        """Cluster the table's query vectors, build the profile, choose prior and τ if 'auto'.

        With prior "task" or "auto" and a table with tasks, a task classifier is fitted on
        the vectors (`TaskPrior`); "auto" keeps it only if cross-validation prefers it.
        `device` places K-means on large tables (`cluster.method_for`; None: the default).
        """
        config = (config or RouterConfig()).validate()
        check_enough_rows(table, config.k)
        if len(x) != len(table):
            raise InputError(f"{len(x)} vectors for {len(table)} queries")
        step = f"fitting K = {config.k} (K-means, then scoring)"
        if progress:
            progress(0, 2, step)
        clus = kmeans(x, config.k, config.seed, device=device)
        if progress:
            progress(1, 2, step)
        task_prior = None
        if config.prior != "global":
            task_prior = TaskPrior.fit(x, table.tasks, table.scores, config.seed)
        prior, tau = config.prior, config.shrinkage
        if prior == "auto" or tau == "auto":
            prior, tau = choose_evidence(table, x, clus.centroids, clus.labels, config,
                                         task_prior)
        if task_prior is None or prior == "global":
            prior, task_prior = "global", None
        profile = CapabilityProfile.build(
            clus.labels, table.scores, clus.k, table.models, table.costs, float(tau)
        )  # clus.k: the clusters that exist (issue 22: empty or repeated ones dropped)
        tasks: list[dict[str, int]] = [{} for _ in range(clus.k)]
        if table.tasks is not None:
            for lab, t in zip(clus.labels, table.tasks):
                if t:
                    tasks[lab][t] = tasks[lab].get(t, 0) + 1
        if progress:
            progress(2, 2, step)
        router = cls(
            clus.centroids,
            profile,
            replace(config, k=clus.k, shrinkage=float(tau), prior=prior),
            embedder_id,
            [dict(sorted(d.items(), key=lambda kv: -kv[1])) for d in tasks],
            clus.labels,
            task_prior,
        )
        router.k_asked = config.k
        return router

    def _allowed_mask(self) -> np.ndarray:
        """Models the router may pick: all, or the paper's automatic selection of N."""
        mask = np.ones(len(self.models), dtype=bool)
        if self.config.n_models:
            keep = set(select_models(self.profile, self.config.n_models))
            mask = np.array([m in keep for m in self.models])
        return mask

    def cluster_scores(self) -> np.ndarray:
        """(K, M) per-cluster model scores used for routing (shrunk, cost-aware)."""
        perf = self.profile.scores()
        return cost_aware(perf, self.profile.cost, self.config.alpha)

    def best_models(self) -> list[str]:
        """Each cluster's top model by the routing scores (shrunk, cost-aware)."""
        cs = np.nan_to_num(self.cluster_scores(), nan=-1.0)
        return [self.models[int(j)] for j in cs.argmax(axis=1)]

    def cluster_order(self, by: str = "size") -> list[int]:
        """Cluster ids by size (largest first) or grouped by best model, best score first."""
        k = len(self.centroids)
        if by == "size":
            size = self.profile.size if self.profile.size is not None else np.zeros(k)
            return [int(c) for c in np.argsort(-size, kind="stable")]
        best = self.best_models()
        top = np.nan_to_num(self.cluster_scores(), nan=-1.0).max(axis=1)
        return sorted(range(k), key=lambda c: (self.models.index(best[c]), -top[c]))

    def nearest(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top-k cluster ids, their cosine similarities and probabilities per query."""
        sims = np.asarray(x, dtype=np.float32) @ self.centroids.T
        k = min(self.config.top_k, len(self.centroids))
        idx = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        top = np.take_along_axis(sims, idx, axis=1)
        # float64: float32 probabilities summed to 1.0000000149 and lifted scores above 1
        return idx, top, softmax_neg_distance(top.astype(np.float64), self.config.beta)

    def prior(self, x: np.ndarray) -> np.ndarray:
        """(N, M) what each query's cluster scores shrink toward: the models' global means,
        or with prior "task" the query's task mixture (`TaskPrior.prior`)."""
        g = self.profile.global_mean
        if self.config.prior == "task" and self.task_prior is not None:
            return self.task_prior.prior(x, g)
        return np.tile(g, (len(x), 1))

    def query_scores(self, x: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """(N, k, M) routing scores of each query's clusters `idx`: shrunk toward the
        query's prior, cost-aware. With the global prior, `cluster_scores()[idx]`."""
        perf = self.profile.shrunk(idx, self.prior(x))
        cost = None if self.profile.cost is None else self.profile.cost[idx]
        return cost_aware(perf, cost, self.config.alpha)

    def predict(self, x: np.ndarray,
                near: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """(N, M) fused score per model: Σ over the top-k clusters of p · value.

        `near`: `nearest(x)` when already known (the same centroids, top-k and β)."""
        idx, _, p = self.nearest(x) if near is None else near
        cs = self.query_scores(x, idx)
        if self.config.fusion == "rank":
            flat = np.where(self._allowed, cs, np.nan).reshape(-1, cs.shape[-1])
            value = (1.0 / (ranks(flat) + 0.1)).reshape(cs.shape)
        else:
            value = np.nan_to_num(cs, nan=0.0)
        fused = np.einsum("nk,nkm->nm", p, value)
        return np.where(self._allowed, fused, -np.inf)

    def route_vector(self, vec: np.ndarray) -> RouteResult:
        """Route one query vector and explain the choice."""
        vec = np.asarray(vec, dtype=np.float32).reshape(1, -1)
        if vec.shape[1] != self.centroids.shape[1]:
            raise InputError(
                f"query vector has dimension {vec.shape[1]}, the profile expects "
                f"{self.centroids.shape[1]} (embedder {self.embedder_id})"
            )
        idx, sims, p = self.nearest(vec)
        fused = self.predict(vec)[0]
        order = [int(j) for j in np.argsort(-fused, kind="stable")]
        ranking = [self.models[j] for j in order if self._allowed[j]]
        mean, count = self.profile.mean, self.profile.count
        cs = self.query_scores(vec, idx)[0]
        details = []
        for i, c in enumerate(idx[0]):
            c = int(c)
            tasks = self.cluster_tasks[c]
            details.append({
                "id": c,
                "size": int(self.profile.size[c]) if self.profile.size is not None else 0,
                "task": next(iter(tasks), None),
                "tasks": tasks,
                "models": {
                    m: {
                        "mean": None if np.isnan(mean[c, j]) else float(mean[c, j]),
                        "count": int(count[c, j]),
                        "score": at_most_one(np.nan_to_num(cs[i, j])),
                    }
                    for j, m in enumerate(self.models)
                },
            })
        return RouteResult(
            cluster=int(idx[0, 0]),
            clusters=[
                {"id": int(c), "p": at_most_one(pp), "similarity": at_most_one(s)}
                for c, s, pp in zip(idx[0], sims[0], p[0])
            ],
            scores={self.models[j]: (at_most_one(fused[j]) if self.config.fusion == "score"
                                     else float(fused[j]))
                    for j in order if self._allowed[j]},
            models=ranking[: self.config.top_n],
            ranking=ranking,
            task=details[0]["task"],
            details=details,
        )

    def route(self, query: str, embedder=None) -> RouteResult:
        """Embed `query` with `embedder` (default: the profile's own) and route it."""
        from avengers_core.embed import get_embedder

        if not query or not query.strip():
            raise InputError("the query is empty (expected some text)")
        embedder = embedder or get_embedder(self.embedder_id)
        if self.embedder_id and embedder.id != self.embedder_id:
            raise InputError(
                f"embedder {embedder.id!r} does not match the profile's {self.embedder_id!r}"
            )
        return self.route_vector(embedder.encode([query])[0])

    def with_config(self, **changes) -> AvengersRouter:
        """The same fitted profile with other routing settings (top-k, β, top-n, α, …)."""
        config = replace(self.config, **changes).validate()
        if config.k != self.config.k:
            raise InputError("K changes the clustering: refit instead")
        if config.prior == "task" and self.task_prior is None:
            raise InputError("prior 'task' needs a task classifier: refit with prior 'task'")
        profile = replace(self.profile, shrinkage=float(config.shrinkage))
        router = AvengersRouter(self.centroids, profile, config, self.embedder_id,
                                self.cluster_tasks, self.labels, self.task_prior)
        router.k_asked = self.k_asked
        return router


def choose_shrinkage(
    table: RoutingTable,
    x: np.ndarray,
    centroids: np.ndarray,
    labels: np.ndarray,
    config: RouterConfig,
    task_prior: TaskPrior | None = None,
    grid: tuple[float, ...] = SHRINKAGE_GRID,
    folds: int = 5,
) -> float:
    """Prior strength τ chosen by cross-validation for the configured prior (`choose_evidence`
    with the prior fixed; "auto" counts as "global" unless `task_prior` is given)."""
    prior = config.prior if config.prior != "auto" or task_prior else "global"
    cfg = replace(config, prior=prior, shrinkage="auto")
    return choose_evidence(table, x, centroids, labels, cfg, task_prior, grid, folds)[1]


def choose_evidence(
    table: RoutingTable,
    x: np.ndarray,
    centroids: np.ndarray,
    labels: np.ndarray,
    config: RouterConfig,
    task_prior: TaskPrior | None = None,
    grid: tuple[float, ...] = SHRINKAGE_GRID,
    folds: int = 5,
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
        near = AvengersRouter(centroids, base, config).nearest(xt)  # same for all
        for g, (prior, tau) in enumerate(cands):
            prof = replace(base, shrinkage=tau)
            cfg = replace(config, shrinkage=tau, prior=prior)
            r = AvengersRouter(centroids, prof, cfg, task_prior=fold_prior)
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
