"""Slow and many clients: header and idle timeouts and a cap on open connections.

Why (issue 20): uvicorn has a keep-alive timeout between requests, but none for a request's
headers (a client that sends half a header line is held forever, and with
`--api-key-env` that comes before the key check) and by default no cap on connections.
:func:`server_config` builds the uvicorn configuration of `avengers serve` with
:class:`GuardedH11Protocol`, uvicorn's h11 protocol plus:

- a **header timeout**: a connection that has not sent a whole request head
  `header_timeout_s` after it opened (a later request: after its first byte) is closed;
- an **idle timeout** between requests (uvicorn's `timeout_keep_alive`);
- a **connection cap**: beyond `max_connections` open connections, a new connection's
  request is answered 503 in the protocol's error shape and the connection closed (as
  uvicorn's `limit_concurrency`, whose 503 is plain text);
- a connection whose response went out before its request body was read (413, 408, a
  refusal) is closed, so a client dripping the rest of a body cannot hold it.

The body timeout is :class:`avengers_core.serve.guard.Guard`'s (it answers 408 in the
protocol's shape). Defaults are a few seconds for headers, as web servers use (nginx's
`client_header_timeout` is 60 s; Go's net/http suggests a few seconds for
`ReadHeaderTimeout`): a local client sends its headers in one write.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import h11
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from avengers_core.serve.guard import BODY_TIMEOUT_S, error_response

HEADER_TIMEOUT_S = 5.0
IDLE_TIMEOUT_S = 5.0
MAX_CONNECTIONS = 128


@dataclass(frozen=True)
class Limits:
    """Seconds for a request head (`header_timeout_s`) and body (`body_timeout_s`, applied
    by the Guard), idle seconds between requests (`idle_timeout_s`), and open connections
    at most (`max_connections`). Raises ValueError for values ≤ 0."""

    header_timeout_s: float = HEADER_TIMEOUT_S
    body_timeout_s: float = BODY_TIMEOUT_S
    idle_timeout_s: float = IDLE_TIMEOUT_S
    max_connections: int = MAX_CONNECTIONS

    def __post_init__(self) -> None:
        if min(self.header_timeout_s, self.body_timeout_s, self.idle_timeout_s) <= 0 \
                or self.max_connections < 1:
            raise ValueError("timeouts must be > 0 and max_connections ≥ 1")


def over_capacity(limit: int) -> Any:
    """The ASGI app answering on a connection beyond the cap of `limit`: 503 in the
    protocol's error shape, then the connection closes."""

    async def refuse(scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(scope.get("path", "/"), 503,
                                  f"too many open connections (at most {limit}); retry later",
                                  "server_busy", headers={"connection": "close"})
        await response(scope, receive, send)

    return refuse


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header timeout, a connection cap and closing after an
    early response (see the module docstring); `limits` is set by :func:`protocol_for`."""

    limits: Limits = Limits()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        if len(self.connections) > self.limits.max_connections:
            self.app = over_capacity(self.limits.max_connections)  # answered 503
        self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.limits.header_timeout_s,
                                                    self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()  # no whole request head in time

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            self._arm_head_timer()  # a new request starts: its head has a deadline
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.SEND_BODY and not self.transport.is_closing():
            self.transport.close()  # answered before the body was read: do not wait for it

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)


def protocol_for(limits: Limits) -> type[GuardedH11Protocol]:
    """A :class:`GuardedH11Protocol` class bound to `limits` (uvicorn takes a class)."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"limits": limits})


def server_config(app: Any, host: str, port: int, limits: Limits | None = None,
                  **kwargs: Any) -> Any:
    """The `uvicorn.Config` of `avengers serve`: `app` on `host:port` with the guarded
    protocol and `limits`' timeouts; `kwargs` go to uvicorn.Config (log_level...)."""
    import uvicorn

    limits = limits or Limits()
    return uvicorn.Config(app, host=host, port=port, http=protocol_for(limits),
                          timeout_keep_alive=limits.idle_timeout_s, **kwargs)
