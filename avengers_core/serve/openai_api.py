"""The OpenAI-compatible API: `GET /v1/models`, `GET /v1/models/{id}`,
`POST /v1/chat/completions` and `POST /v1/completions` (SSE stream ending with
`data: [DONE]`, or one JSON object), `POST /v1/embeddings`.

Shapes follow the OpenAI API reference (chat completion object, chunk object, error
object `{"error": {"message", "type", "param", "code"}}`); a full queue answers 429, as
the API does for rate limits. Keep-alives are SSE comments (`: keep-alive`), which SSE
readers, the official `openai` client's included, skip.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from avengers_core.redact import scrub
from avengers_core.serve import fields
from avengers_core.serve.passthrough import Chunk
from avengers_core.serve.replies import KeepAlive, Protocol, respond
from avengers_core.serve.requests import (
    ChatRequest,
    ServeError,
    bad,
    flag,
    int_of,
    messages_of,
    model_of,
    read_json,
    temperature_of,
    think_of,
)
from avengers_core.serve.service import ROUTER_MODELS, VOTE_MODEL, Begin, Reply, Text, bare

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
               404: "invalid_request_error", 413: "invalid_request_error",
               429: "rate_limit_error"}
EFFORTS = {"none": False, "minimal": "low", "low": "low", "medium": "medium", "high": "high"}


def error_body(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    """The OpenAI error object (secrets scrubbed from `message`, issue 20)."""
    return {"error": {"message": scrub(message), "type": ERROR_TYPES.get(status, "api_error"),
                      "param": None, "code": code}}


def usage_of(reply: Reply) -> dict[str, int] | None:
    """OpenAI's `usage` for a reply (summed over a vote's samples), or None."""
    if reply.usage is None:
        return None
    p, c = reply.usage["prompt_tokens"], reply.usage["completion_tokens"]
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


class OpenAIChat(Protocol):
    """`/v1/chat/completions`, or with `completions` the legacy `/v1/completions`."""

    busy_status = 429
    stream_type = "text/event-stream"

    def __init__(self, completions: bool = False) -> None:
        self.completions = completions

    def error_body(self, status: int, message: str, code: str | None = None) -> dict[str, Any]:
        return error_body(status, message, code)

    def body(self, req: ChatRequest, reply: Reply) -> dict[str, Any]:
        if reply.raw is not None:  # relayed: the engine's reply as it was
            return {**reply.raw, "model": req.model, "avengers": reply.avengers()}
        finish = reply.finish or "stop"
        if self.completions:
            choice = {"index": 0, "text": reply.text, "logprobs": None, "finish_reason": finish}
        else:
            choice = {"index": 0, "finish_reason": finish, "logprobs": None,
                      "message": {"role": "assistant", "content": reply.text}}
        body = {
            "id": _id(self.completions), "created": int(time.time()), "model": req.model,
            "object": "text_completion" if self.completions else "chat.completion",
            "choices": [choice],
        }
        usage = usage_of(reply)
        if usage is not None:
            body["usage"] = usage
        return {**body, "avengers": reply.avengers()}

    async def stream(self, req: ChatRequest, events: AsyncIterator[Any]) -> AsyncIterator[str]:
        base = {"id": _id(self.completions), "created": int(time.time()), "model": req.model,
                "object": "text_completion" if self.completions else "chat.completion.chunk"}

        def event(obj: dict[str, Any]) -> str:
            return f"data: {json.dumps({**obj, 'model': req.model})}\n\n"

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
            if self.completions:
                choice = {"index": 0, "text": delta.get("content", ""), "logprobs": None,
                          "finish_reason": finish}
            else:
                choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return event({**base, "choices": [choice], **extra})

        pending: dict[str, Any] | None = None  # a relayed chunk, held: the last gets `avengers`
        try:
            async for ev in events:
                if isinstance(ev, KeepAlive):
                    yield ": keep-alive\n\n"
                elif isinstance(ev, Begin):  # a vote: the reply starts at once
                    yield chunk({"role": "assistant", "content": ""})
                elif isinstance(ev, Chunk):
                    if pending is not None:
                        yield event(pending)
                    pending = ev.obj
                elif isinstance(ev, Text):
                    yield chunk({"content": ev.text})
                elif ev.relayed:
                    if pending is None:
                        yield chunk({}, ev.finish or "stop", avengers=ev.avengers())
                    else:
                        yield event({**pending, "avengers": ev.avengers()})
                        pending = None
                else:  # a vote's winner: its text, the finish, the usage chunk if asked
                    yield chunk({"content": ev.text})
                    if req.include_usage:
                        yield chunk({}, ev.finish or "stop")
                        yield event({**base, "choices": [], "usage": usage_of(ev),
                                     "avengers": ev.avengers()})
                    else:
                        yield chunk({}, ev.finish or "stop", avengers=ev.avengers())
        except ServeError as e:
            if pending is not None:
                yield event(pending)
            yield f"data: {json.dumps(error_body(e.status, e.message, e.code))}\n\n"
        yield "data: [DONE]\n\n"


def _id(completions: bool = False) -> str:
    return f"{'cmpl' if completions else 'chatcmpl'}-{uuid.uuid4().hex[:24]}"


def parse(body: dict[str, Any], completions: bool = False) -> ChatRequest:
    """A chat completion (or, with `completions`, legacy completion) request checked;
    ServeError 400 naming the field. The vote checks every field (serve.fields); a relayed
    request is checked only as far as routing needs."""
    model = model_of(body)
    vote = bare(model) == VOTE_MODEL
    if completions:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str) or not prompt.strip():
            raise bad("prompt: expected a non-empty string (one prompt per request)")
        messages: tuple[dict[str, str], ...] = ({"role": "user", "content": prompt},)
    else:
        messages = fields.conversation(body.get("messages"))
    single = fields.single_reason(body) if vote else None
    n = int_of(body.get("n"), "n", 1)
    if vote:
        fields.check_vote_fields(body, "openai")
        if n not in (None, 1):
            raise bad("n: only 1 choice per request is served (the vote draws the samples)")
        if single is None and not completions:
            messages_of(body.get("messages"))  # a vote needs a text conversation
    if bare(model) in ROUTER_MODELS and not any(
            m["role"] == "user" and m["content"].strip() for m in messages):
        raise bad("messages: no user message to route")
    max_tokens = int_of(body.get("max_completion_tokens"), "max_completion_tokens", 1)
    if max_tokens is None:
        max_tokens = int_of(body.get("max_tokens"), "max_tokens", 1)
    think = think_of(body.get("think"))
    effort = body.get("reasoning_effort")
    if effort is not None:
        if effort not in EFFORTS:
            raise bad(f"reasoning_effort: expected one of {', '.join(EFFORTS)}")
        think = EFFORTS[effort]
    stop = fields.stop_of(body.get("stop"), "stop")
    return ChatRequest(
        model=model, messages=messages,
        stream=flag(body, "stream", False), temperature=temperature_of(body.get("temperature")),
        seed=int_of(body.get("seed"), "seed"), max_tokens=max_tokens, think=think,
        api="openai-completions" if completions else "openai-chat", body=body, single=single,
        stop=tuple(stop) if stop is not None else None,
        top_p=fields.top_p_of(body.get("top_p"), "top_p"),
        json_format=fields.json_format_of(body, "openai") if vote else None,
        include_usage=fields.include_usage_of(body),
    )


async def chat_completions(request: Request) -> Response:
    proto = OpenAIChat()
    try:
        req = parse(await read_json(request))
    except ServeError as e:
        return proto.error(e)
    return await respond(request, req, proto)


async def completions(request: Request) -> Response:
    """Legacy `/v1/completions`: the prompt is routed, then relayed or voted on."""
    proto = OpenAIChat(completions=True)
    try:
        req = parse(await read_json(request), completions=True)
    except ServeError as e:
        return proto.error(e)
    return await respond(request, req, proto)


async def _names(request: Request) -> list[str] | JSONResponse:
    from anyio import to_thread

    from avengers_core.backends import BackendUnavailable

    try:
        return await to_thread.run_sync(request.app.state.service.models)
    except BackendUnavailable as e:
        return JSONResponse(error_body(502, str(e)), status_code=502)


def _model(name: str, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": "avengers-lab"}


async def models(request: Request) -> Response:
    names = await _names(request)
    if isinstance(names, Response):
        return names
    created = int(request.app.state.started)
    return JSONResponse({"object": "list", "data": [_model(m, created) for m in names]})


async def model(request: Request) -> Response:
    """`GET /v1/models/{id}` (ids may hold slashes, as Hugging Face names do)."""
    names = await _names(request)
    if isinstance(names, Response):
        return names
    wanted = request.path_params["model"]
    name = next((n for n in (wanted, bare(wanted)) if n in names), None)
    if name is None:
        return JSONResponse(error_body(404, f"model {wanted!r} not found (see /v1/models)",
                                       "model_not_found"), status_code=404)
    return JSONResponse(_model(name, int(request.app.state.started)))


async def embeddings(request: Request) -> Response:
    """`/v1/embeddings`: relayed to a served embedding model, or the profile's embedder
    for the router's names (serve.embeddings)."""
    from avengers_core.serve.embeddings import openai_embeddings

    try:
        body = await read_json(request)
        return JSONResponse(await openai_embeddings(request.app.state.service, body))
    except ServeError as e:
        return JSONResponse(error_body(e.status, e.message, e.code), status_code=e.status)


ROUTES = [
    Route("/v1/models", models, methods=["GET"]),
    Route("/v1/models/{model:path}", model, methods=["GET"]),
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/completions", completions, methods=["POST"]),
    Route("/v1/embeddings", embeddings, methods=["POST"]),
]
