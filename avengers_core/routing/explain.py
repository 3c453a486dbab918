"""One explanation of a routing decision, built from the numbers the router decided with.

`AvengersRouter.route_vector` fills an :class:`Explanation` from the very arrays it fuses
(issue 19: "what you see is what routes"): the prior (its kind, strength τ, per-model prior
score and, for the task prior, the predicted task mixture), each fused cluster (weight p,
size, per model the raw accuracy, the count behind it and the effective score the router
used, and its best model by that score), the fused score per model, the cost term where
α < 1, the chosen models, and how prior and cluster evidence add up to the fused score.
Every view (the app's pages, the HTML report, `avengers route --json`, `avengers serve`)
renders from it; none recomputes it. The reason sentence is generated here from these
numbers only, so every percentage in it is a number of `to_json()`.

The effective score of model m in cluster c for a query q is (Zhang et al. 2025, §3 with
the prior of issues 8 and 15):  eff = (n·raw + τ·prior_q) / (n + τ), n = the count behind
raw; with α < 1 it is then made cost-aware (Avengers-Pro, `score.cost_aware`). The fused
score is Σ_c p_c · eff_c ("score" fusion) or Σ_c p_c / (rank_c + 0.1) ("rank" fusion).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

TOP_TASKS = 3  # tasks of the predicted mixture that the explanation keeps
MIN_TASK_P = 0.01  # ... those with at least this probability


@dataclass
class PriorEvidence:
    """What every cluster score of this query shrinks toward.

    `kind`: "global" (each model's accuracy over all training queries) or "task" (its
    accuracy on the query's predicted task mixture, Σ_t P(t | query) · accuracy on t);
    `tau`: its strength in pseudo-queries (0 = the paper's raw accuracies, no prior);
    `scores`: model -> prior score in [0, 1]; `tasks`: for the task prior, the top tasks
    as [task, P(task | query)], most likely first (empty for the global prior)."""

    kind: str
    tau: float
    scores: dict[str, float]
    tasks: list[list[Any]] = field(default_factory=list)


@dataclass
class ClusterEvidence:
    """One fused cluster: `id`, its c-TF-IDF `label` (None when unknown), fusion weight `p`,
    cosine `similarity` to the query, `n` training queries, their task counts `tasks`; per
    model the `raw` accuracy there (None: never scored there), the `count` of scored queries
    behind it and the effective score the router used (`scores`: shrunk toward the prior,
    cost-aware where α < 1); `best_model`: the argmax of `scores` among the models the router
    may pick; `accuracy`: the shrunk accuracy before the cost term (only where α < 1)."""

    id: int
    label: str | None
    p: float
    similarity: float
    n: int
    tasks: dict[str, int]
    raw: dict[str, float | None]
    count: dict[str, int]
    scores: dict[str, float | None]
    best_model: str
    accuracy: dict[str, float | None] | None = None

    @property
    def task(self) -> str | None:
        """The most common task of the cluster's training queries."""
        return next(iter(self.tasks), None)


@dataclass
class Explanation:
    """A routing decision and every number behind it (see the module docstring).

    `fused`: model -> fused score, best first (only the models the router may pick);
    `models`: the chosen top-n; `fusion`: "score" or "rank"; `alpha`: the performance-cost
    trade-off; `cost`: model -> the cost term's share of the fused score, Σ_c p_c (1 − α)
    (1 − normalised cost), where α < 1 with "score" fusion (else None); `parts`: how the fused
    score adds up with "score" fusion, part name -> model -> value ("prior" and "clusters":
    Σ_c p_c (1 − w) prior and Σ_c p_c w raw with w = n / (n + τ); or, where α < 1,
    "accuracy" and "cost"); empty with "rank" fusion, whose values are not scores."""

    prior: PriorEvidence
    clusters: list[ClusterEvidence]
    fused: dict[str, float]
    models: list[str]
    fusion: str = "score"
    alpha: float = 1.0
    cost: dict[str, float] | None = None
    parts: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The explanation as `avengers route --json` prints it (plain JSON types): keys
        `cluster`, `clusters` [{id, p, label, similarity, n, raw, count, scores,
        best_model}], `models`, `scores` (fused), `task`, `prior` {kind, tau, scores,
        tasks}, `fusion`, `alpha`, `cost` (where α < 1) and `reason`."""
        clusters = []
        for c in self.clusters:
            row = {"id": c.id, "p": c.p, "label": c.label, "similarity": c.similarity,
                   "n": c.n, "task": c.task, "raw": c.raw, "count": c.count,
                   "scores": c.scores, "best_model": c.best_model}
            if c.accuracy is not None:
                row["accuracy"] = c.accuracy
            clusters.append(row)
        out: dict[str, Any] = {
            "cluster": self.clusters[0].id, "clusters": clusters, "models": list(self.models),
            "scores": dict(self.fused), "task": self.clusters[0].task,
            "prior": asdict(self.prior), "fusion": self.fusion, "alpha": self.alpha,
        }
        if self.cost is not None:
            out["cost"] = dict(self.cost)
        out["reason"] = self.reason()
        return out

    def compact(self, top: int = 3) -> dict[str, Any]:
        """A short form for `avengers serve`'s `avengers` field: the prior's kind, τ and top
        tasks, the `top` fused scores, each fused cluster's id, label, p and best model, and
        the reason."""
        return {
            "prior": {"kind": self.prior.kind, "tau": self.prior.tau,
                      "tasks": self.prior.tasks},
            "scores": dict(list(self.fused.items())[:top]),
            "clusters": [{"id": c.id, "label": c.label, "p": c.p, "best_model": c.best_model}
                         for c in self.clusters],
            "reason": self.reason(),
        }

    def reason(self, escape: Callable[[str], str] = str) -> str:
        """A plain-language reason for the top choice, from this explanation's numbers only
        (every percentage is a value of `to_json()`, rounded). `escape` is applied to every
        piece of data (model, task, label), e.g. Markdown escaping in the app."""
        top = self.models[0]
        as_pct = self.fusion == "score" and self.alpha >= 1.0  # fused values are accuracies
        rest = [m for m in self.fused if m != top]
        what = "fused score" if self.fusion == "score" else "fused rank score Σ p / (rank + 0.1)"
        head = f"{escape(top)} has the highest {what}, {_num(self.fused[top], as_pct)}"
        if rest:
            head += f" (next: {escape(rest[0])}, {_num(self.fused[rest[0]], as_pct)})"
        parts = [head + "."]
        pr = self.prior
        if pr.tau <= 0:
            parts.append("No prior (τ = 0): the clusters' raw accuracies decide.")
        else:
            weight = f"worth τ = {pr.tau:g} {'query' if pr.tau == 1 else 'queries'}"
            if pr.kind == "task" and pr.tasks:
                mix = ", ".join(f"{escape(t)} {p:.0%}" for t, p in pr.tasks)
                parts.append(f"The prior ({weight}) is the query's task mixture ({mix}), on "
                             f"which {escape(top)} scores {pr.scores[top]:.0%}.")
            else:
                parts.append(f"The prior ({weight}) is {escape(top)}'s accuracy over all "
                             f"queries, {pr.scores[top]:.0%}.")
        c = self.clusters[0]
        name = f" “{escape(c.label)}”" if c.label else ""
        what = escape(c.task) if c.task else "mixed tasks"
        where = (f"Nearest cluster {c.id}{name} ({what}, {_plural(c.n, 'question')}, "
                 f"p = {c.p:.2f})")
        raw, eff = c.raw.get(top), c.scores.get(top)
        eff_text = "no score" if eff is None else _num(eff, self.alpha >= 1.0)
        if raw is None:
            parts.append(f"{where}: {escape(top)} has no scores there, so its effective "
                         f"score there is {'the prior' if pr.tau > 0 else 'missing'}"
                         + ("" if eff is None else f", {eff_text}") + ".")
        else:
            used = f"the router used {eff_text}"
            if self.alpha < 1.0 and c.accuracy is not None:
                used += (f" (α = {self.alpha:.2f}: accuracy and cost, each scaled within "
                         "the cluster)")
            parts.append(f"{where}: {escape(top)} answered {raw:.0%} of "
                         f"{_plural(c.count[top], 'question')} there; {used}.")
        return " ".join(parts)


def _num(v: float, pct: bool) -> str:
    """A score as a percentage (an accuracy) or with two decimals (a cost-aware or rank
    value, which is no accuracy)."""
    return f"{v:.0%}" if pct else f"{v:.2f}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def describe_prior(kind: str, tau: float) -> str:
    """One sentence naming the prior in use, for captions (Leaderboard, tour, report)."""
    if tau <= 0:
        return "No prior (τ = 0): routing uses each cluster's raw accuracies, as in the paper."
    what = ("each model's accuracy on the task mixture predicted for the query (at a "
            "cluster's centre for the cluster views)" if kind == "task"
            else "each model's accuracy over all training queries (its global mean)")
    return (f"Routing scores are shrunk toward the {kind} prior, {what}, with the weight of "
            f"τ = {tau:g} queries: (right + τ · prior) / (answered + τ).")
