"""What a chat request asks for, whatever the protocol, and the checks that turn a malformed
one into a clear 400.

Both protocols (OpenAI `/v1/chat/completions`, Ollama `/api/chat` and `/api/generate`) are
parsed into one :class:`ChatRequest`. Every problem raises :class:`ServeError` with the
HTTP status and a one-line message naming the field and what was expected; the protocol
modules put it in their own error shape.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from avengers_core.serve.payload import PayloadError, parse_json

MAX_BODY_BYTES = 1 << 20
"""Request bodies above 1 MiB are refused (413): a chat request is text, and a huge body
would only hold the event loop while it is parsed."""
THINK_LEVELS = ("low", "medium", "high")


class ServeError(Exception):
    """A request that cannot be served: `status` (400, 401, 404, 413, 502...) and one line."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


@dataclass(frozen=True)
class ChatRequest:
    """One chat turn to answer. `messages`: [{"role", "content"}] with text content (for a
    vote the last one is from the user); `temperature`, `seed`, `max_tokens` and `think`
    are None where the client did not say.

    Issue 21: `api` is the kind of request (see serve.passthrough.APIS) and `body` the
    client's JSON as sent (what a relay forwards); `single` says why the vote cannot
    answer it (one routed sample answers instead); `stop`, `top_p` and `json_format`
    (None, "json" or a schema) are honoured per sample; `include_usage` asks for the
    usage chunk; `load` is "load" or "unload" for Ollama's preload and unload requests."""

    model: str
    messages: tuple[dict[str, str], ...]
    stream: bool
    temperature: float | None = None
    seed: int | None = None
    max_tokens: int | None = None
    think: bool | str | None = None
    api: str = "openai-chat"
    body: Mapping[str, Any] = field(default_factory=dict)
    single: str | None = None
    stop: tuple[str, ...] | None = None
    top_p: float | None = None
    json_format: Any = None
    include_usage: bool = False
    load: str | None = None

    @property
    def query(self) -> str:
        """The last user message: what gets voted on (and routed with --route-each-turn)."""
        users = [m["content"] for m in self.messages if m["role"] == "user"]
        return users[-1] if users else ""

    def routed_text(self, each_turn: bool = False) -> str:
        """What gets routed: the first user message (a conversation keeps its model), or
        with `each_turn` the last one."""
        users = [m["content"] for m in self.messages if m["role"] == "user"
                 and m["content"].strip()]
        if not users:
            return ""
        return users[-1] if each_turn else users[0]

    def prompt(self, last: str | None = None) -> str:
        """The conversation as one prompt (the backends take one user turn): the last user
        message alone, or a transcript ending with it when there is more; `last` replaces
        the last user message (the vote's answer-format instruction)."""
        last = self.query if last is None else last
        earlier = self.messages[:-1]
        if not earlier:
            return last
        lines = [f"{m['role'].capitalize()}: {m['content']}" for m in earlier]
        return "\n\n".join([*lines, f"User: {last}", "Assistant:"])


async def read_json(request: Request) -> dict[str, Any]:
    """The request body as a JSON object; ServeError 413 above MAX_BODY_BYTES (counted
    while reading, so a chunked body cannot slip past), 400 when it is not a JSON object,
    nests too deep or holds a lone surrogate (:mod:`avengers_core.serve.payload`)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ServeError(413, f"request body of {declared} bytes is over the "
                              f"{MAX_BODY_BYTES} byte limit")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise ServeError(413, f"request body is over the {MAX_BODY_BYTES} byte limit")
    try:
        obj = parse_json(bytes(body))  # depth and lone surrogates checked (issue 20)
    except PayloadError as e:
        raise ServeError(400, str(e)) from None
    if not isinstance(obj, dict):
        raise ServeError(400, "request body must be a JSON object")
    return obj


def bad(message: str) -> ServeError:
    """A 400 with `message`."""
    return ServeError(400, message)


def text_of(content: Any, where: str) -> str:
    """A message's text: a string, or OpenAI's list of parts (the `text` parts joined)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if parts and all(isinstance(p, str) for p in parts):
            return "\n".join(parts)
    raise bad(f"{where}.content: expected text (a string or a list of text parts)")


def messages_of(raw: Any) -> tuple[dict[str, str], ...]:
    """`messages` checked: a non-empty list of {role, content}, ending with a user message."""
    if not isinstance(raw, list) or not raw:
        raise bad("messages: expected a non-empty list of {role, content} objects")
    out = []
    for i, m in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise bad(f"{where}: expected an object with a string 'role'")
        out.append({"role": m["role"], "content": text_of(m.get("content", ""), where)})
    if out[-1]["role"] != "user" or not out[-1]["content"].strip():
        raise bad("messages: the last message must be a non-empty user message")
    return tuple(out)


def model_of(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad("model: expected a model name (see the model list)")
    return model


def flag(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad(f"{key}: expected true or false")
    return value


def temperature_of(value: Any, key: str = "temperature") -> float | None:
    """0 ≤ temperature ≤ 2 (the OpenAI API's range)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not 0 <= value <= 2:
        raise bad(f"{key}: expected a number from 0 to 2")
    return float(value)


def int_of(value: Any, key: str, low: int | None = None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low):
        raise bad(f"{key}: expected an integer" + (f" ≥ {low}" if low is not None else ""))
    return value


def think_of(value: Any, key: str = "think") -> bool | str | None:
    """`think`: true, false, or a level (low, medium, high)."""
    if value is None or isinstance(value, bool):
        return value
    if value in THINK_LEVELS:
        return value
    raise bad(f"{key}: expected true, false or one of {', '.join(THINK_LEVELS)}")
