"""The ASGI app of `avengers serve`: both protocols, the key check and the limits.

Paths under `/v1` speak the OpenAI API (:mod:`avengers_core.serve.openai_api`); the
others the Ollama API (:mod:`avengers_core.serve.ollama_api`). Every error, including an
unknown path or a missing key, comes in the shape of the protocol its path belongs to.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from avengers_core.redact import scrub
from avengers_core.serve import ollama_api, openai_api
from avengers_core.serve.guard import BODY_TIMEOUT_S, Guard, key_matches
from avengers_core.serve.service import Service
from avengers_core.serve.streams import Admission

KEEPALIVE_S = 5.0
"""Seconds of silence after which a streamed reply sends a keep-alive."""


def error_for(path: str, status: int, message: str, code: str | None = None) -> JSONResponse:
    """An error in the shape of the protocol that serves `path` (secrets scrubbed)."""
    shape = openai_api.error_body if path.startswith("/v1") else ollama_api.error_body
    return JSONResponse(shape(status, scrub(message), code), status_code=status)


class BearerKey:
    """ASGI middleware: every request must carry `Authorization: Bearer <key>` (401); the
    scheme is matched case-insensitively (RFC 7235 §2.1)."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app = app
        self.expected = key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not key_matches(given, self.expected):
                response = error_for(scope["path"], 401, "missing or wrong API key (expected "
                                     "the header Authorization: Bearer <key>)",
                                     "invalid_api_key")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def build_app(
    service: Service,
    *,
    api_key: str | None = None,
    max_concurrent: int = 8,
    max_queue: int = 32,
    keepalive_s: float = KEEPALIVE_S,
    allowed_hosts: Iterable[str] = (),
    allowed_origins: Iterable[str] = (),
    check_host: bool = True,
    body_timeout_s: float = BODY_TIMEOUT_S,
) -> ASGIApp:
    """The server for `service`: at most `max_concurrent` chat requests run at once and
    `max_queue` wait (more get 429/503); with `api_key`, every request needs it as a
    Bearer token. Before anything, :class:`~avengers_core.serve.guard.Guard` checks the
    Host (`check_host`: serving on loopback; `allowed_hosts` are allowed too) and the
    Origin (`allowed_origins` extend Ollama's defaults), answers CORS preflights and
    bounds the body's arrival (`body_timeout_s`). Raises ValueError for limits below 1
    (queue: below 0)."""

    async def http_error(request: Request, exc: Any) -> JSONResponse:
        return error_for(request.url.path, exc.status_code, f"{exc.detail}: {request.method} "
                         f"{request.url.path}")

    async def crash(request: Request, exc: Exception) -> JSONResponse:
        return error_for(request.url.path, 500, f"internal error: {type(exc).__name__}: {exc}")

    app = Starlette(routes=[*openai_api.ROUTES, *ollama_api.ROUTES],
                    exception_handlers={HTTPException: http_error, Exception: crash})
    app.state.service = service
    app.state.admission = Admission(max_concurrent, max_queue)
    app.state.keepalive_s = keepalive_s
    app.state.started = time.time()
    inner: ASGIApp = BearerKey(app, api_key) if api_key else app
    return Guard(inner, allowed_hosts=allowed_hosts, allowed_origins=allowed_origins,
                 check_host=check_host, body_timeout_s=body_timeout_s)
