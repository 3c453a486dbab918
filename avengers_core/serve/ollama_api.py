"""The Ollama API: `GET /`, `GET /api/version`, `GET /api/tags`, `GET /api/ps`,
`POST /api/show`, `POST /api/embed`, `POST /api/chat` and `POST /api/generate` (NDJSON
stream by default, or `"stream": false`). Names carry tags as in Ollama (`avengers:latest`
is `avengers`); a chat without messages or a generate without a prompt is a preload
(`done_reason: "load"`), with `keep_alive: 0` an unload (`"unload"`).

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

    def part(self, req: ChatRequest, text: str, done: bool,
             reason: str | None = None) -> dict[str, Any]:
        part: dict[str, Any] = {"model": req.model, "created_at": _now()}
        if self.chat:
            part["message"] = {"role": "assistant", "content": text}
        else:
            part["response"] = text
        part["done"] = done
        if done:
            part["done_reason"] = reason or "stop"
        return part

    def final(self, req: ChatRequest, reply: Reply) -> dict[str, Any]:
        """The last line of a vote: the winner's done reason, eval counts summed over the
        samples, the `avengers` field."""
        part = self.part(req, "", True, reply.finish)
        if reply.usage is not None:
            part["prompt_eval_count"] = reply.usage["prompt_tokens"]
            part["eval_count"] = reply.usage["completion_tokens"]
        return {**part, "avengers": reply.avengers()}

    def body(self, req: ChatRequest, reply: Reply) -> dict[str, Any]:
        if reply.raw is not None:  # relayed: the engine's reply as it was
            return {**reply.raw, "model": req.model, "avengers": reply.avengers()}
        whole = self.final(req, reply)
        if self.chat:
            whole["message"]["content"] = reply.text
        else:
            whole["response"] = reply.text
        return whole

    async def stream(self, req: ChatRequest, events: AsyncIterator[Any]) -> AsyncIterator[str]:
        def line(obj: dict[str, Any]) -> str:
            return json.dumps(obj) + "\n"

        pending: dict[str, Any] | None = None  # a relayed line, held: the last gets `avengers`
        try:
            async for ev in events:
                if isinstance(ev, KeepAlive):
                    yield line(self.part(req, "", False))
                elif isinstance(ev, Begin):  # a vote: the reply starts at once
                    yield line(self.part(req, "", False))
                elif isinstance(ev, Chunk):
                    if pending is not None:
                        yield line(pending)
                    pending = {**ev.obj, "model": req.model}
                elif isinstance(ev, Text):
                    yield line(self.part(req, ev.text, False))
                elif ev.relayed:
                    last = pending if pending is not None else self.part(req, "", True,
                                                                         ev.finish)
                    pending = None
                    yield line({**last, "avengers": ev.avengers()})
                else:  # a vote's winner: its text goes now
                    yield line(self.part(req, ev.text, False))
                    yield line(self.final(req, ev))
        except ServeError as e:
            if pending is not None:
                yield line(pending)
            yield line(error_body(e.status, e.message))


def _common(body: dict[str, Any], messages: tuple[dict[str, str], ...], api: str,
            load: str | None = None) -> ChatRequest:
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise bad("options: expected an object (temperature, seed, num_predict, ...)")
    model = model_of(body)
    vote = bare(model) == VOTE_MODEL and load is None
    single = fields.single_reason(body) if vote else None
    if vote:
        fields.check_vote_fields(body, "ollama")
    if bare(model) in ROUTER_MODELS and load is None and not any(
            m["role"] == "user" and m["content"].strip() for m in messages):
        raise bad("messages: no user message to route")
    num_predict = int_of(options.get("num_predict"), "options.num_predict")
    stop = fields.stop_of(options.get("stop"), "options.stop")
    return ChatRequest(
        model=model, messages=messages, stream=flag(body, "stream", True),
        temperature=temperature_of(options.get("temperature"), "options.temperature"),
        seed=int_of(options.get("seed"), "options.seed"),
        max_tokens=num_predict if num_predict is not None and num_predict > 0 else None,
        think=think_of(body.get("think")), api=api, body=body, single=single,
        stop=tuple(stop) if stop is not None else None,
        top_p=fields.top_p_of(options.get("top_p"), "options.top_p"),
        json_format=fields.json_format_of(body, "ollama") if vote else None, load=load,
    )


def _load(body: dict[str, Any]) -> str:
    return "unload" if fields.is_unload(body.get("keep_alive")) else "load"


def parse_chat(body: dict[str, Any]) -> ChatRequest:
    """An `/api/chat` request checked; ServeError 400 naming the field. No messages (or
    an empty list) is Ollama's preload, or with `keep_alive: 0` unload, request."""
    raw = body.get("messages")
    if raw is None or raw == []:
        return _common(body, (), "ollama-chat", load=_load(body))
    messages = fields.conversation(raw)
    if bare(model_of(body)) == VOTE_MODEL and fields.single_reason(body) is None:
        messages_of(raw)  # a vote needs a text conversation ending with the user
    return _common(body, messages, "ollama-chat")


