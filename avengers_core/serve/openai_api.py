"""The OpenAI-compatible API: `GET /v1/models`, `POST /v1/chat/completions` (SSE stream
ending with `data: [DONE]`, or one JSON object).

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
from avengers_core.serve.service import Reply, Text

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
               404: "invalid_request_error", 413: "invalid_request_error",
               429: "rate_limit_error"}
EFFORTS = {"none": False, "minimal": "low", "low": "low", "medium": "medium", "high": "high"}


def error_body(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    """The OpenAI error object (secrets scrubbed from `message`, issue 20)."""
    return {"error": {"message": scrub(message), "type": ERROR_TYPES.get(status, "api_error"),
                      "param": None, "code": code}}


class OpenAIChat(Protocol):
    busy_status = 429
    stream_type = "text/event-stream"

    def error_body(self, status: int, message: str, code: str | None = None) -> dict[str, Any]:
        return error_body(status, message, code)

    def body(self, req: ChatRequest, reply: Reply) -> dict[str, Any]:
        return {
            "id": _id(), "object": "chat.completion", "created": int(time.time()),
            "model": req.model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": reply.text}}],
            "avengers": reply.avengers(),
        }

    async def stream(self, req: ChatRequest, events: AsyncIterator[Text | Reply | KeepAlive]
                     ) -> AsyncIterator[str]:
        base = {"id": _id(), "object": "chat.completion.chunk", "created": int(time.time()),
                "model": req.model}

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return f"data: {json.dumps({**base, 'choices': [choice], **extra})}\n\n"

        yield chunk({"role": "assistant", "content": ""})
        try:
            async for ev in events:
                if isinstance(ev, KeepAlive):
                    yield ": keep-alive\n\n"
                elif isinstance(ev, Text):
                    yield chunk({"content": ev.text})
                else:
                    if not ev.relayed:  # a vote's winner: its text goes now
                        yield chunk({"content": ev.text})
                    yield chunk({}, "stop", avengers=ev.avengers())
        except ServeError as e:
            yield f"data: {json.dumps(error_body(e.status, e.message, e.code))}\n\n"
        yield "data: [DONE]\n\n"


def _id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def parse(body: dict[str, Any]) -> ChatRequest:
    """A chat completion request checked; ServeError 400 naming the field."""
    n = int_of(body.get("n"), "n", 1)
    if n not in (None, 1):
        raise bad("n: only 1 choice per request is served (the vote draws the samples)")
    max_tokens = int_of(body.get("max_completion_tokens"), "max_completion_tokens", 1)
    if max_tokens is None:
        max_tokens = int_of(body.get("max_tokens"), "max_tokens", 1)
    think = think_of(body.get("think"))
    effort = body.get("reasoning_effort")
    if effort is not None:
        if effort not in EFFORTS:
            raise bad(f"reasoning_effort: expected one of {', '.join(EFFORTS)}")
        think = EFFORTS[effort]
    return ChatRequest(
        model=model_of(body), messages=messages_of(body.get("messages")),
        stream=flag(body, "stream", False), temperature=temperature_of(body.get("temperature")),
        seed=int_of(body.get("seed"), "seed"), max_tokens=max_tokens, think=think,
    )


async def chat_completions(request: Request) -> Response:
    proto = OpenAIChat()
    try:
        req = parse(await read_json(request))
    except ServeError as e:
        return proto.error(e)
    return await respond(request, req, proto)


async def models(request: Request) -> Response:
    from anyio import to_thread

    from avengers_core.backends import BackendUnavailable

    try:
        names = await to_thread.run_sync(request.app.state.service.models)
    except BackendUnavailable as e:
        return JSONResponse(error_body(502, str(e)), status_code=502)
    created = int(request.app.state.started)
    return JSONResponse({"object": "list", "data": [
        {"id": m, "object": "model", "created": created, "owned_by": "avengers-lab"}
        for m in names]})


ROUTES = [
    Route("/v1/models", models, methods=["GET"]),
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
]
