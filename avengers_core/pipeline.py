"""Route, then vote: the one controller the CLI, `avengers serve`, the Vote page and the tour call.

After RouteLLM's `controller.py`: one object routes a query and then calls the models, so
every interface makes the same decision with the same defaults. The steps:

1. **route** (:meth:`Pipeline.route`): the router's decision for the query (never waits on
   a model);
2. **plan** (:func:`plan_vote`): the answer kind (:func:`~avengers_core.answers.kinds.answer_kind`:
   the query's own options first, the routed task second), the routed models the engines
   serve (:func:`~avengers_core.backends.model_names.pick_local_models`, with the user's
   mapping), and the strategy (single, spread over the top-n, or Model-Switch);
3. **vote** (:func:`start_vote`): a :class:`~avengers_core.vote.run.VoteRun` over the plan.
   This module is the only place outside the tests that constructs one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from avengers_core.answers.kinds import KINDS, answer_kind
from avengers_core.backends import DEFAULT_TEMPERATURE, Timeouts
from avengers_core.backends.endpoints import Engines
from avengers_core.backends.model_names import pick_local_models
from avengers_core.embed.base import Embedder
from avengers_core.embed.window import query_note
from avengers_core.errors import InputError
from avengers_core.routing.routers.avengers import AvengersRouter
from avengers_core.routing.routers.base import RouteResult
from avengers_core.vote.run import STRATEGIES, VoteRun
from avengers_core.vote.stopping import DEFAULT_CONFIDENCE, DEFAULT_EARLY_STOP

DEFAULT_SAMPLES = 10
"""Samples per vote: the paper samples each query 10 times (Zhang et al. 2025, §4.1)."""
DEFAULT_CONCURRENCY = 4
DEFAULT_SWITCH_THRESHOLD = 0.6
"""Model-Switch moves to the next model while the winner's share is below this."""


@dataclass
class VotePlan:
    """What a vote will do. models: the engines' names, best routed first; kind: the answer
    kind; strategy: one of `vote.run.STRATEGIES`; route: the decision it came from (None
    when the user chose the models); notes: routed models that are not served."""

    models: list[str]
    kind: str
    strategy: str = "single"
    route: RouteResult | None = None
    notes: list[str] = field(default_factory=list)


def choose_strategy(top_n: int = 1, switch: float | None = None) -> str:
    """`switch` (Model-Switch) when a switch threshold is given, `spread` over the top-n
    when top_n > 1, else `single` (every sample from the best routed model)."""
    if switch is not None:
        return "switch"
    return "spread" if top_n > 1 else "single"


def plan_vote(
    query: str,
    route: RouteResult | None,
    available: Sequence[str],
    *,
    top_n: int = 1,
    switch: float | None = None,
    strategy: str | None = None,
    mapping: Mapping[str, str] | None = None,
    kind: str = "auto",
    choices: Sequence[str] | None = None,
) -> VotePlan:
    """The plan for voting on `query` with the models `available` on the engines.

    route: the router's decision (None: no table, the available models in their order).
    top_n: models sampled by `spread`; Model-Switch (`switch` = its threshold) may use every
    routed model. strategy: overrides the one implied by top_n and switch. mapping: routed
    name → served name. kind: "auto" (:func:`answer_kind`) or one of `answers.kinds.KINDS`.
    An empty `models` means none of the routed models is served (see `notes`).
    Raises InputError for an unknown kind or strategy.
    """
    if kind != "auto" and kind not in KINDS:
        raise InputError(f"unknown answer kind {kind!r}; expected auto or one of {KINDS}")
    strategy = strategy or choose_strategy(top_n, switch)
    if strategy not in STRATEGIES:
        raise InputError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
    ranking = list(route.ranking) if route is not None else list(available)
    task = route.task if route is not None else None
    wanted = len(ranking) if strategy == "switch" else (1 if strategy == "single" else top_n)
    models, notes = pick_local_models(ranking, available, max(1, wanted), mapping)
    chosen_kind = answer_kind(query, task, choices) if kind == "auto" else kind
    return VotePlan(models, chosen_kind, strategy, route, notes)


