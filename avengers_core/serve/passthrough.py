"""Faithful pass-through (issue 21): the client's request goes to the engine as sent, only
`model` renamed, and the engine's reply comes back as it was (finish or done reason, usage
and the usage chunk, tool calls, log-probabilities, structured output).

When the client's protocol is the engine's, nothing is rewritten but the model name. When
they differ (an OpenAI client in front of Ollama, an Ollama client in front of vLLM or
llama.cpp) the request is mapped by :mod:`avengers_core.serve.fields` and each reply chunk
by a :class:`Converter` below; a field with no counterpart is a 400 before anything is sent.

The request runs in a worker thread (:func:`~avengers_core.serve.streams.bridged`) over a
transport whose sockets a cancel shuts at once, so a client that hangs up ends the engine's
request too.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from avengers_core.backends.transport import http_reason, tracking_transport
from avengers_core.serve import fields
from avengers_core.serve.requests import ServeError
from avengers_core.serve.streams import Finished, Tick, bridged

RELAYED_STATUSES = (400, 404, 413, 422)
"""Engine errors relayed with their own status (the request's fault); any other becomes a
502 naming the engine's status (an upstream 401 is this server's key, not the client's)."""

APIS = ("openai-chat", "openai-completions", "ollama-chat", "ollama-generate")
"""The client-facing request kinds (`ChatRequest.api`)."""


@dataclass(frozen=True)
class Chunk:
    """One streamed reply chunk, already in the client's protocol shape (its `model` is
    set by the protocol module)."""

    obj: dict[str, Any]


@dataclass(frozen=True)
class Upstream:
    """Where a served model lives: the engine's `protocol` ("ollama" or "openai"), its
    `base` URL (an Ollama host, or an OpenAI base URL ending in /v1), the engine's own
    `model` name, the engine's key (never shown) and timeouts."""

    protocol: str
    base: str
    model: str
    api_key: str | None
    timeouts: Any


@dataclass
class Relayed:
    """What a relay saw: the reply `text` (for answer extraction), the engine's `finish`
    reason (client's vocabulary), `usage` {prompt_tokens, completion_tokens} when the
    engine said, and the whole reply `body` (client's shape) when not streamed."""

    text: str = ""
    finish: str | None = None
    usage: dict[str, int] | None = None
    body: dict[str, Any] | None = None


def upstream_for(engines: Any, model: str) -> Upstream:
    """The engine serving `model` (the next replica in turn). ServeError 404 when none."""
    from avengers_core.errors import InputError

    try:
        backend, engine_model = engines.pick(model)
    except InputError as e:
        raise ServeError(404, str(e), code="model_not_found") from None
    return Upstream(backend.name, backend.host.rstrip("/"), engine_model,
                    getattr(backend, "api_key", None), backend.timeouts)


def plan(api: str, body: Mapping[str, Any], up: Upstream) -> tuple[str, dict[str, Any]]:
    """(path under the engine's base, request body) for a client request of kind `api`;
    ServeError 400 when a field has no counterpart in the engine's protocol."""
    same = {"openai-chat": ("openai", "/chat/completions"),
            "openai-completions": ("openai", "/completions"),
            "ollama-chat": ("ollama", "/api/chat"),
            "ollama-generate": ("ollama", "/api/generate")}[api]
    if same[0] == up.protocol:
        return same[1], {**body, "model": up.model}
    if up.protocol == "ollama":
        return fields.openai_to_ollama(body, up.model, completions=api == "openai-completions")
    return fields.ollama_to_openai(body, up.model, generate=api == "ollama-generate")


def upstream_path(up: Upstream, path: str) -> str:
    """The engine URL for `path` (an Ollama path, or one under the OpenAI base URL)."""
    return up.base + path


# -- reply converters ----------------------------------------------------------------------


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Converter:
    """Engine reply → client reply, and what it said. The base class relays as is."""

    def __init__(self, api: str, include_usage: bool = False) -> None:
        self.api = api
        self.include_usage = include_usage
        self.seen = Relayed()
        self.parts: list[str] = []

    def chunk(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        """The client chunks for one engine chunk (observing text, finish, usage)."""
        self._observe(obj)
        return [obj]

    def end(self) -> list[dict[str, Any]]:
        """Client chunks to send when the engine's stream ended."""
        return []

    def whole(self, obj: dict[str, Any]) -> dict[str, Any]:
        """The client's whole reply for the engine's whole reply."""
        self._observe(obj)
        return obj

    def result(self, body: dict[str, Any] | None = None) -> Relayed:
        """What was seen, with the whole reply `body` when not streamed."""
        self.seen.text = "".join(self.parts)
        self.seen.body = body
        return self.seen

    def _observe(self, obj: dict[str, Any]) -> None:
        """Note the text, finish reason and usage of one engine chunk or reply (either
        protocol, told apart by its shape)."""
        if "choices" in obj or "usage" in obj:  # OpenAI: chat or legacy completion
            for c in obj.get("choices") or ():
                if c.get("index", 0) != 0:
                    continue
                msg = c.get("delta") or c.get("message") or {}
                piece = msg.get("content") if isinstance(msg, dict) and "text" not in c \
                    else c.get("text")
                if isinstance(piece, str):
                    self.parts.append(piece)
                if c.get("finish_reason"):
                    self.seen.finish = c["finish_reason"]
            usage = obj.get("usage")
            if isinstance(usage, dict):
                self.seen.usage = {"prompt_tokens": int(usage.get("prompt_tokens") or 0),
                                   "completion_tokens": int(usage.get("completion_tokens")
                                                            or 0)}
        else:  # Ollama: /api/chat or /api/generate
            piece = (obj.get("message") or {}).get("content") if "message" in obj \
                else obj.get("response")
            if isinstance(piece, str):
                self.parts.append(piece)
            if obj.get("done"):
                self.seen.finish = obj.get("done_reason")
                if "eval_count" in obj or "prompt_eval_count" in obj:
                    self.seen.usage = {
                        "prompt_tokens": int(obj.get("prompt_eval_count") or 0),
                        "completion_tokens": int(obj.get("eval_count") or 0)}


class OllamaToOpenAI(Converter):
    """An Ollama engine's `/api/chat` or `/api/generate` reply as an OpenAI chat or
    legacy completion."""

    def __init__(self, api: str, include_usage: bool = False) -> None:
        super().__init__(api, include_usage)
        self.id = ("chatcmpl-" if api == "openai-chat" else "cmpl-") + uuid.uuid4().hex[:24]
        self.created = int(time.time())
        self.calls = 0
        self.started = False

    def _base(self) -> dict[str, Any]:
        kind = "chat.completion" if self.api == "openai-chat" else "text_completion"
        return {"id": self.id, "object": kind, "created": self.created, "model": ""}

    def _finish(self, obj: dict[str, Any]) -> str:
        if self.calls:
            return "tool_calls"
        reason = obj.get("done_reason") or "stop"
        return reason if reason in ("stop", "length") else "stop"

    def _usage(self, obj: dict[str, Any]) -> dict[str, int]:
        p, c = int(obj.get("prompt_eval_count") or 0), int(obj.get("eval_count") or 0)
        return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}

    def _message(self, obj: dict[str, Any], delta: bool) -> dict[str, Any]:
        src = obj.get("message") or {}
        out: dict[str, Any] = {}
        if delta and not self.started:
            out["role"] = "assistant"
            self.started = True
        elif not delta:
            out["role"] = "assistant"
        text = src.get("content", "") if self.api == "openai-chat" else obj.get("response", "")
        out["content"] = text or ("" if delta else text)
        if src.get("thinking") or obj.get("thinking"):
            out["reasoning_content"] = src.get("thinking") or obj.get("thinking")
        calls = []
        for call in src.get("tool_calls") or ():
            fn = call.get("function") or {}
            entry = {"id": f"call_{uuid.uuid4().hex[:12]}", "type": "function",
                     "function": {"name": fn.get("name", ""),
                                  "arguments": json.dumps(fn.get("arguments") or {})}}
            if delta:
                entry["index"] = self.calls
            self.calls += 1
            calls.append(entry)
        if calls:
            out["tool_calls"] = calls
            if not text and not delta:
                out["content"] = None
        return out

    def _logprobs(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        lp = obj.get("logprobs")
        return {"content": lp} if isinstance(lp, list) else None

    def chunk(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        """An Ollama line as an OpenAI chunk (and the usage chunk after the last, if asked)."""
        self._observe(obj)
        out: list[dict[str, Any]] = []
        done = bool(obj.get("done"))
        if self.api == "openai-chat":
            choice: dict[str, Any] = {"index": 0, "delta": self._message(obj, True),
                                      "logprobs": self._logprobs(obj),
                                      "finish_reason": self._finish(obj) if done else None}
            if done and not choice["delta"].get("content"):
                choice["delta"].pop("content", None)
        else:
            choice = {"index": 0, "text": obj.get("response", ""), "logprobs": None,
                      "finish_reason": self._finish(obj) if done else None}
        out.append({**self._base(), "object": self._base()["object"] + (
            ".chunk" if self.api == "openai-chat" else ""), "choices": [choice]})
        if done and self.include_usage:
            out.append({**out[0], "choices": [], "usage": self._usage(obj)})
        return out

    def whole(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Ollama's whole reply as an OpenAI chat completion or legacy completion."""
        self._observe(obj)
        if self.api == "openai-chat":
            choice = {"index": 0, "message": self._message(obj, False),
                      "logprobs": self._logprobs(obj), "finish_reason": self._finish(obj)}
        else:
            choice = {"index": 0, "text": obj.get("response", ""), "logprobs": None,
                      "finish_reason": self._finish(obj)}
        return {**self._base(), "choices": [choice], "usage": self._usage(obj)}

    def result(self, body: dict[str, Any] | None = None) -> Relayed:
        """What was seen, the finish reason in OpenAI's words."""
        seen = super().result(body)
        if seen.finish is not None:
            seen.finish = "tool_calls" if self.calls else (
                seen.finish if seen.finish in ("stop", "length") else "stop")
        return seen


class OpenAIToOllama(Converter):
    """An OpenAI-compatible engine's chat or legacy completion reply as Ollama's
    `/api/chat` or `/api/generate` reply (tool call fragments are joined and sent whole,
    as Ollama sends them)."""

    def __init__(self, api: str, include_usage: bool = False) -> None:
        super().__init__(api, include_usage)
        self.calls: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] = {}
        self.finish: str | None = None
        self.logprobs: list[Any] = []

    def _line(self, text: str = "", done: bool = False, thinking: str = "") -> dict[str, Any]:
        line: dict[str, Any] = {"model": "", "created_at": _now()}
        if self.api == "ollama-chat":
            line["message"] = {"role": "assistant", "content": text}
            if thinking:
                line["message"]["thinking"] = thinking
        else:
            line["response"] = text
            if thinking:
                line["thinking"] = thinking
        line["done"] = done
        return line

    def _done(self) -> dict[str, Any]:
        line = self._line(done=True)
        reason = self.finish or "stop"
        line["done_reason"] = "stop" if reason == "tool_calls" else reason
        self.seen.finish = line["done_reason"]
        if self.usage:  # counts only where the engine gave them (not a made-up 0)
            line["prompt_eval_count"] = int(self.usage.get("prompt_tokens") or 0)
            line["eval_count"] = int(self.usage.get("completion_tokens") or 0)
            self.seen.usage = {"prompt_tokens": line["prompt_eval_count"],
                               "completion_tokens": line["eval_count"]}
        return line

    def _tool_calls(self) -> list[dict[str, Any]]:
        out = []
        for _, call in sorted(self.calls.items()):
            args = call["arguments"]
            try:
                parsed = json.loads(args) if args else {}
            except json.JSONDecodeError:
                parsed = args  # relayed as the engine sent it
            out.append({"function": {"name": call["name"], "arguments": parsed}})
        return out

    def _take(self, c: dict[str, Any], msg: dict[str, Any]) -> tuple[str, str]:
        if self.api == "ollama-chat" or "message" in c or "delta" in c:
            text = msg.get("content") or ""
        else:
            text = c.get("text") or ""
        if c.get("text") and not text:
            text = c["text"]
        thinking = msg.get("reasoning_content") or msg.get("reasoning") or ""
        for call in msg.get("tool_calls") or ():
            slot = self.calls.setdefault(call.get("index", len(self.calls)),
                                         {"name": "", "arguments": ""})
            fn = call.get("function") or {}
            slot["name"] += fn.get("name") or ""
            slot["arguments"] += fn.get("arguments") or ""
        lp = c.get("logprobs")
        if isinstance(lp, dict) and isinstance(lp.get("content"), list):
            self.logprobs += lp["content"]
        if c.get("finish_reason"):
            self.finish = c["finish_reason"]
        return text, thinking if isinstance(thinking, str) else ""

    def chunk(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        """An OpenAI chunk as Ollama lines (tool call fragments are kept for the end)."""
        if isinstance(obj.get("usage"), dict):
            self.usage = obj["usage"]
        out = []
        for c in obj.get("choices") or ():
            if c.get("index", 0) != 0:
                continue
            text, thinking = self._take(c, c.get("delta") or {})
            if text:
                self.parts.append(text)
            if text or thinking:
                out.append(self._line(text, thinking=thinking))
        return out

    def end(self) -> list[dict[str, Any]]:
        """The joined tool calls, then the `done` line with the reason and counts."""
        out = []
        if self.calls and self.api == "ollama-chat":
            line = self._line()
            line["message"]["tool_calls"] = self._tool_calls()
            out.append(line)
        done = self._done()
        if self.logprobs:
            done["logprobs"] = self.logprobs
        out.append(done)
        return out

    def whole(self, obj: dict[str, Any]) -> dict[str, Any]:
        """An OpenAI whole reply as Ollama's whole reply."""
        if isinstance(obj.get("usage"), dict):
            self.usage = obj["usage"]
        text = thinking = ""
        for c in obj.get("choices") or ():
            if c.get("index", 0) == 0:
                text, thinking = self._take(c, c.get("message") or {})
        self.parts.append(text)
        line = self._done()
        body = self._line(text, done=True, thinking=thinking)
        body.update({k: v for k, v in line.items() if k not in body or k == "done"})
        if self.calls and self.api == "ollama-chat":
            body["message"]["tool_calls"] = self._tool_calls()
        if self.logprobs:
            body["logprobs"] = self.logprobs
        return body


def converter_for(api: str, up: Upstream, include_usage: bool) -> Converter:
    """The reply converter for a client of kind `api` in front of `up`."""
    client_protocol = "openai" if api.startswith("openai") else "ollama"
    if client_protocol == up.protocol:
        return Converter(api, include_usage)
    if up.protocol == "ollama":
        return OllamaToOpenAI(api, include_usage)
    return OpenAIToOllama(api, include_usage)


# -- the request ---------------------------------------------------------------------------


def error_message(raw: bytes) -> str:
    """The engine's own words from an error body (Ollama's, OpenAI's, FastAPI's)."""
    from avengers_core.backends.errors import one_line

    try:
        obj = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return one_line(raw.decode("utf-8", "replace")) or "no message"
    if isinstance(obj, dict):
        err = obj.get("error", obj.get("detail", obj.get("message")))
        if isinstance(err, dict):
            err = err.get("message", err)
        if err is not None:
            return one_line(err if isinstance(err, str) else json.dumps(err))
    return one_line(json.dumps(obj))


def _events(lines: Iterator[str], protocol: str) -> Iterator[dict[str, Any]]:
    """The engine's stream as JSON objects: NDJSON lines (Ollama) or SSE `data:` events
    (OpenAI, ending at `[DONE]`). ServeError 502 for an error inside the stream or a
    stream that ends early."""
    finished = False
    for line in lines:
        if protocol == "openai":
            if not line.startswith("data:"):
                continue  # comments, event names, blank separators
            line = line[5:].strip()
            if line == "[DONE]":
                finished = True
                break
        elif not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            raise ServeError(502, "the engine sent a line that is not JSON") from None
        if not isinstance(obj, dict):
            continue
        if "error" in obj and not obj.get("choices") and "done" not in obj:
            raise ServeError(502, f"the engine failed mid-reply: "
                                  f"{error_message(json.dumps(obj).encode())}")
        yield obj
        if protocol == "ollama" and obj.get("done"):
            finished = True
            break
    if not finished:
        raise ServeError(502, "the engine's stream ended before the reply was complete")


class Call:
    """One request to an engine, run in a worker thread and aborted from any thread."""

    def __init__(self, up: Upstream, path: str, body: dict[str, Any]) -> None:
        self.up = up
        self.url = upstream_path(up, path)
        self.body = body
        self.stream = body.get("stream", up.protocol == "ollama") is not False
        self._transport, self._abort = tracking_transport("httpx")
        self.aborted: str | None = None

    def abort(self, reason: str = "cancelled") -> None:
        """Stop the request now (its sockets are shut down)."""
        self.aborted = self.aborted or reason
        self._abort()

    def run(self, conv: Converter, put: Any) -> Relayed:
        """Send the request; `put` each client chunk (streamed) and return what was seen.
        ServeError with the engine's status (RELAYED_STATUSES) or 502."""
        import httpx

        t = self.up.timeouts
        headers = {"Content-Type": "application/json"}
        if self.up.api_key:
            headers["Authorization"] = f"Bearer {self.up.api_key}"
        timer = threading.Timer(t.total, self.abort, (f"no complete reply within {t.total:g} s",))
        timer.daemon = True
        timer.start()
        started = False
        try:
            with httpx.Client(transport=self._transport, timeout=httpx.Timeout(
                    t.total, connect=t.connect, read=t.first_token)) as client, \
                    client.stream("POST", self.url, json=self.body, headers=headers) as r:
                if r.status_code >= 400:
                    message = error_message(r.read())
                    if r.status_code in RELAYED_STATUSES:
                        raise ServeError(r.status_code, message)
                    raise ServeError(502, f"the engine answered HTTP {r.status_code}: {message}")
                if not self.stream:
                    try:
                        obj = json.loads(r.read())
                    except json.JSONDecodeError:
                        raise ServeError(502, "the engine's reply is not JSON") from None
                    return conv.result(conv.whole(obj))
                for obj in _events(r.iter_lines(), self.up.protocol):
                    started = True
                    for out in conv.chunk(obj):
                        put(Chunk(out))
                for out in conv.end():
                    put(Chunk(out))
                return conv.result()
        except ServeError:
            raise
        except Exception as exc:  # noqa: BLE001 - every transport failure is one line
            if self.aborted is not None:
                raise ServeError(502, self.aborted) from None
            raise ServeError(502, f"{self.up.model} @ {self.up.base}: "
                                  f"{http_reason(exc, self.up.base, t, started)}") from None
        finally:
            timer.cancel()


def prepare(engines: Any, api: str, body: Mapping[str, Any], model: str,
            include_usage: bool = False) -> tuple[Call, Converter]:
    """The relay of the client's `body` (a request of kind `api`) to the engine serving
    `model`, ready to :func:`run` (blocking: may list the engines' models first).
    ServeError 404 when no engine serves it, 400 when a field has no counterpart."""
    up = upstream_for(engines, model)
    path, sent = plan(api, body, up)
    return Call(up, path, sent), converter_for(api, up, include_usage)


async def run(call: Call, conv: Converter) -> AsyncIterator[Tick | Chunk | Finished]:
    """Run a prepared relay in a worker thread: yields Ticks while silent, each client
    Chunk when streamed, then Finished(Relayed); raises the engine's ServeError. Leaving
    early aborts the engine's request."""
    async for item in bridged(lambda put: call.run(conv, put),
                              lambda: call.abort("the client disconnected")):
        yield item


@dataclass
class Usage:
    """Token counts summed over samples (None where no engine reported any)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    reported: bool = False

    def add(self, prompt: int | None, completion: int | None) -> None:
        """Count one sample's tokens (skipped when the engine did not say)."""
        if prompt is None and completion is None:
            return
        self.reported = True
        self.prompt_tokens += prompt or 0
        self.completion_tokens += completion or 0

    def as_dict(self) -> dict[str, int] | None:
        """{prompt_tokens, completion_tokens}, or None when no engine reported usage."""
        if not self.reported:
            return None
        return {"prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens}
