"""The Ollama API: `GET /`, `GET /api/version`, `GET /api/tags`, `POST /api/show`,
`POST /api/chat` and `POST /api/generate` (NDJSON stream by default, or `"stream": false`).

Shapes follow Ollama's docs/api.md: errors are `{"error": "..."}`; a full queue answers
503 (Ollama's own answer when its queue is full, OLLAMA_MAX_QUEUE). Keep-alives are
progress lines with empty text and `"done": false`, as Ollama itself sends while a model
thinks; the official `ollama` client parses every line as JSON, so a blank line would
break it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
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
from avengers_core.serve.service import ROUTER_MODELS, Reply, Text

API_VERSION = "0.12.6"
"""The Ollama release whose API this imitates (message.thinking, think levels); clients
read it from /api/version to decide what to send."""


def error_body(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    """Ollama's error object (secrets scrubbed from `message`, issue 20)."""
    return {"error": scrub(message)}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class OllamaReply(Protocol):
    """`/api/chat` (`message.content`) or `/api/generate` (`response`)."""

    def __init__(self, chat: bool) -> None:
        self.chat = chat

    def error_body(self, status: int, message: str, code: str | None = None) -> dict[str, Any]:
        return error_body(status, message, code)

    def part(self, req: ChatRequest, text: str, done: bool) -> dict[str, Any]:
        part: dict[str, Any] = {"model": req.model, "created_at": _now()}
        if self.chat:
            part["message"] = {"role": "assistant", "content": text}
        else:
            part["response"] = text
        part["done"] = done
        if done:
            part["done_reason"] = "stop"
        return part

    def body(self, req: ChatRequest, reply: Reply) -> dict[str, Any]:
        return {**self.part(req, reply.text, True), "avengers": reply.avengers()}

    async def stream(self, req: ChatRequest, events: AsyncIterator[Text | Reply | KeepAlive]
                     ) -> AsyncIterator[str]:
        def line(obj: dict[str, Any]) -> str:
            return json.dumps(obj) + "\n"

        yield line(self.part(req, "", False))  # the reply starts at once
        try:
            async for ev in events:
                if isinstance(ev, KeepAlive):
                    yield line(self.part(req, "", False))
                elif isinstance(ev, Text):
                    yield line(self.part(req, ev.text, False))
                else:
                    if not ev.relayed:  # a vote's winner: its text goes now
                        yield line(self.part(req, ev.text, False))
                    yield line({**self.part(req, "", True), "avengers": ev.avengers()})
        except ServeError as e:
            yield line(error_body(e.status, e.message))


def _common(body: dict[str, Any], messages: tuple[dict[str, str], ...]) -> ChatRequest:
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise bad("options: expected an object (temperature, seed, num_predict, ...)")
    num_predict = int_of(options.get("num_predict"), "options.num_predict")
    return ChatRequest(
        model=model_of(body), messages=messages, stream=flag(body, "stream", True),
        temperature=temperature_of(options.get("temperature"), "options.temperature"),
        seed=int_of(options.get("seed"), "options.seed"),
        max_tokens=num_predict if num_predict is not None and num_predict > 0 else None,
        think=think_of(body.get("think")),
    )


def parse_chat(body: dict[str, Any]) -> ChatRequest:
    """An `/api/chat` request checked; ServeError 400 naming the field."""
    return _common(body, messages_of(body.get("messages")))


def parse_generate(body: dict[str, Any]) -> ChatRequest:
    """An `/api/generate` request (`prompt`, optional `system`) checked."""
    prompt, system = body.get("prompt"), body.get("system")
    if not isinstance(prompt, str) or not prompt.strip():
        raise bad("prompt: expected a non-empty string")
    if system is not None and not isinstance(system, str):
        raise bad("system: expected a string")
    messages = ({"role": "system", "content": system},) if system else ()
    return _common(body, (*messages, {"role": "user", "content": prompt}))


async def _answer(request: Request, chat: bool) -> Response:
    proto = OllamaReply(chat)
    try:
        body = await read_json(request)
        req = parse_chat(body) if chat else parse_generate(body)
    except ServeError as e:
        return proto.error(e)
    return await respond(request, req, proto)


async def chat(request: Request) -> Response:
    return await _answer(request, chat=True)


async def generate(request: Request) -> Response:
    return await _answer(request, chat=False)


async def _models(request: Request) -> list[str] | JSONResponse:
    from anyio import to_thread

    from avengers_core.backends import BackendUnavailable

    try:
        return await to_thread.run_sync(request.app.state.service.models)
    except BackendUnavailable as e:
        return JSONResponse(error_body(502, str(e)), status_code=502)


def _details(model: str) -> dict[str, Any]:
    family = "avengers" if model in ROUTER_MODELS else ""
    return {"format": "", "family": family, "families": [family] if family else None,
            "parameter_size": "", "quantization_level": ""}


async def tags(request: Request) -> Response:
    names = await _models(request)
    if isinstance(names, Response):
        return names
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(request.app.state.started))
    return JSONResponse({"models": [
        {"name": m, "model": m, "modified_at": started, "size": 0,
         "digest": hashlib.sha256(m.encode()).hexdigest(), "details": _details(m)}
        for m in names]})


async def show(request: Request) -> Response:
    try:
        body = await read_json(request)
        model = body.get("model", body.get("name"))
        if not isinstance(model, str) or not model:
            raise bad("model: expected a model name")
    except ServeError as e:
        return JSONResponse(error_body(e.status, e.message), status_code=e.status)
    names = await _models(request)
    if isinstance(names, Response):
        return names
    if model not in names:
        return JSONResponse(error_body(404, f"model '{model}' not found"), status_code=404)
    what = ("routes each request with the Avengers router" if model in ROUTER_MODELS
            else "served through the Avengers Lab router")
    return JSONResponse({"modelfile": f"# {model}: {what}\n", "parameters": "",
                         "template": "{{ .Prompt }}", "details": _details(model),
                         "model_info": {}, "capabilities": ["completion"],
                         "modified_at": _now()})


async def version(request: Request) -> Response:
    return JSONResponse({"version": API_VERSION})


async def root(request: Request) -> Response:
    return PlainTextResponse("Ollama is running (Avengers Lab router)")


ROUTES = [
    Route("/", root, methods=["GET", "HEAD"]),
    Route("/api/version", version, methods=["GET"]),
    Route("/api/tags", tags, methods=["GET"]),
    Route("/api/show", show, methods=["POST"]),
    Route("/api/chat", chat, methods=["POST"]),
    Route("/api/generate", generate, methods=["POST"]),
]
