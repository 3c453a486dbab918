"""What the server does for a chat request, whatever the protocol: route, vote, relay.

Model names (issue 12): `avengers` routes the conversation, draws `samples` samples from
the routed model(s), votes (:class:`~avengers_core.vote.run.VoteRun`) and replies with the
winning sample's text; `avengers-route` routes and relays the request to the routed model;
any other name the engines serve is relayed (issue 21: faithfully, see
:mod:`~avengers_core.serve.passthrough`). A conversation is routed by its first user
message (it keeps its model), or by its last with `--route-each-turn`. A request the vote
cannot honour (tools, logprobs, images) is answered by one routed sample. Each flow is an
async iterator of :class:`~avengers_core.serve.streams.Tick` (nothing new yet),
:class:`Begin` (a vote started), :class:`Text` (streamed text),
:class:`~avengers_core.serve.passthrough.Chunk` (a relayed chunk) and finally
:class:`Reply`; failures raise ServeError. The `avengers` field of a reply,
:meth:`Reply.avengers`, says how it was routed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import anyio

from avengers_core.answers.extract import extract
from avengers_core.answers.prompts import make_prompt
from avengers_core.backends import DEFAULT_TEMPERATURE, BackendUnavailable, SampleError
from avengers_core.backends.endpoints import Engines
from avengers_core.errors import InputError
from avengers_core.pipeline import Pipeline, VotePlan
from avengers_core.serve import fields, passthrough
from avengers_core.serve.fields import canonical_json
from avengers_core.serve.requests import ChatRequest, ServeError
from avengers_core.serve.streams import Finished, Tick, bridged
from avengers_core.vote.tally import VoteResult, count_votes, failure_summary

VOTE_MODEL = "avengers"
ROUTE_MODEL = "avengers-route"
ROUTER_MODELS = (VOTE_MODEL, ROUTE_MODEL)
MAX_SAMPLES = 64
"""`--samples` cap: each sample is one upstream request per chat request."""
FIRST_TURN = "first user message"
EACH_TURN = "each turn"


def bare(model: str) -> str:
    """`model` without Ollama's default tag `:latest` (`avengers:latest` is `avengers`)."""
    return model.removesuffix(":latest")


@dataclass(frozen=True)
class Begin:
    """A vote started: a streamed reply sends its first (empty) chunk at once."""


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
    notes: tuple[str, ...] = ()  # what the client should know (issue 22: a cut query, retries)
    explanation: dict[str, Any] | None = None  # the router's, compact (issue 19)


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
    # issue 21: the engine's whole reply (client's shape) when relayed and not streamed;
    # the (winner's) real finish reason; usage summed over the samples; the routing rule;
    # why one routed sample answered instead of a vote
    raw: dict[str, Any] | None = None
    finish: str | None = None
    usage: dict[str, int] | None = None
    rule: str | None = None
    single: str | None = None
    sampling: dict[str, Any] | None = None  # a vote's {drawn, asked, stopped}

    def avengers(self) -> dict[str, Any]:
        """The `avengers` field: {cluster, models, answer, votes, confidence, notes}, plus
        `rule` (what was routed) on routed replies, `single` when one sample answered, for
        a routed reply `explanation` (`routing.explain.Explanation.compact`), and for a vote
        `drawn` (samples that ran to the end), `asked` (N) and `stopped` (complete, decided
        or confident; see vote.stopping)."""
        out = {"cluster": self.routing.cluster, "models": list(self.routing.models),
               "answer": self.answer, "votes": dict(self.votes),
               "confidence": self.confidence, "notes": list(self.routing.notes)}
        if self.rule is not None:
            out["rule"] = self.rule
        if self.single is not None:
            out["single"] = self.single
        if self.routing.explanation is not None:
            out["explanation"] = self.routing.explanation
        out.update(self.sampling or {})
        return out


