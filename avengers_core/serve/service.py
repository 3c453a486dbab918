"""What the server does for a chat request, whatever the protocol: route, vote, relay.

Model names (issue 12): `avengers` routes the last user message, draws `samples` samples
from the routed model(s), votes (:class:`~avengers_core.vote.run.VoteRun`) and replies with
the winning sample's text; `avengers-route` routes and relays the routed model's own
stream; any other name the engines serve is relayed unchanged. Each flow is an async
iterator of :class:`~avengers_core.serve.streams.Tick` (nothing new yet), :class:`Text`
(streamed reply text) and finally :class:`Reply`; failures raise ServeError. The
`avengers` field of a reply, :meth:`Reply.avengers`, says how it was routed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio

from avengers_core.answers.extract import extract
from avengers_core.answers.prompts import make_prompt
from avengers_core.backends import DEFAULT_TEMPERATURE, BackendUnavailable, SampleError
from avengers_core.backends.endpoints import Engines
from avengers_core.errors import InputError
from avengers_core.pipeline import Pipeline, VotePlan
from avengers_core.serve.requests import ChatRequest, ServeError
from avengers_core.serve.streams import Finished, Tick, bridged
from avengers_core.vote.tally import VoteResult, failure_summary

VOTE_MODEL = "avengers"
ROUTE_MODEL = "avengers-route"
ROUTER_MODELS = (VOTE_MODEL, ROUTE_MODEL)
MAX_SAMPLES = 64
"""`--samples` cap: each sample is one upstream request per chat request."""


@dataclass(frozen=True)
class Text:
    """Streamed reply text."""

    text: str


@dataclass(frozen=True)
class Routing:
    """Where a query went: the nearest `cluster`, the served `models` (best first) and the
    answer `kind` of the cluster's task (for extraction)."""

    cluster: int | None
    models: list[str]
    kind: str = "free"
    strategy: str = "single"


@dataclass(frozen=True)
class Reply:
    """The finished reply: its `text` and how it came about (`votes`, `confidence` and
    `answer` from the vote; a relayed reply has no votes, and `relayed` says its text was
    already streamed as :class:`Text`)."""

    text: str
    routing: Routing
    answer: str | None = None
    votes: dict[str, int] = field(default_factory=dict)
    confidence: float | None = None
    relayed: bool = False
    sampling: dict[str, Any] | None = None  # a vote's {drawn, asked, stopped}

    def avengers(self) -> dict[str, Any]:
        """The `avengers` field: {cluster, models, answer, votes, confidence}, and for a
        vote `drawn` (samples that ran to the end), `asked` (N) and `stopped` (why the
        sampling ended: complete, decided or confident; see vote.stopping)."""
        return {"cluster": self.routing.cluster, "models": list(self.routing.models),
                "answer": self.answer, "votes": dict(self.votes),
                "confidence": self.confidence, **(self.sampling or {})}


@dataclass(frozen=True)
class ServeConfig:
    """Server settings: `samples` per vote, parallel samples per vote (`concurrency`),
    `top_n` routed models to spread over, `options` (max_tokens, think) the defaults and
    ceilings of every request, the model map (table name -> served name)."""

    samples: int = 10
    concurrency: int = 4
    top_n: int = 1
    options: Mapping[str, Any] = field(default_factory=dict)
    mapping: Mapping[str, str] = field(default_factory=dict)
    early_stop: str = "decided"  # vote.stopping's rule and its confidence
    confidence: float = 0.95


