"""A small real HTTP server on 127.0.0.1 that speaks the Ollama wire protocol, for tests.

It also speaks the OpenAI-compatible protocol (`/v1/models`, `/v1/chat/completions`,
`/v1/completions`, `/v1/embeddings`) with the same scripts, so the `openai` backend meets
the same faults plus
its own (HTTP 429 with Retry-After, a stream cut before `[DONE]`, an `error` object
mid-stream), and a server that honours `n` or, like llama-cpp-python's, ignores it.

Why: the voting code drives the real `ollama` client over real HTTP, so failures
(HTTP 500, unknown model, hangs, streams cut before `done`, bad lines) are the ones a
user meets. Each model is scripted with a :class:`ModelScript`.

    with FakeOllama({"qwen2.5:7b-instruct": ModelScript(replies=["#### 42"])}) as srv:
        srv.url  # "http://127.0.0.1:PORT"

Handlers notice a client that went away (as Ollama does) and `open_connections` counts
the connections the server holds, so tests can check that nothing is left open.
:class:`FullBacklog` is a listener that never accepts: connecting to it hangs.

`python -m tests.support.fake_ollama --port N --demo` serves a few demo models until killed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import re
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAILURES = ("http500", "html502", "hang", "stall", "cut", "drop", "reset", "badline",
            "errorline", "http429", "http503", "http401")
"""Failure modes: `http500` error status (Ollama's JSON error); `html502` a proxy's HTML
error page; `hang` never answers; `stall` sends one token then hangs; `cut` ends the
stream cleanly without a `done: true` line; `drop` closes the connection mid-stream;
`reset` closes it without any reply; `badline` sends a line that is not JSON;
`errorline` sends Ollama's mid-stream `{"error": ...}` line (on `/v1`: an SSE event holding
an `error` object); `http429` answers 429 with `Retry-After: 7` (the script's `retry_after`);
`http503` answers 503 as a busy Ollama (`server busy, please try again`) or, on `/v1`, as
llama.cpp's server loading its model (`Loading model`), with the script's `retry_after`;
`http401` answers 401 quoting the key it got, as hosted APIs do ("Incorrect API key
provided: sk-..."). On `/v1`, `cut` ends the stream without `[DONE]` and without a finish
reason."""


@dataclass
class ModelScript:
    """How one fake model answers.

    replies: texts to answer with; with a request seed, reply `seed % len(replies)`,
        otherwise the replies are cycled per request.
    latency: seconds before the first token of each reply.
    token_delay: seconds between streamed chunks.
    chunk: characters per streamed chunk.
    fail: a failure mode from FAILURES for every request, or None.
    fail_seeds: failure mode by request seed (overrides `fail`).
    thinking: a reasoning trace streamed before each reply (Ollama's `message.thinking`,
        OpenAI-style `delta.reasoning_content`).
    honours_n: on `/v1`, return `n` choices (choice i answers as seed + i would), or one
        (as llama-cpp-python's server and Ollama's `/v1` do).
    truncated: end each reply as the token limit does (finish/done reason "length").
    retry_after: the `Retry-After` header of `http429` and `http503` (None: no header).
    busy_first: the first `busy_first` chat requests for the model fail with `busy_mode`
        (a busy or warming engine), the later ones are answered as scripted.
    tool_call: when the request offers `tools`, answer with this call instead of text:
        {"name": ..., "arguments": {...}} (Ollama's `message.tool_calls`; on `/v1` streamed
        `delta.tool_calls` fragments and finish reason "tool_calls").
    interrupts: on `/v1`, end a stream with `[DONE]` and no finish reason as soon as a later
        request is in flight, as llama-cpp-python's server does unless started with
        `--interrupt_requests false`.

    Every script also (issue 21): cuts a reply at the first `stop` sequence asked
    (`options.stop`, or `stop` on `/v1`); reports usage (Ollama's `prompt_eval_count` and
    `eval_count`, `/v1`'s `usage`, and the usage chunk when `stream_options.include_usage`
    asks), counting a token per word; and sends log-probabilities when `logprobs` asks.
    """

    replies: list[str] = field(default_factory=lambda: ["The answer is 42.\n#### 42"])
    latency: float = 0.0
    token_delay: float = 0.0
    chunk: int = 4
    fail: str | None = None
    fail_seeds: dict[int, str] = field(default_factory=dict)
    thinking: str = ""
    honours_n: bool = True
    truncated: bool = False
    retry_after: str | None = "7"
    busy_first: int = 0
    busy_mode: str = "http503"
    tool_call: dict[str, Any] | None = None
    interrupts: bool = False

    def __post_init__(self) -> None:
        modes = [self.fail, *self.fail_seeds.values(), self.busy_mode]
        bad = [m for m in modes if m is not None and m not in FAILURES]
        if bad:
            raise ValueError(f"unknown failure mode {bad[0]!r}; expected one of {FAILURES}")
        if not self.replies:
            raise ValueError("replies must not be empty")


def fake_embedding(text: str, dim: int = 32) -> list[float]:
    """Deterministic bag-of-words vector: texts sharing words get similar vectors."""
    v = [0.0] * dim
    for word in re.findall(r"\w+", text.lower()):
        h = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "big")
        v[h % dim] += 1.0 if (h >> 16) & 1 else -1.0
    norm = math.sqrt(sum(x * x for x in v)) or 1.0
    return [x / norm for x in v]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many samples connect at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):  # clients that abort are normal
            super().handle_error(request, client_address)


class FakeOllama:
    """A threaded Ollama-protocol server on a free loopback port (context manager)."""

    def __init__(self, models: dict[str, ModelScript] | None = None, port: int = 0) -> None:
        self.models: dict[str, ModelScript] = dict(models or {})
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.arrivals = 0  # completion requests received
        self._connections: dict[socket.socket, threading.Thread] = {}  # and their handlers
        self._lock = threading.Lock()
        self._closed = threading.Condition(self._lock)
        self._counter: dict[str, int] = {}
        self._busy_seen: dict[str, int] = {}
        self._stopping = threading.Event()
        self._server = _Server(("127.0.0.1", port), _make_handler(self))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:PORT``."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeOllama:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-ollama", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release hanging handlers, and those waiting on a kept-alive
        connection for a next request (they would otherwise outlive the server)."""
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            handlers = dict(self._connections)
        for conn in handlers:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for handler in handlers.values():
            handler.join(5)
        if self._thread is not None:
            self._thread.join(5)

    @property
    def open_connections(self) -> int:
        """Connections the server holds now."""
        return len(self._connections)

    def wait_closed(self, timeout: float = 5.0, still_open: int = 0) -> bool:
        """Wait until the server holds at most `still_open` connections (e.g. a client's
        kept-alive pool that the test does not own); False if more are still open."""
        with self._closed:
            return self._closed.wait_for(lambda: self.open_connections <= still_open, timeout)

    def __enter__(self) -> FakeOllama:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- used by the handler -------------------------------------------------------------
    def _record(self, path: str, body: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append({"path": path, **body})

    def _reply_for(self, model: str, seed: int | None) -> tuple[str, str | None]:
        script = self.models[model]
        with self._lock:
            n = self._counter.get(model, 0)
            self._counter[model] = n + 1
        idx = seed if seed is not None else n
        failure = script.fail_seeds.get(seed, script.fail) if seed is not None else script.fail
        return script.replies[idx % len(script.replies)], failure

    def _busy(self, model: str) -> str | None:
        """The busy failure for this chat request, while the model's `busy_first` lasts."""
        script = self.models[model]
        with self._lock:
            n = self._busy_seen.get(model, 0)
            self._busy_seen[model] = n + 1
        return script.busy_mode if n < script.busy_first else None

    def _enter(self) -> int:
        """Count a request in; return its arrival number."""
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.arrivals += 1
            return self.arrivals

    def _overtaken(self, arrival: int) -> bool:
        """A request that arrived after `arrival` is in flight now."""
        with self._lock:
            return self.arrivals > arrival and self.in_flight > 1

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _connected(self, conn: socket.socket, is_open: bool) -> None:
        with self._closed:
            if is_open:
                self._connections[conn] = threading.current_thread()
            else:
                self._connections.pop(conn, None)
            self._closed.notify_all()


class FullBacklog:
    """A loopback listener whose accept queue is full, so a new connect hangs (the kernel
    drops its SYN), as with an overloaded or firewalled host (context manager; Linux)."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        host, port = self._listener.getsockname()[:2]
        self.url = f"http://{host}:{port}"
        self._filler = socket.create_connection((host, port), timeout=5)  # fills the queue

    def __enter__(self) -> FullBacklog:
        return self

    def __exit__(self, *exc: object) -> None:
        self._filler.close()
        self._listener.close()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _prompt_words(body: dict[str, Any]) -> int:
    """Prompt tokens for usage: words of the prompt, or of the messages' contents."""
    messages = body.get("messages")
    if isinstance(messages, list):
        return _words([m.get("content") for m in messages if isinstance(m, dict)])
    return _words(body.get("prompt"))


def _words(value: Any) -> int:
    """A token count for usage: words in every string inside `value`."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, dict):
        return sum(_words(v) for v in value.values())
    if isinstance(value, list):
        return sum(_words(v) for v in value)
    return 0


def _cut(text: str, stop: Any) -> str:
    """`text` up to the first of the `stop` sequences (a string or a list)."""
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    at = [text.find(s) for s in stops if isinstance(s, str) and s and s in text]
    return text[: min(at)] if at else text


def _logprobs(piece: str) -> list[dict[str, Any]]:
    return [{"token": piece, "logprob": -0.5, "bytes": list(piece.encode()),
             "top_logprobs": []}]


def _make_handler(srv: FakeOllama) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

        def setup(self) -> None:
            super().setup()
            srv._connected(self.connection, True)

        def finish(self) -> None:
            try:
                super().finish()
            finally:
                srv._connected(self.connection, False)

        def _wait(self, seconds: float) -> bool:
            """Sleep up to `seconds`; True (stop now) if the server stops or the client left.

            Like Ollama, a handler notices a client that went away and stops generating.
            """
            if seconds <= 0:
                return srv._stopping.is_set()
            deadline = time.monotonic() + seconds
            with selectors.DefaultSelector() as sel:
                sel.register(self.connection, selectors.EVENT_READ)
                while not srv._stopping.is_set():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    if sel.select(min(left, 0.05)):
                        if self._client_gone():
                            return True
                        time.sleep(min(left, 0.05))  # unexpected bytes: not a hang-up
            return True

        def _client_gone(self) -> bool:
            try:
                return self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
            except BlockingIOError:
                return False
            except OSError:
                return True

        def _json(self, status: int, obj: dict[str, Any]) -> None:
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict[str, Any]:
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b"{}"
            try:
                obj = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                return {}
            return obj if isinstance(obj, dict) else {}

        def do_GET(self) -> None:
            if self.path == "/api/tags":
                models = [
                    {
                        "name": m,
                        "model": m,
                        "modified_at": "2024-01-01T00:00:00Z",
                        "size": 1000,
                        "digest": hashlib.sha256(m.encode()).hexdigest(),
                        "details": {"format": "gguf", "family": "fake"},
                    }
                    for m in srv.models
                ]
                self._json(200, {"models": models})
            elif self.path == "/v1/models":
                data = [{"id": m, "object": "model", "owned_by": "fake"} for m in srv.models]
                self._json(200, {"object": "list", "data": data})
            elif self.path == "/api/ps":  # the models asked for so far count as loaded
                with srv._lock:
                    asked = [m for m in srv._counter if m in srv.models]
                self._json(200, {"models": [
                    {"name": m, "model": m, "size": 1000, "size_vram": 1000,
                     "digest": hashlib.sha256(m.encode()).hexdigest(),
                     "details": {"format": "gguf", "family": "fake"},
                     "expires_at": "2999-01-01T00:00:00Z"} for m in asked]})
            elif self.path == "/api/version":
                self._json(200, {"version": "0.0.0-fake"})
            elif self.path in ("/", ""):
                data = b"Ollama is running"
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            else:
                self._json(404, {"error": f"no route {self.path}"})

        def do_HEAD(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            body = self._body()
            srv._record(self.path, {**body, "authorization": self.headers.get("Authorization")})
            if self.path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings"):
                self._openai(body)
                return
            if self.path not in ("/api/chat", "/api/generate", "/api/embed"):
                self._json(404, {"error": f"no route {self.path}"})
                return
            model = str(body.get("model", ""))
            if model not in srv.models:
                self._json(404, {"error": f'model "{model}" not found, try pulling it first'})
                return
            if self.path == "/api/embed":
                inputs = body.get("input", "")
                texts = [inputs] if isinstance(inputs, str) else list(inputs)
                self._json(200, {"model": model, "embeddings": [fake_embedding(t) for t in texts]})
                return
            srv._enter()
            try:
                self._generate(model, body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client went away (cancel or timeout)
            finally:
                srv._leave()

        def _fail_early(self, script: ModelScript, failure: str | None) -> bool:
            """Wait the script's latency, then play a failure that comes before any token;
            True when the request is over."""
            if failure == "hang":
                self._wait(math.inf)
                return True
            if self._wait(script.latency):
                return True
            if failure == "reset":
                self.close_connection = True
                return True
            if failure == "http500":
                self._json(500, {"error": "fake internal server error"})
                return True
            if failure == "http401":  # a hosted API's 401 quotes the key it was sent
                given = (self.headers.get("Authorization") or "").partition(" ")[2]
                message = f"Incorrect API key provided: {given}. Find your key in the console."
                if self.path.startswith("/v1"):
                    self._json(401, {"error": {"message": message, "code": "invalid_api_key",
                                               "type": "invalid_request_error"}})
                else:
                    self._json(401, {"error": f"unauthorized: {message}"})
                return True
            if failure in ("http429", "http503"):
                if failure == "http429":
                    body = {"error": {"message": "fake rate limit", "type": "rate_limit_error"}}
                elif self.path.startswith("/v1/"):  # llama.cpp's server while it loads
                    body = {"error": {"code": 503, "message": "Loading model",
                                      "type": "unavailable_error"}}
                else:  # Ollama with its queue full (OLLAMA_MAX_QUEUE)
                    body = {"error": "server busy, please try again.  maximum pending "
                                     "requests exceeded"}
                data = json.dumps(body).encode()
                self.send_response(int(failure[4:]))
                self.send_header("Content-Type", "application/json")
                if script.retry_after is not None:
                    self.send_header("Retry-After", script.retry_after)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return True
            if failure == "html502":
                page = "<html><body><h1>502 Bad Gateway</h1>" + "<p>upstream</p>" * 500
                self.send_response(502)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page.encode())
                return True
            return False

        def _generate(self, model: str, body: dict[str, Any]) -> None:
            script = srv.models[model]
            options = body.get("options") or {}
            seed = options.get("seed")
            text, failure = srv._reply_for(model, seed if isinstance(seed, int) else None)
            failure = srv._busy(model) or failure
            text = _cut(text, options.get("stop"))
            chat = self.path == "/api/chat"
            call = script.tool_call if chat and body.get("tools") else None
            if call is not None:
                text = ""
            usage = {"prompt_eval_count": _prompt_words(body),
                     "eval_count": len(text.split()) + _words(call)}
            logprobs = bool(body.get("logprobs"))
            if self._fail_early(script, failure):
                return
            if body.get("stream", True) is False:
                whole = _part(model, text, chat, done=True)
                whole.update(usage)
                if script.truncated:
                    whole["done_reason"] = "length"
                if call is not None:
                    whole["message"]["tool_calls"] = [{"function": call}]
                if logprobs:
                    whole["logprobs"] = _logprobs(text)
                self._json(200, whole)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            size = max(1, script.chunk)
            if chat and script.thinking and body.get("think") is not False:
                part = _part(model, "", chat, done=False)
                part["message"]["thinking"] = script.thinking  # Ollama >= 0.12.4
                self._chunk(json.dumps(part) + "\n")
            if call is not None:
                part = _part(model, "", chat, done=False)
                part["message"]["tool_calls"] = [{"function": call}]
                self._chunk(json.dumps(part) + "\n")
            pieces = [text[i : i + size] for i in range(0, len(text), size)] or [""]
            for i, piece in enumerate(pieces):
                if i and self._wait(script.token_delay):
                    return
                part = _part(model, piece, chat, done=False)
                if logprobs:
                    part["logprobs"] = _logprobs(piece)
                self._chunk(json.dumps(part) + "\n")
                if failure == "stall":
                    self._wait(math.inf)
                    return
                if i == len(pieces) // 2:
                    if failure == "badline":
                        self._chunk("this is not json\n")
                    elif failure == "errorline":
                        self._chunk(json.dumps({"error": "fake out of memory"}) + "\n")
                        failure = "cut"  # Ollama ends the stream after an error line
                        break
                    elif failure == "drop":
                        self.close_connection = True
                        return  # no terminating chunk: the connection just closes
            if failure != "cut":
                last = _part(model, "", chat, done=True)
                last.update(usage)
                if script.truncated:
                    last["done_reason"] = "length"
                self._chunk(json.dumps(last) + "\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _openai(self, body: dict[str, Any]) -> None:
            """`/v1/chat/completions` and `/v1/completions` (streamed as SSE, or not) and
            `/v1/embeddings`."""
            model = str(body.get("model", ""))
            if model not in srv.models:
                self._json(404, {"error": {"message": f"The model `{model}` does not exist.",
                                           "type": "invalid_request_error",
                                           "code": "model_not_found"}})
                return
            if self.path == "/v1/embeddings":
                inputs = body.get("input", "")
                texts = [inputs] if isinstance(inputs, str) else list(inputs)
                data = [{"object": "embedding", "index": i, "embedding": fake_embedding(t)}
                        for i, t in enumerate(texts)]
                self._json(200, {"object": "list", "data": data, "model": model})
                return
            arrival = srv._enter()
            try:
                self._complete(model, body, arrival)
            except (BrokenPipeError, ConnectionResetError):
                pass
            finally:
                srv._leave()

        def _complete(self, model: str, body: dict[str, Any], arrival: int = 0) -> None:
            script = srv.models[model]
            seed = body.get("seed")
            n = int(body.get("n") or 1) if script.honours_n else 1
            completion = self.path == "/v1/completions"
            replies = []
            failure = None
            for i in range(n):
                text, fail = srv._reply_for(model, seed + i if isinstance(seed, int) else None)
                replies.append(_cut(text, body.get("stop")))
                failure = failure or fail
            failure = srv._busy(model) or failure
            call = script.tool_call if body.get("tools") and not completion else None
            if call is not None:
                replies = ["" for _ in replies]
            prompt_tokens = _prompt_words(body)
            completion_tokens = sum(len(t.split()) for t in replies) + _words(call)
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                     "total_tokens": prompt_tokens + completion_tokens}
            finish = "tool_calls" if call is not None else (
                "length" if script.truncated else "stop")
            logprobs = bool(body.get("logprobs"))
            if self._fail_early(script, failure):
                return
            base = {"id": "chatcmpl-fake", "created": int(time.time()), "model": model}
            if body.get("stream") is not True:
                if completion:
                    choices = [{"index": i, "finish_reason": finish, "text": text,
                                "logprobs": None} for i, text in enumerate(replies)]
                    self._json(200, {**base, "object": "text_completion", "choices": choices,
                                     "usage": usage})
                    return
                choices = [{"index": i, "finish_reason": finish,
                            "logprobs": {"content": _logprobs(text)} if logprobs else None,
                            "message": {"role": "assistant", "content": text}}
                           for i, text in enumerate(replies)]
                if call is not None:
                    for c in choices:
                        c["message"]["content"] = None
                        c["message"]["tool_calls"] = [{
                            "id": "call_fake", "type": "function", "function": {
                                "name": call["name"],
                                "arguments": json.dumps(call["arguments"])}}]
                self._json(200, {**base, "object": "chat.completion", "choices": choices,
                                 "usage": usage})
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

            def event(delta: dict[str, Any], i: int, finish: str | None = None) -> None:
                if completion:
                    choice = {"index": i, "text": delta.get("content", ""), "logprobs": None,
                              "finish_reason": finish}
                    chunk = {**base, "object": "text_completion", "choices": [choice]}
                else:
                    choice = {"index": i, "delta": delta, "finish_reason": finish}
                    if logprobs and delta.get("content"):
                        choice["logprobs"] = {"content": _logprobs(delta["content"])}
                    chunk = {**base, "object": "chat.completion.chunk", "choices": [choice]}
                self._chunk(f"data: {json.dumps(chunk)}\n\n")

            size = max(1, script.chunk)
            if script.thinking:
                for i in range(n):
                    event({"role": "assistant", "reasoning_content": script.thinking}, i)
            if call is not None:  # the call's arguments in two fragments, as engines send
                args = json.dumps(call["arguments"])
                half = len(args) // 2
                for i in range(n):
                    event({"role": "assistant", "content": None, "tool_calls": [{
                        "index": 0, "id": "call_fake", "type": "function",
                        "function": {"name": call["name"], "arguments": args[:half]}}]}, i)
                    event({"tool_calls": [{"index": 0, "function": {
                        "arguments": args[half:]}}]}, i)
            pieces = [[t[k : k + size] for k in range(0, len(t), size)] or [""]
                      for t in replies]
            for step in range(max(len(p) for p in pieces)):
                if step and self._wait(script.token_delay):
                    return
                for i, p in enumerate(pieces):
                    if step < len(p) and (p[step] or call is None):
                        event({"content": p[step]}, i)
                if script.interrupts and srv._overtaken(arrival):
                    failure = "interrupted"
                    self._chunk("data: [DONE]\n\n")  # as llama-cpp-python: no finish reason
                    break
                if failure == "stall":
                    self._wait(math.inf)
                    return
                if step == len(pieces[0]) // 2:
                    if failure == "badline":
                        self._chunk("data: this is not json\n\n")
                    elif failure == "errorline":
                        error = {"error": {"message": "fake out of memory", "code": 500}}
                        self._chunk(f"data: {json.dumps(error)}\n\n")
                        break
                    elif failure == "cut":
                        break
                    elif failure == "drop":
                        self.close_connection = True
                        return
            if failure not in ("cut", "errorline", "interrupted"):
                for i in range(n):
                    event({}, i, finish)
                if (body.get("stream_options") or {}).get("include_usage"):
                    self._chunk(f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}"
                                "\n\n")
                self._chunk("data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _chunk(self, s: str) -> None:
            data = s.encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    return Handler


def _part(model: str, text: str, chat: bool, done: bool) -> dict[str, Any]:
    part: dict[str, Any] = {"model": model, "created_at": _now(), "done": done}
    if chat:
        part["message"] = {"role": "assistant", "content": text}
    else:
        part["response"] = text
    if done:
        part.update(done_reason="stop", total_duration=1000, eval_count=len(text.split()))
    return part


def demo_models() -> dict[str, ModelScript]:
    """A few models for the browser test and manual tries: mostly agree, sometimes not."""
    math_replies = [
        "Let me work it out step by step.\nSo the total is 42.\n#### 42",
        "First add, then multiply. The answer is 42.",
        "I think it is 41.\n#### 41",
        "Carefully: 6 * 7 = 42.\n\\boxed{42}",
    ]
    return {
        "qwen2.5:7b-instruct": ModelScript(replies=math_replies, latency=0.2, token_delay=0.02),
        "llama3.1:8b": ModelScript(
            replies=["The answer is 41.", "#### 42", "Answer: 41"], latency=0.2, token_delay=0.02
        ),
        "gemma2:9b": ModelScript(replies=["Answer: C", "(C) is right", "B."], latency=0.1),
        "nomic-embed-text": ModelScript(replies=[""]),
    }


def main(argv: list[str] | None = None) -> None:
    """Serve demo (or no) models on 127.0.0.1 until interrupted."""
    ap = argparse.ArgumentParser(description="Fake Ollama server for tests (127.0.0.1 only).")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--demo", action="store_true", help="serve a few demo models")
    args = ap.parse_args(argv)
    srv = FakeOllama(demo_models() if args.demo else {}, port=args.port)
    srv.start()
    print(srv.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