@dataclass(frozen=True)
class ServeConfig:
    """Server settings: `samples` per vote, parallel samples per vote (`concurrency`),
    `top_n` routed models to spread over, `options` (max_tokens, think) the defaults and
    ceilings of every request, the model map (table name -> served name), and whether to
    route each turn on its last user message (`route_each_turn`) instead of the first."""

    samples: int = 10
    concurrency: int = 4
    top_n: int = 1
    options: Mapping[str, Any] = field(default_factory=dict)
    mapping: Mapping[str, str] = field(default_factory=dict)
    route_each_turn: bool = False
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
        return self.resolve(model) is not None

    def resolve(self, model: str) -> str | None:
        """The offered name `model` means, as Ollama reads names: `x:latest` is `x`, and
        `x` is `x:latest`; None when not offered (blocking the first time)."""
        try:
            names = self.models()
        except BackendUnavailable:
            names = list(ROUTER_MODELS)
        for name in (model, bare(model), f"{model}:latest"):
            if name in names:
                return name
        return None

    def embed(self, texts: list[str]) -> list[list[float]]:
        """The profile's embedder's vectors for `texts` (L2-normalised; blocking), one call
        at a time as routing's own (issue 21: `/api/embed`, `/v1/embeddings`)."""
        return [[float(x) for x in row] for row in self.pipeline.embed(texts)]

    def route(self, query: str) -> Routing:
        """Route `query` to the served models (blocking: embeds it). ServeError 502 when
        no engine answers or none of the routed models is served."""
        try:
            plan = self.pipeline.plan(query, top_n=self.config.top_n)
            cut = self.pipeline.query_notes(query)  # issue 22: the embedder cut it
        except InputError as e:
            raise ServeError(400, str(e)) from None
        except (BackendUnavailable, SampleError, OSError) as e:
            raise ServeError(502, f"routing failed: {e}") from None
        res, models = plan.route, plan.models
        if not models:
            raise ServeError(502, f"none of the routed models ({', '.join(res.ranking[:3])}) "
                                  f"is served by {self.engines.describe()}; pass --model-map",
                             code="model_not_found")
        expl = res.explanation.compact() if res.explanation is not None else None
        return Routing(res.cluster, models, plan.kind, plan.strategy, tuple(cut), expl)

    async def open(self, req: ChatRequest) -> tuple[Routing, AsyncIterator[Any]]:
        """The flow for `req.model` and its routing (routed before the reply starts, so
        the headers can say where it went). ServeError 404 for a model not offered, 400
        for a field a relay cannot map."""
        name = bare(req.model)
        if name in ROUTER_MODELS:
            each = self.config.route_each_turn
            routing = await anyio.to_thread.run_sync(self.route, req.routed_text(each))
            rule = EACH_TURN if each else FIRST_TURN
            if name == VOTE_MODEL and req.single is None:
                return routing, self.vote(req, routing, rule)
            # route, then pass through; for `avengers`, one routed sample (req.single)
            return routing, await self.relay(req, routing.models[0], routing, rule)
        served = await anyio.to_thread.run_sync(self.resolve, req.model)
        if served is None:
            raise ServeError(404, f"model {req.model!r} not found (see the model list)",
                             code="model_not_found")
        routing = Routing(None, [served])
        return routing, await self.relay(req, served, routing)

    def options(self, req: ChatRequest) -> dict[str, Any]:
        """Per-request options: the request's max_tokens (at most the server's), think
        (the server's when the request does not say), and the per-sample fields a vote
        honours (stop, top_p, format; see serve.fields.VOTE_FIELDS)."""
        options = dict(self.config.options)
        ceiling = options.get("max_tokens")
        if req.max_tokens is not None:
            options["max_tokens"] = min(req.max_tokens, ceiling or req.max_tokens)
        if req.think is not None:
            options["think"] = req.think
        if req.stop is not None:
            options["stop"] = list(req.stop)
        if req.top_p is not None:
            options["top_p"] = req.top_p
        if req.json_format is not None:
            options["format"] = req.json_format
        return options

    async def vote(self, req: ChatRequest, routing: Routing, rule: str | None = None
                   ) -> AsyncIterator[Begin | Tick | Reply]:
        """Vote over samples of the routed models; the winning sample's text replies.
        A vote needs different samples, so a temperature of 0 becomes the default. With
        a JSON format the samples vote with their parsed JSON (the query unchanged)."""
        temperature = req.temperature if req.temperature else DEFAULT_TEMPERATURE
        structured = req.json_format is not None
        if fields.tools_merely_offered(req.body):  # voted on text, and said so
            routing = replace(routing, notes=(*routing.notes, fields.TOOLS_NOTE))
        plan = VotePlan(list(routing.models), "free" if structured else routing.kind,
                        routing.strategy)
        run = self.pipeline.vote(
            plan, req.query, samples=self.config.samples, temperature=temperature,
            concurrency=self.config.concurrency, seed=req.seed or 0,
            prompt=req.prompt(None if structured else make_prompt(req.query, routing.kind)),
            options=self.options(req),
            early_stop=self.config.early_stop, confidence=self.config.confidence,
        )
        yield Begin()
        async for item in bridged(lambda _put: run.run(), run.cancel):
            if isinstance(item, Finished):
                result = _json_recount(item.value) if structured else item.value
                yield _verdict(result, routing, rule)
            else:
                yield item

    async def relay(self, req: ChatRequest, model: str, routing: Routing,
                    rule: str | None = None) -> AsyncIterator[Tick | passthrough.Chunk | Reply]:
        """The relay of `req` to `model` (serve.passthrough), planned now so a field with
        no counterpart is a 400 before the reply starts; the flow yields the engine's
        chunks, then the Reply (its answer extracted when the model was routed)."""
        call, conv = await anyio.to_thread.run_sync(
            passthrough.prepare, self.engines, req.api, req.body, model, req.include_usage)

        async def flow() -> AsyncIterator[Tick | passthrough.Chunk | Reply]:
            async for item in passthrough.run(call, conv):
                if not isinstance(item, Finished):
                    yield item
                    continue
                seen = item.value
                answer = extract(seen.text, routing.kind) if routing.cluster is not None \
                    else None
                yield Reply(seen.text, routing, answer=answer, relayed=True, raw=seen.body,
                            finish=seen.finish, usage=seen.usage, rule=rule,
                            single=req.single if bare(req.model) == VOTE_MODEL else None)

        return flow()


