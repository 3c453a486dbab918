"""The client side of sampling: talk to a local Ollama through the official `ollama` package.

Why a wrapper: every call needs a connect, a first-token and a total timeout; a failed
sample must come back as a short reason, not a traceback; and a user's cancel must stop a
request that is blocked connecting or reading a socket. Each streaming call therefore owns
its own connection, which :meth:`StreamCall.abort` shuts down from any thread.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import re
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_HOST = "http://127.0.0.1:11434"
DEFAULT_TEMPERATURE = 0.7
TIMER_PREFIX = "avengers-timeout"
REASON_CHARS = 160  # a failure reason is one short line, whatever the server sent
POLL = 0.05  # seconds between checks for an abort while connecting


@dataclass(frozen=True)
class Timeouts:
    """Seconds allowed to connect, to receive the first token (includes model load; also
    bounds any later gap between tokens) and for the whole reply."""

    connect: float = 5.0
    first_token: float = 120.0
    total: float = 600.0


class OllamaUnavailable(RuntimeError):
    """The Ollama host cannot be reached; the message names the host and what to start."""

    def __init__(self, host: str, reason: str = "") -> None:
        self.host = host
        detail = f" ({reason})" if reason else ""
        super().__init__(
            f"cannot reach Ollama at {host}{detail}; start it with `ollama serve` "
            "or pass --host / set OLLAMA_HOST"
        )


class SampleError(Exception):
    """One request failed; `reason` is a short, user-readable explanation."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def resolve_host(host: str | None = None) -> str:
    """The host to use: the argument, else `OLLAMA_HOST`, else the local default.

    Accepts the forms Ollama accepts (`host`, `host:port`, `:port`, full URLs).
    """
    from ollama._client import _parse_host  # the client's own parser: same rules as ollama

    raw = (host or os.environ.get("OLLAMA_HOST") or "").strip()
    return _parse_host(raw) if raw else DEFAULT_HOST


# -- connections that can be aborted -----------------------------------------------------


def _tracking_transport() -> tuple[Any, Callable[[], None]]:
    """An httpx transport whose sockets can all be shut down (from any thread).

    Shutting a socket down wakes a thread blocked reading it, which closing it does not;
    a connect in progress notices the abort within POLL seconds.
    """
    import httpcore
    import httpx
    from httpcore._backends.sync import SyncStream  # what SyncBackend.connect_tcp returns

    lock = threading.Lock()
    sockets: list[socket.socket] = []
    aborted = threading.Event()

    class Backend(httpcore.SyncBackend):
        def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: Iterable[Any] | None = None,
        ) -> httpcore.NetworkStream:
            sock = None
            try:
                sock = _connect(host, port, timeout, local_address, aborted)
                for option in socket_options or ():
                    sock.setsockopt(*option)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except TimeoutError as exc:
                raise httpcore.ConnectTimeout(str(exc)) from exc
            except OSError as exc:
                if sock is not None:
                    sock.close()  # connected, but an option was refused: do not leak it
                raise httpcore.ConnectError(str(exc)) from exc
            with lock:
                sockets.append(sock)
            if aborted.is_set():
                _shutdown(sock)
            return SyncStream(sock)

    def abort() -> None:
        aborted.set()
        with lock:
            for sock in sockets:
                _shutdown(sock)

    transport = httpx.HTTPTransport(verify=_ssl_context(), retries=0)
    # httpx offers no public hook for the network backend; its pool is the one place.
    transport._pool = httpcore.ConnectionPool(
        ssl_context=_ssl_context(), network_backend=Backend(), retries=0
    )
    return transport, abort


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """Built once: building one per request costs tens of milliseconds."""
    import httpx

    return httpx.create_ssl_context()