def parse_generate(body: dict[str, Any]) -> ChatRequest:
    """An `/api/generate` request (`prompt`, optional `system`) checked. No prompt (or an
    empty one) and no images is Ollama's preload, or with `keep_alive: 0` unload."""
    prompt, system = body.get("prompt"), body.get("system")
    if prompt in (None, "") and not body.get("images"):
        return _common(body, (), "ollama-generate", load=_load(body))
    if prompt is None:  # images alone
        prompt = ""
    if not isinstance(prompt, str):
        raise bad("prompt: expected a string")
    if bare(model_of(body)) in ROUTER_MODELS and not prompt.strip():
        raise bad("prompt: expected a non-empty string to route")
    if system is not None and not isinstance(system, str):
        raise bad("system: expected a string")
    messages = ({"role": "system", "content": system},) if system else ()
    return _common(body, (*messages, {"role": "user", "content": prompt}), "ollama-generate")


async def _answer(request: Request, chat: bool) -> Response:
    proto = OllamaReply(chat)
    try:
        body = await read_json(request)
        req = parse_chat(body) if chat else parse_generate(body)
    except ServeError as e:
        return proto.error(e)
    if req.load is not None:
        local = await _load_locally(request, req)
        if isinstance(local, Response):
            return local
        if local:  # the router's models, and models on OpenAI engines: nothing to load
            return JSONResponse(proto.part(req, "", True, req.load))
    return await respond(request, req, proto)


async def _load_locally(request: Request, req: ChatRequest) -> bool | Response:
    """Whether a preload or unload of `req.model` is answered here (True) or relayed to
    the Ollama engine that serves it (False); a 404 for a model not offered."""
    from anyio import to_thread

    service = request.app.state.service
    name = await to_thread.run_sync(service.resolve, req.model)
    if name is None:
        return JSONResponse(error_body(404, f"model '{req.model}' not found"), status_code=404)
    if name in ROUTER_MODELS:
        return True
    try:
        backend, _ = await to_thread.run_sync(service.engines.pick, name)
    except Exception:  # noqa: BLE001 - the relay will say why
        return False
    return backend.name != "ollama"


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