def start_vote(
    engines: Engines | Any,
    plan: VotePlan,
    query: str,
    *,
    samples: int = DEFAULT_SAMPLES,
    temperature: float = DEFAULT_TEMPERATURE,
    concurrency: int = DEFAULT_CONCURRENCY,
    threshold: float = DEFAULT_SWITCH_THRESHOLD,
    choices: Sequence[str] | None = None,
    seed: int = 0,
    prompt: str | None = None,
    options: Mapping[str, Any] | None = None,
    embed: Callable[[list[str]], Sequence[Sequence[float]]] | None = None,
    timeouts: Timeouts | None = None,
    early_stop: str = DEFAULT_EARLY_STOP,
    confidence: float = DEFAULT_CONFIDENCE,
) -> VoteRun:
    """A vote over `plan` (not started: iterate its `events()` or call `run()`).

    engines: the engines, one backend or an Ollama host. samples: N per model (Model-Switch:
    per model it reaches). temperature: > 0 so samples differ (self-consistency, Wang et
    al. 2023). prompt: the engine's prompt when the interface builds its own (serve passes
    the client's conversation); default `answers.prompts.make_prompt`. options: engine
    options (`max_tokens`, `think`). Raises ValueError for a plan without models.
    """
    return VoteRun(
        engines, plan.models, query, samples=samples, temperature=temperature,
        kind=plan.kind, choices=choices, concurrency=concurrency, strategy=plan.strategy,
        threshold=threshold, seed=seed, prompt=prompt, embed=embed, timeouts=timeouts,
        options=options, early_stop=early_stop, confidence=confidence,
    )


class Pipeline:
    """Route, then vote, for one fitted router, its embedder and the engines.

    The command line and `avengers serve` hold one; the app routes with its cached vectors
    and calls :func:`plan_vote` and :func:`start_vote` itself.
    """

    def __init__(self, router: AvengersRouter, embedder: Embedder | None, engines: Any,
                 mapping: Mapping[str, str] | None = None) -> None:
        self.router = router
        self.embedder = embedder
        self.engines = engines
        self.mapping = dict(mapping or {})
        self._route_lock = threading.Lock()  # embedders are not all reentrant

    def route(self, query: str) -> RouteResult:
        """The router's decision for `query` (embeds it; never calls a model)."""
        with self._route_lock:
            return self.router.route(query, embedder=self.embedder,
                                     names=getattr(self.router, "cluster_names", None))

    def embed(self, texts: list[str]) -> Any:
        """The router's embedder's (n, d) vectors for `texts`, one call at a time as
        routing's own (serve's `/api/embed` and `/v1/embeddings`)."""
        if self.embedder is None:
            raise InputError("this router has no embedder")
        with self._route_lock:
            return self.embedder.encode(texts)

    def query_notes(self, query: str) -> list[str]:
        """What the user should know about the query itself: that the embedder read only
        the start of it (issue 22); empty when nothing is worth saying."""
        with self._route_lock:
            note = query_note(self.embedder, query) if self.embedder is not None else None
        return [note] if note else []

    def plan(self, query: str, available: Sequence[str] | None = None, *,
             route: RouteResult | None = None, **how: Any) -> VotePlan:
        """:func:`plan_vote` for `query`, routed here unless `route` is given; `available`
        defaults to the engines' model list (raises BackendUnavailable when none answers)."""
        served = self.engines.list_models() if available is None else available
        decision = route if route is not None else self.route(query)
        return plan_vote(query, decision, served, mapping=self.mapping, **how)

    def vote(self, plan: VotePlan, query: str, **how: Any) -> VoteRun:
        """:func:`start_vote` on this pipeline's engines."""
        return start_vote(self.engines, plan, query, **how)