class Service:
    """The router, its embedder and the engines, shared by every request (thread-safe)."""

    def __init__(self, router: Any, embedder: Any, engines: Engines,
                 config: ServeConfig | None = None) -> None:
        self.router = router
        self.embedder = embedder
        self.engines = engines
        self.config = config or ServeConfig()
        self.pipeline = Pipeline(router, embedder, engines, self.config.mapping)
        if not 1 <= self.config.samples <= MAX_SAMPLES:
            raise InputError(f"--samples must be from 1 to {MAX_SAMPLES}, "
                             f"got {self.config.samples}")

    def models(self) -> list[str]:
        """The model names offered: the two router names, then every served model.
        Raises BackendUnavailable when no engine answers (blocking)."""
        served = [m for m in self.engines.list_models() if m not in ROUTER_MODELS]
        return [*ROUTER_MODELS, *served]

    def knows(self, model: str) -> bool:
        """Whether `model` is offered (blocking the first time)."""
        try:
            return model in self.models()
        except BackendUnavailable:
            return model in ROUTER_MODELS

    def route(self, query: str) -> Routing:
        """Route `query` to the served models (blocking: embeds it). ServeError 502 when
        no engine answers or none of the routed models is served."""
        try:
            plan = self.pipeline.plan(query, top_n=self.config.top_n)
        except InputError as e:
            raise ServeError(400, str(e)) from None
        except (BackendUnavailable, SampleError, OSError) as e:
            raise ServeError(502, f"routing failed: {e}") from None
        res, models = plan.route, plan.models
        if not models:
            raise ServeError(502, f"none of the routed models ({', '.join(res.ranking[:3])}) "
                                  f"is served by {self.engines.describe()}; pass --model-map",
                             code="model_not_found")
        return Routing(res.cluster, models, plan.kind, plan.strategy)

    async def open(self, req: ChatRequest) -> tuple[Routing, AsyncIterator[Any]]:
        """The flow for `req.model` and its routing (routed before the reply starts, so
        the headers can say where it went). ServeError 404 for a model not offered."""
        if req.model in ROUTER_MODELS:
            routing = await anyio.to_thread.run_sync(self.route, req.query)
            if req.model == VOTE_MODEL:
                return routing, self.vote(req, routing)
            return routing, self.relay(req, routing.models[0], routing)
        if not await anyio.to_thread.run_sync(self.knows, req.model):
            raise ServeError(404, f"model {req.model!r} not found (see the model list)",
                             code="model_not_found")
        routing = Routing(None, [req.model])
        return routing, self.relay(req, req.model, routing)

    def options(self, req: ChatRequest) -> dict[str, Any]:
        """Per-request options: the request's max_tokens (at most the server's) and think
        (the server's when the request does not say)."""
        options = dict(self.config.options)
        ceiling = options.get("max_tokens")
        if req.max_tokens is not None:
            options["max_tokens"] = min(req.max_tokens, ceiling or req.max_tokens)
        if req.think is not None:
            options["think"] = req.think
        return options

    async def vote(self, req: ChatRequest, routing: Routing) -> AsyncIterator[Tick | Reply]:
        """Vote over samples of the routed models; the winning sample's text replies.
        A vote needs different samples, so a temperature of 0 becomes the default."""
        temperature = req.temperature if req.temperature else DEFAULT_TEMPERATURE
        plan = VotePlan(list(routing.models), routing.kind, routing.strategy)
        run = self.pipeline.vote(
            plan, req.query, samples=self.config.samples, temperature=temperature,
            concurrency=self.config.concurrency, seed=req.seed or 0,
            prompt=req.prompt(make_prompt(req.query, routing.kind)), options=self.options(req),
            early_stop=self.config.early_stop, confidence=self.config.confidence,
        )
        async for item in bridged(lambda _put: run.run(), run.cancel):
            if isinstance(item, Finished):
                yield _verdict(item.value, routing)
            else:
                yield item

    async def relay(self, req: ChatRequest, model: str, routing: Routing
                    ) -> AsyncIterator[Tick | Text | Reply]:
        """Stream one reply of `model` through: its text as it comes, then the Reply
        (its answer extracted when the model was routed)."""
        temperature = DEFAULT_TEMPERATURE if req.temperature is None else req.temperature
        try:
            call = self.engines.stream_call(model, req.prompt(), seed=req.seed,
                                            temperature=temperature, options=self.options(req))
        except InputError as e:
            raise ServeError(404, str(e), code="model_not_found") from None

        def work(put: Any) -> Any:
            return call.run_choices(lambda i, text: put(Text(text)) if i == 0 and text else None)

        try:
            async for item in bridged(work, lambda: call.abort("the client disconnected")):
                if not isinstance(item, Finished):
                    yield item
                    continue
                choice = item.value[0]
                if choice.error is not None:
                    raise ServeError(502, f"{model}: {choice.error}")
                answer = extract(choice.text, routing.kind) if routing.cluster is not None \
                    else None
                yield Reply(choice.text, routing, answer=answer, relayed=True)
        except SampleError as e:
            raise ServeError(502, f"{model} @ {call.endpoint}: {e.reason}") from None


def _verdict(result: VoteResult, routing: Routing) -> Reply:
    """The vote's Reply: the winning sample's text (the first to arrive among its voters);
    with no winner, the first answered sample's text; ServeError 502 when all failed."""
    samples = {s.index: s for s in result.samples}
    ok = sorted((s for s in result.samples if s.error is None), key=lambda s: s.arrival)
    if not ok:
        raise ServeError(502, f"all {len(result.samples)} samples failed: "
                              f"{failure_summary(result.samples)}")
    tally = result.tally
    text = samples[tally.voters[tally.winner][0]].text if tally.winner is not None else ok[0].text
    used = Routing(routing.cluster, list(result.models) or routing.models, routing.kind)
    return Reply(text, used, answer=tally.winner, votes=dict(tally.votes),
                 confidence=tally.confidence if tally.winner is not None else None,
                 sampling={"drawn": result.drawn, "asked": result.asked,
                           "stopped": result.stopped})