def _connect(
    host: str,
    port: int,
    timeout: float | None,
    local_address: str | None,
    aborted: threading.Event,
) -> socket.socket:
    """`socket.create_connection`, but waiting in short polls so an abort stops it.

    A blocking connect cannot be woken from another thread; a host that drops SYNs would
    otherwise hold a cancelled sample for the whole connect timeout.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    error: OSError = OSError(f"no address for {host}")
    for family, kind, proto, _, address in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    ):
        if aborted.is_set():
            raise OSError("aborted")
        sock = socket.socket(family, kind, proto)
        try:
            if local_address:
                sock.bind((local_address, 0))
            sock.setblocking(False)
            code = sock.connect_ex(address)
            with selectors.DefaultSelector() as sel:
                sel.register(sock, selectors.EVENT_WRITE)
                while code in (errno.EINPROGRESS, errno.EALREADY, errno.EWOULDBLOCK):
                    if aborted.is_set():
                        raise OSError("aborted")
                    left = POLL if deadline is None else deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError("timed out")
                    if sel.select(min(POLL, left)):
                        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                raise OSError(code, os.strerror(code))
            sock.setblocking(True)
            return sock
        except TimeoutError:
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            if aborted.is_set():
                raise
            error = exc  # try the host's next address, as create_connection does
    raise error


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


def _make_client(host: str, timeouts: Timeouts, transport: Any = None) -> Any:
    import httpx
    import ollama

    timeout = httpx.Timeout(timeouts.total, connect=timeouts.connect, read=timeouts.first_token)
    return ollama.Client(host=host, timeout=timeout, transport=transport)


class StreamCall:
    """One streaming chat request. `run()` in a worker; `abort()` from any thread."""

    def __init__(
        self,
        host: str,
        model: str,
        prompt: str,
        *,
        seed: int | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
        timeouts: Timeouts | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.host = host
        self.model = model
        self.prompt = prompt
        self.timeouts = timeouts or Timeouts()
        self.options: dict[str, Any] = {"temperature": temperature, **(options or {})}
        if seed is not None:
            self.options["seed"] = seed
        self._abort_reason: str | None = None
        self._lock = threading.Lock()
        self._transport, self._abort = _tracking_transport()

    def abort(self, reason: str = "cancelled") -> None:
        """Stop the request now; `run()` then raises SampleError(reason)."""
        with self._lock:
            if self._abort_reason is None:
                self._abort_reason = reason
        self._abort()

    def run(self, on_token: Callable[[str], None] | None = None) -> str:
        """Stream the reply, calling `on_token(text)` per chunk; return the whole text.

        Raises SampleError with the reason on any failure (HTTP error, missing model,
        timeout, broken stream, a line that is not JSON, no `done: true`, abort).
        """
        total = self.timeouts.total
        timer = threading.Timer(total, self.abort, (f"no complete reply within {total:g} s",))
        timer.name = f"{TIMER_PREFIX}-{self.model}"
        timer.daemon = True
        timer.start()
        client = _make_client(self.host, self.timeouts, self._transport)
        parts: list[str] = []
        stream = None
        try:
            if self._abort_reason is not None:
                raise SampleError(self._abort_reason)
            done = False
            stream = client.chat(
                model=self.model,
                messages=[{"role": "user", "content": self.prompt}],
                stream=True,
                options=self.options,
            )
            for part in stream:
                if self._abort_reason is not None:
                    break
                text = part.message.content or ""
                if text:
                    parts.append(text)
                    if on_token is not None:
                        on_token(text)
                if part.done:
                    done = True
                    break
            if self._abort_reason is not None:
                raise SampleError(self._abort_reason)
            if not done:
                raise SampleError("stream ended without done: true")
            return "".join(parts)
        except SampleError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes a reason
            if self._abort_reason is not None:
                raise SampleError(self._abort_reason) from None
            raise SampleError(
                _reason(exc, self.host, self.model, self.timeouts, bool(parts))
            ) from None
        finally:
            timer.cancel()
            if stream is not None:
                stream.close()  # ends the response now, not when garbage-collected
            client.close()
            if timer.is_alive():
                timer.join()


def _reason(exc: Exception, host: str, model: str, t: Timeouts, started: bool) -> str:
    """A short explanation of why a request failed."""
    import httpx
    import ollama
    import pydantic

    if isinstance(exc, ollama.ResponseError):
        if exc.status_code == 404:
            return f"model {model!r} not found on {host} (try `ollama pull {model}`)"
        if exc.status_code == -1:
            return _one_line(f"server error: {exc.error}")
        return _one_line(f"HTTP {exc.status_code}: {exc.error}")
    if isinstance(exc, httpx.ConnectTimeout):
        return f"connect timeout after {t.connect:g} s to {host}"
    if isinstance(exc, httpx.ConnectError | ConnectionError):
        return f"cannot connect to {host} ({_short(exc)})"
    if isinstance(exc, httpx.ReadTimeout):
        if started:
            return f"no token for {t.first_token:g} s"
        return f"no first token within {t.first_token:g} s"
    if isinstance(exc, httpx.TimeoutException):
        return _one_line(f"timeout: {exc}")
    if isinstance(exc, json.JSONDecodeError):
        return "bad line from server (not JSON)"
    if isinstance(exc, pydantic.ValidationError):
        return "unexpected reply from server"
    if isinstance(exc, httpx.RemoteProtocolError):
        when = "mid-reply" if started else "before replying"
        return f"server closed the connection {when}"
    if isinstance(exc, httpx.HTTPError):
        return _one_line(f"stream broken: {exc}")
    return _one_line(f"{type(exc).__name__}: {exc}")


def _one_line(text: str) -> str:
    """`text` as one short line: HTML tags dropped (a proxy's error page), whitespace
    collapsed, cut at REASON_CHARS."""
    text = " ".join(re.sub(r"<[^>]*>", " ", text).split())
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1].rstrip() + "…"


# -- the host ----------------------------------------------------------------------------


class OllamaClient:
    """A connection to one Ollama host: list models, sample, embed."""

    def __init__(self, host: str | None = None, timeouts: Timeouts | None = None) -> None:
        self.host = resolve_host(host)
        self.timeouts = timeouts or Timeouts()

    def list_models(self) -> list[str]:
        """Names of the locally available models; raises OllamaUnavailable if unreachable."""
        import httpx
        import ollama

        client = _make_client(self.host, self.timeouts)
        try:
            resp = client.list()
        except (ConnectionError, httpx.TransportError) as exc:
            raise OllamaUnavailable(self.host, _short(exc)) from None
        except ollama.ResponseError as exc:
            raise OllamaUnavailable(self.host, f"HTTP {exc.status_code}: {exc.error}") from None
        finally:
            client.close()
        return sorted(m.model for m in resp.models if m.model)

    def stream_call(
        self,
        model: str,
        prompt: str,
        *,
        seed: int | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
    ) -> StreamCall:
        """A streaming request ready to `run()` (and `abort()` from another thread)."""
        return StreamCall(
            self.host, model, prompt, seed=seed, temperature=temperature, timeouts=self.timeouts
        )

    def chat(
        self,
        model: str,
        prompt: str,
        *,
        seed: int | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
        on_token: Callable[[str], None] | None = None,
    ) -> str:
        """One streamed reply as text; raises SampleError with the reason on failure."""
        call = self.stream_call(model, prompt, seed=seed, temperature=temperature)
        return call.run(on_token)

    def embed(self, model: str, texts: list[str]) -> list[list[float]]:
        """Embeddings from `/api/embed`; raises SampleError on failure."""
        client = _make_client(self.host, self.timeouts)
        try:
            return [list(v) for v in client.embed(model=model, input=texts).embeddings]
        except Exception as exc:  # noqa: BLE001 - every failure becomes a reason
            raise SampleError(_reason(exc, self.host, model, self.timeouts, False)) from None
        finally:
            client.close()


def _short(exc: BaseException) -> str:
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, ConnectionError | httpx.ConnectError):
        chain = [exc, exc.__cause__, exc.__context__]  # ollama re-raises without the cause
        text = " ".join(str(e) for e in chain if e is not None).lower()
        if any(w in text for w in ("name or service not known", "nodename", "name resolution")):
            return "host name not found"
        if "refused" in text or isinstance(exc, ConnectionRefusedError):
            return "connection refused"
        return _one_line(str(exc.__context__ or exc)) or "connection failed"
    return _one_line(str(exc)) or type(exc).__name__


# -- model names -------------------------------------------------------------------------

_SIZE = re.compile(r"(?<![a-z0-9.])(\d+(?:\.\d+)?)b(?![a-z0-9])")


def _key(name: str) -> str:
    name = name.lower()
    name = name.removesuffix(":latest")
    return re.sub(r"[^a-z0-9]", "", name)


def _sizes(name: str) -> set[str]:
    return set(_SIZE.findall(re.sub(r"[:_/-]", " ", name.lower())))


def suggest_tag(name: str, local: Iterable[str]) -> str | None:
    """Best-effort local tag for a routing-table model name, or None.

    `qwen2.5-7b-instruct` -> `qwen2.5:7b-instruct`; `gemma-2-9b-it` -> `gemma2:9b`.
    Names must agree on the parameter size (7b, 70b...) when the name states one.
    """
    local = list(local)
    if name in local:
        return name
    key, sizes = _key(name), _sizes(name)
    best: tuple[int, str] | None = None
    for tag in local:
        tkey = _key(tag)
        if not tkey or (sizes and _sizes(tag) != sizes):
            continue
        if tkey == key:
            return tag
        if key.startswith(tkey) or tkey.startswith(key):
            score = min(len(tkey), len(key))
            if best is None or score > best[0]:
                best = (score, tag)
    return best[1] if best else None


def map_models(
    names: Iterable[str], local: Iterable[str], mapping: Mapping[str, str] | None = None
) -> dict[str, str | None]:
    """Routing-table name -> local tag: the user's mapping first, then identity, then a
    suggestion; None when nothing local fits."""
    local = list(local)
    mapping = dict(mapping or {})
    out: dict[str, str | None] = {}
    for name in names:
        if name in mapping:
            out[name] = mapping[name]
        else:
            out[name] = suggest_tag(name, local)
    return out