def tagged(name: str) -> str:
    """`name` as Ollama lists it: with a tag (`avengers` is `avengers:latest`)."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _listing(m: str, started: str) -> dict[str, Any]:
    name = tagged(m)
    return {"name": name, "model": name, "modified_at": started, "size": 0,
            "digest": hashlib.sha256(name.encode()).hexdigest(), "details": _details(m)}


async def tags(request: Request) -> Response:
    """`/api/tags`: every offered model, tagged, with `details`."""
    names = await _models(request)
    if isinstance(names, Response):
        return names
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(request.app.state.started))
    return JSONResponse({"models": [_listing(m, started) for m in names]})


async def ps(request: Request) -> Response:
    """`/api/ps`: the router's two models, always loaded (its router and embedder live in
    this process), then what the default Ollama engine says it has loaded."""
    from anyio import to_thread

    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(request.app.state.started))
    own = [{**_listing(m, started), "expires_at": "2999-01-01T00:00:00Z", "size_vram": 0,
            "context_length": 0} for m in ROUTER_MODELS]
    loaded = await to_thread.run_sync(_engine_ps, request.app.state.service)
    return JSONResponse({"models": own + loaded})


def _engine_ps(service: Any) -> list[dict[str, Any]]:
    """The default Ollama engine's `/api/ps` entries ([] when it is not Ollama or does
    not answer): the models loaded there, served here under the same names."""
    import httpx

    default = service.engines.default
    if default is None or default.name != "ollama":
        return []
    try:
        r = httpx.get(f"{default.host}/api/ps", timeout=default.timeouts.connect)
        models = r.json().get("models") if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return []
    return [m for m in models or () if isinstance(m, dict) and m.get("model")
            and m["model"] not in ROUTER_MODELS]


async def show(request: Request) -> Response:
    """`/api/show` for any offered name (tagged or not); 404 otherwise."""
    from anyio import to_thread

    try:
        body = await read_json(request)
        model = body.get("model", body.get("name"))
        if not isinstance(model, str) or not model:
            raise bad("model: expected a model name")
    except ServeError as e:
        return JSONResponse(error_body(e.status, e.message), status_code=e.status)
    service = request.app.state.service
    name = await to_thread.run_sync(service.resolve, model)
    if name is None:
        return JSONResponse(error_body(404, f"model '{model}' not found"), status_code=404)
    if name not in ROUTER_MODELS:
        relayed = await to_thread.run_sync(_engine_show, service, name)
        if relayed is not None:
            return JSONResponse(relayed)
    what = ("routes each request with the Avengers router" if name in ROUTER_MODELS
            else "served through the Avengers Lab router")
    return JSONResponse({"modelfile": f"# {tagged(name)}: {what}\n", "parameters": "",
                         "template": "{{ .Prompt }}", "details": _details(name),
                         "model_info": {}, "capabilities": ["completion"],
                         "modified_at": _now()})


def _engine_show(service: Any, name: str) -> dict[str, Any] | None:
    """An Ollama engine's own `/api/show` for `name` (its capabilities: tools, vision...),
    or None when the engine is not Ollama or does not answer."""
    import httpx

    try:
        backend, engine_model = service.engines.pick(name)
        if backend.name != "ollama":
            return None
        r = httpx.post(f"{backend.host}/api/show", json={"model": engine_model},
                       timeout=backend.timeouts.connect)
        return r.json() if r.status_code == 200 and isinstance(r.json(), dict) else None
    except Exception:  # noqa: BLE001 - then the router describes the model itself
        return None


async def embed(request: Request) -> Response:
    """`/api/embed`: relayed to a served embedding model, or the profile's embedder for
    the router's names (serve.embeddings)."""
    from avengers_core.serve.embeddings import ollama_embed

    try:
        body = await read_json(request)
        return JSONResponse(await ollama_embed(request.app.state.service, body))
    except ServeError as e:
        return JSONResponse(error_body(e.status, e.message), status_code=e.status)


async def version(request: Request) -> Response:
    return JSONResponse({"version": API_VERSION})


async def root(request: Request) -> Response:
    return PlainTextResponse("Ollama is running (Avengers Lab router)")


ROUTES = [
    Route("/", root, methods=["GET", "HEAD"]),
    Route("/api/version", version, methods=["GET"]),
    Route("/api/tags", tags, methods=["GET"]),
    Route("/api/show", show, methods=["POST"]),
    Route("/api/ps", ps, methods=["GET"]),
    Route("/api/embed", embed, methods=["POST"]),
    Route("/api/chat", chat, methods=["POST"]),
    Route("/api/generate", generate, methods=["POST"]),
]
