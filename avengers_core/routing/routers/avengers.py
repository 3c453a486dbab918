"""Routing: a query goes to its nearest cluster(s) and the models that score best there.

A small `Router` base with a registry (as in RouteLLM): every router turns query vectors
into an (N, M) preference matrix, higher = better. `AvengersRouter` is the paper's recipe;
`baselines` registers the comparison routers used by `evaluate`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from avengers_core.data.table import RoutingTable, check_enough_rows
from avengers_core.errors import InputError
from avengers_core.routing.cluster import kmeans
from avengers_core.routing.explain import (
    MIN_TASK_P,
    TOP_TASKS,
    ClusterEvidence,
    Explanation,
    PriorEvidence,
)
from avengers_core.routing.routers.base import (
    Router,
    RouterConfig,
    RouteResult,
    at_most_one,
    register,
)
from avengers_core.routing.score import (
    CapabilityProfile,
    TaskPrior,
    cost_aware,
    ranks,
    select_models,
)
from avengers_core.routing.shrinkage import choose_evidence


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
        self.cluster_names: list[str] | None = None  # saved labels, for explanations
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
                                         task_prior, router_cls=cls)
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
        """(K, M) each cluster's effective scores as the router uses them for a query at the
        cluster's centre: shrunk toward the prior at the centroid (the global means, or with
        the task prior the task mixture predicted for the centroid vector), cost-aware.
        With the global prior these are the same for every query of the cluster."""
        idx = np.arange(len(self.centroids))[:, None]
        return self.query_scores(self.centroids, idx)[:, 0, :]

    def best_models(self) -> list[str]:
        """Each cluster's top model by `cluster_scores()` (the effective scores at its
        centre), among the models the router may pick."""
        cs = np.where(self._allowed, np.nan_to_num(self.cluster_scores(), nan=-1.0), -np.inf)
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

    def task_mixture(self, vec: np.ndarray) -> list[list]:
        """The task prior's predicted mixture for one vector (d,) or (1, d): its top tasks
        as [task, P(task | vector)], most likely first (`explain.TOP_TASKS` at most, each at
        least `explain.MIN_TASK_P`); empty without the task prior."""
        if self.config.prior != "task" or self.task_prior is None:
            return []
        pt = self.task_prior.proba(np.asarray(vec, dtype=np.float32).reshape(1, -1))[0]
        return [[self.task_prior.tasks[t], float(pt[t])]
                for t in np.argsort(-pt, kind="stable")[:TOP_TASKS] if pt[t] >= MIN_TASK_P]

    def query_scores(self, x: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """(N, k, M) routing scores of each query's clusters `idx`: shrunk toward the
        query's prior, cost-aware. With the global prior, `cluster_scores()[idx]`."""
        perf = self.profile.shrunk(idx, self.prior(x))
        cost = None if self.profile.cost is None else self.profile.cost[idx]
        return cost_aware(perf, cost, self.config.alpha)

    def _fuse(self, x: np.ndarray, near: tuple[np.ndarray, np.ndarray, np.ndarray]
              ) -> tuple[np.ndarray, np.ndarray]:
        """(N, k, M) effective scores of each query's clusters and the (N, M) fused score
        (−inf for a model the router may not pick)."""
        idx, _, p = near
        cs = self.query_scores(x, idx)
        if self.config.fusion == "rank":
            flat = np.where(self._allowed, cs, np.nan).reshape(-1, cs.shape[-1])
            value = (1.0 / (ranks(flat) + 0.1)).reshape(cs.shape)
        else:
            value = np.nan_to_num(cs, nan=0.0)
        fused = np.einsum("nk,nkm->nm", p, value)
        return cs, np.where(self._allowed, fused, -np.inf)

    def predict(self, x: np.ndarray,
                near: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """(N, M) fused score per model: Σ over the top-k clusters of p · value.

        `near`: `nearest(x)` when already known (the same centroids, top-k and β)."""
        return self._fuse(x, self.nearest(x) if near is None else near)[1]

    def route_vector(self, vec: np.ndarray, names: list[str] | None = None) -> RouteResult:
        """Route one query vector (d,) and explain the choice with the numbers that made it
        (`RouteResult.explanation`); `names`: the clusters' labels, for the explanation
        (default: those the profile was saved with, if any).
        InputError when the vector's dimension is not the profile's."""
        vec = np.asarray(vec, dtype=np.float32).reshape(1, -1)
        if vec.shape[1] != self.centroids.shape[1]:
            raise InputError(
                f"query vector has dimension {vec.shape[1]}, the profile expects "
                f"{self.centroids.shape[1]} (embedder {self.embedder_id})"
            )
        names = names if names is not None else self.cluster_names
        near = self.nearest(vec)
        idx, sims, p = near
        cs, fused = self._fuse(vec, near)
        fused = fused[0]
        order = [int(j) for j in np.argsort(-fused, kind="stable")]
        ranking = [self.models[j] for j in order if self._allowed[j]]
        expl = self._explain(vec, near, cs[0], fused, ranking, names)
        mean, count = self.profile.mean, self.profile.count
        filled = np.nan_to_num(cs[0]).tolist()  # once: per-element nan_to_num is slow
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
                        "score": at_most_one(filled[i][j]),
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
            explanation=expl,
        )

    def _explain(self, vec: np.ndarray, near: tuple[np.ndarray, np.ndarray, np.ndarray],
                 cs: np.ndarray, fused: np.ndarray, ranking: list[str],
                 names: list[str] | None) -> Explanation:
        """The explanation of one routed vector (1, d) from the arrays `route_vector` fused:
        `cs` (k, M) effective scores of its clusters, `fused` (M,)."""
        idx, sims, p = (a[0] for a in near)
        cfg, prof, models = self.config, self.profile, self.models
        tau = float(prof.shrinkage)
        prior_kind = "task" if cfg.prior == "task" and self.task_prior is not None else "global"
        prior = self.prior(vec)[0]
        tasks = self.task_mixture(vec) if prior_kind == "task" else []
        mean, count = prof.mean, prof.count

        def opt(v: float) -> float | None:
            return None if not np.isfinite(v) else float(v)

        perf = prof.shrunk(idx[None, :], prior[None, :])[0]  # (k, M) before the cost term
        costed = cfg.alpha < 1.0 and prof.cost is not None
        ranked = np.where(self._allowed, np.nan_to_num(cs, nan=-1.0), -np.inf)  # (k, M)
        clusters = []
        for i, c in enumerate(int(c) for c in idx):
            best = int(np.argmax(ranked[i]))  # the first best, as max() over allowed
            clusters.append(ClusterEvidence(
                id=c, label=names[c] if names else None, p=float(p[i]),
                similarity=float(sims[i]),
                n=int(prof.size[c]) if prof.size is not None else int(count[c].max()),
                tasks=dict(self.cluster_tasks[c]),
                raw={m: opt(mean[c, j]) for j, m in enumerate(models)},
                count={m: int(count[c, j]) for j, m in enumerate(models)},
                scores={m: opt(cs[i, j]) for j, m in enumerate(models)},
                best_model=models[best],
                accuracy={m: opt(perf[i, j]) for j, m in enumerate(models)} if costed else None,
            ))
        fused_d = {m: float(fused[models.index(m)]) for m in ranking}
        cost, parts = None, {}
        if cfg.fusion == "score":
            if costed:
                term = cost_aware(np.zeros_like(perf), prof.cost[idx], cfg.alpha)
                share = p @ term
                cost = {m: float(share[models.index(m)]) for m in ranking}
                parts = {"accuracy": {m: fused_d[m] - cost[m] for m in ranking},
                         "cost": cost}
            else:  # α = 1 or no costs: eff = w·raw + (1 − w)·prior, w = n / (n + τ)
                n = count[idx].astype(float)
                w = n / (n + tau) if tau > 0 else np.ones_like(n)
                from_raw = p @ (w * np.nan_to_num(mean[idx]))
                from_prior = p @ ((1.0 - w) * prior[None, :])
                parts = {"prior": {m: float(from_prior[models.index(m)]) for m in ranking},
                         "clusters": {m: float(from_raw[models.index(m)]) for m in ranking}}
        return Explanation(
            prior=PriorEvidence(prior_kind, tau, {m: float(prior[j])
                                                  for j, m in enumerate(models)}, tasks),
            clusters=clusters, fused=fused_d, models=ranking[: cfg.top_n],
            fusion=cfg.fusion, alpha=float(cfg.alpha), cost=cost, parts=parts,
        )

    def route(self, query: str, embedder=None, names: list[str] | None = None) -> RouteResult:
        """Embed `query` with `embedder` (default: the profile's own) and route it; `names`:
        the clusters' labels for the explanation. InputError for an empty query or an
        embedder that is not the profile's."""
        from avengers_core.embed.load import get_embedder

        if not query or not query.strip():
            raise InputError("the query is empty (expected some text)")
        embedder = embedder or get_embedder(self.embedder_id)
        if self.embedder_id and embedder.id != self.embedder_id:
            raise InputError(
                f"embedder {embedder.id!r} does not match the profile's {self.embedder_id!r}"
            )
        return self.route_vector(embedder.encode([query])[0], names)

    def with_config(self, **changes) -> AvengersRouter:
        """The same fitted profile with other routing settings (top-k, β, top-n, α, …)."""
        config = replace(self.config, **changes).validate()
        if config.k != self.config.k:
            raise InputError("K changes the clustering: refit instead")
        if config.prior == "task" and self.task_prior is None:
            raise InputError("prior 'task' needs a task classifier: refit with prior 'task'")
        profile = replace(self.profile, shrinkage=float(config.shrinkage))
        out = AvengersRouter(self.centroids, profile, config, self.embedder_id,
                             self.cluster_tasks, self.labels, self.task_prior)
        out.cluster_names = self.cluster_names
        out.k_asked = self.k_asked
        return out
