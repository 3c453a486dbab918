"""HTTP connections that a cancel can stop from any thread, for every backend's httpx client.

Each streaming call owns its own connections; :func:`tracking_transport` returns an httpx
transport and an `abort()` that shuts all its sockets down. Shutting a socket down wakes a
thread blocked reading it (closing it does not), and a connect in progress notices the
abort within POLL seconds.
"""

from __future__ import annotations

import errno
import functools
import importlib
import os
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from avengers_core.backends.base import Timeouts
from avengers_core.backends.errors import one_line

POLL = 0.05  # seconds between checks for an abort while connecting


def tracking_transport(stack: str = "httpx") -> tuple[Any, Callable[[], None]]:
    """An httpx transport whose sockets can all be shut down (from any thread).

    `stack` is "httpx" (the `ollama` client's HTTP library) or "httpx2" (the `openai`
    client's, a fork with the same layout over `httpcore2`). Shutting a socket down wakes
    a thread blocked reading it, which closing it does not; a connect in progress notices
    the abort within POLL seconds.
    """
    core_name = {"httpx": "httpcore", "httpx2": "httpcore2"}[stack]
    httpx = importlib.import_module(stack)
    httpcore = importlib.import_module(core_name)
    # what SyncBackend.connect_tcp returns
    SyncStream = importlib.import_module(f"{core_name}._backends.sync").SyncStream  # noqa: N806

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

    transport = httpx.HTTPTransport(verify=ssl_context(stack), retries=0)
    # httpx offers no public hook for the network backend; its pool is the one place.
    transport._pool = httpcore.ConnectionPool(
        ssl_context=ssl_context(stack), network_backend=Backend(), retries=0
    )
    return transport, abort


@functools.cache
def ssl_context(stack: str = "httpx") -> ssl.SSLContext:
    """Built once per HTTP stack: building one per request costs tens of milliseconds."""
    return importlib.import_module(stack).create_ssl_context()


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


def _is(exc: BaseException, *names: str) -> bool:
    """True when `exc` is an instance of a class of one of these names, in either HTTP
    stack (httpx or httpx2 raise classes of the same names)."""
    return any(c.__name__ in names for c in type(exc).__mro__)


def http_reason(exc: BaseException, host: str, t: Timeouts, started: bool) -> str:
    """The reason for a transport-level failure (httpx or httpx2), shared by the backends."""
    if _is(exc, "ConnectTimeout"):
        return f"connect timeout after {t.connect:g} s to {host}"
    if _is(exc, "ConnectError", "ConnectionError"):
        return f"cannot connect to {host} ({short_error(exc)})"
    if _is(exc, "ReadTimeout"):
        if started:
            return f"no token for {t.first_token:g} s"
        return f"no first token within {t.first_token:g} s"
    if _is(exc, "TimeoutException"):
        return one_line(f"timeout: {exc}")
    if _is(exc, "RemoteProtocolError"):
        when = "mid-reply" if started else "before replying"
        return f"server closed the connection {when}"
    if _is(exc, "HTTPError"):
        return one_line(f"stream broken: {exc}")
    return one_line(f"{type(exc).__name__}: {exc}")


def short_error(exc: BaseException) -> str:
    """A connection failure in a few words: host name not found, connection refused..."""
    if _is(exc, "TimeoutException"):
        return "timed out"
    if _is(exc, "ConnectionError", "ConnectError"):
        chain = [exc, exc.__cause__, exc.__context__]  # ollama re-raises without the cause
        text = " ".join(str(e) for e in chain if e is not None).lower()
        if any(w in text for w in ("name or service not known", "nodename", "name resolution")):
            return "host name not found"
        if "refused" in text or isinstance(exc, ConnectionRefusedError):
            return "connection refused"
        return one_line(str(exc.__context__ or exc)) or "connection failed"
    return one_line(str(exc)) or type(exc).__name__
