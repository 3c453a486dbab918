"""Answering a chat request, whatever the protocol: admission, routing, then a streamed or
whole reply; the protocol modules supply the shapes through a :class:`Protocol`.

Headers: `x-avengers-cluster` and `x-avengers-models` on every routed reply; a whole
(not streamed) reply also has `x-avengers-answer`, `x-avengers-votes` and
`x-avengers-confidence`. Values are JSON (ASCII). They are a summary, all together under
HEADER_BYTES (issue 21: Node's fetch fails at 16 KiB of headers): answers clipped to
HEADER_CHARS, the tally to its HEADER_VOTES largest answers plus `"…": <the rest>`; the
body's `avengers` field always has them in full.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from avengers_core.serve.requests import ChatRequest, ServeError
from avengers_core.serve.service import Reply, Routing, Service, Text
from avengers_core.serve.streams import Admission, LiveStream, QueueFull, Tick

HEADER_CHARS = 200
HEADER_VOTES = 10
HEADER_BYTES = 8 * 1024
"""Every `x-avengers-*` header, names and values, stays under 8 KiB."""


class KeepAlive:
    """Nothing to say yet, and the last thing sent is `keepalive_s` old: send a keep-alive."""


class Protocol(ABC):
    """One API's shapes: errors, a whole reply, and a stream of events as text."""

    busy_status = 503
    stream_type = "application/x-ndjson"

    @abstractmethod
    def error_body(self, status: int, message: str, code: str | None = None) -> dict[str, Any]:
        """The protocol's error object."""

    @abstractmethod
    def body(self, req: ChatRequest, reply: Reply) -> dict[str, Any]:
        """A whole reply, with the `avengers` field."""

    @abstractmethod
    def stream(self, req: ChatRequest, events: AsyncIterator[Text | Reply | KeepAlive]
               ) -> AsyncIterator[str]:
        """The streamed reply: starts at once, keep-alives, text, a final chunk with the
        `avengers` field; a ServeError raised by `events` becomes an in-stream error."""

    def error(self, e: ServeError) -> JSONResponse:
        return JSONResponse(self.error_body(e.status, e.message, e.code), status_code=e.status)

    def busy(self) -> JSONResponse:
        return self.error(ServeError(self.busy_status, "the server is busy: every slot and the "
                                     "queue are full; retry later", code="server_busy"))


def avengers_headers(routing: Routing, reply: Reply | None = None) -> dict[str, str]:
    """The `x-avengers-*` headers (see the module docstring), under HEADER_BYTES."""
    def clip(value: Any, chars: int = HEADER_CHARS) -> Any:
        return value[:chars] if isinstance(value, str) else value

    models = [clip(m, 64) for m in routing.models[:HEADER_VOTES]]
    headers = {"x-avengers-cluster": json.dumps(routing.cluster),
               "x-avengers-models": json.dumps(models)}
    if reply is not None:
        fields = reply.avengers()
        headers.update({"x-avengers-answer": json.dumps(clip(fields["answer"])),
                        "x-avengers-confidence": json.dumps(fields["confidence"])})
        ranked = list(fields["votes"].items())  # the tally is ordered, winner first
        for keep in range(min(len(ranked), HEADER_VOTES), -1, -1):
            votes = {clip(k, 64): v for k, v in ranked[:keep]}
            rest = sum(v for _, v in ranked[keep:])
            if rest:
                votes["…"] = votes.get("…", 0) + rest
            headers["x-avengers-votes"] = json.dumps(votes)
            if _size(headers) < HEADER_BYTES:
                break
    return headers


def _size(headers: dict[str, str]) -> int:
    return sum(len(k) + len(v) + 4 for k, v in headers.items())


async def paced(flow: AsyncIterator[Any], keepalive_s: float
                ) -> AsyncIterator[Text | Reply | KeepAlive]:
    """`flow` with its ticks turned into a KeepAlive each `keepalive_s` of silence."""
    last = time.monotonic()
    async with aclosing(flow):
        async for item in flow:
            now = time.monotonic()
            if isinstance(item, Tick):
                if now - last >= keepalive_s:
                    last = now
                    yield KeepAlive()
                continue
            last = now
            yield item


class ClientGone(Exception):
    """The client hung up before its whole reply was ready."""


async def collect(flow: AsyncIterator[Any], request: Request) -> Reply:
    """Run `flow` to its Reply, checking on every tick that the client is still there
    (ClientGone when not: leaving the flow aborts its upstream requests)."""
    async with aclosing(flow):
        async for item in flow:
            if isinstance(item, Reply):
                return item
            if isinstance(item, Tick) and await request.is_disconnected():
                raise ClientGone
    raise ServeError(502, "the reply ended without a result")


async def respond(request: Request, req: ChatRequest, proto: Protocol) -> Response:
    """Answer `req`: 429/503 when the queue is full, else route and reply (streamed or
    whole); errors in the protocol's shape."""
    state = request.app.state
    admission: Admission = state.admission
    service: Service = state.service
    try:
        slot = await admission.enter()
    except QueueFull:
        return proto.busy()
    try:
        routing, flow = await service.open(req)
    except ServeError as e:
        slot.release()
        return proto.error(e)
    except BaseException:
        slot.release()
        raise
    if req.stream:
        return LiveStream(proto.stream(req, paced(flow, state.keepalive_s)), slot=slot,
                          headers=avengers_headers(routing), media_type=proto.stream_type)
    try:
        reply = await collect(flow, request)
    except ServeError as e:
        return proto.error(e)
    except ClientGone:
        return Response(status_code=499)  # nobody reads it; nginx's "client closed request"
    finally:
        slot.release()
    return JSONResponse(proto.body(req, reply), headers=avengers_headers(routing, reply))