def _json_recount(result: VoteResult) -> VoteResult:
    """The vote recounted over the samples' parsed JSON (canonical: equal objects are one
    answer; replies that are not JSON do not vote)."""
    for s in result.samples:
        s.answer = canonical_json(s.text) if s.error is None else None
    result.tally = count_votes(result.samples, "json")
    result.kind = "json"
    return result


def _verdict(result: VoteResult, routing: Routing, rule: str | None = None) -> Reply:
    """The vote's Reply: the winning sample's text (the first to arrive among its voters);
    with no winner, the first answered sample's text; ServeError 502 when all failed. Its
    finish reason is the chosen sample's own; usage is summed over every sample drawn."""
    samples = {s.index: s for s in result.samples}
    ok = sorted((s for s in result.samples if s.error is None), key=lambda s: s.arrival)
    if not ok:
        raise ServeError(502, f"all {len(result.samples)} samples failed: "
                              f"{failure_summary(result.samples)}")
    tally = result.tally
    chosen = samples[tally.voters[tally.winner][0]] if tally.winner is not None else ok[0]
    usage = passthrough.Usage()
    for s in result.samples:
        usage.add(s.prompt_tokens, s.completion_tokens)
    used = Routing(routing.cluster, list(result.models) or routing.models, routing.kind,
                   routing.strategy, (*routing.notes, *result.notes), routing.explanation)
    return Reply(chosen.text, used, answer=tally.winner, votes=dict(tally.votes),
                 confidence=tally.confidence if tally.winner is not None else None,
                 finish=chosen.finish_reason or ("length" if chosen.truncated else "stop"),
                 usage=usage.as_dict(), rule=rule,
                 sampling={"drawn": result.drawn, "asked": result.asked,
                           "stopped": result.stopped})
