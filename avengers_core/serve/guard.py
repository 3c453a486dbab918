"""Who may talk to `avengers serve`: the Host and Origin checks, CORS, and the body timeout.

Why (issue 20): loopback is not a boundary on a desktop. Every web page the user opens can
send requests to 127.0.0.1: a "simple" cross-site POST (JSON sent as `text/plain`) needs no
preflight and would run a vote, and a DNS-rebinding page (a name of the attacker's that
resolves to 127.0.0.1) can even read the replies. So, as Ollama does (`OLLAMA_ORIGINS`, and
its Host allow-list since the DNS-rebinding fix) and as Streamlit does (allowed hosts,
XSRF), every request passes :class:`Guard` before anything else runs:

- **Host** (when the server listens on loopback): only `localhost`, loopback addresses
  (`127.0.0.1`, `[::1]`) on any port, and the names given with `--allowed-hosts`; anything
  else gets 403. A rebinding page's requests carry its own name as Host.
- **Origin**: a request from a browser page carries its page's origin; one not on the
  allow-list gets 403. The default list is Ollama's (envconfig.AllowedOrigins): localhost,
  127.0.0.1 and 0.0.0.0 over http and https on any port, and `app://`, `file://`,
  `tauri://`, `vscode-webview://`, `vscode-file://` origins. `--allowed-origins` and the
  environment variable `AVENGERS_ALLOWED_ORIGINS` (comma-separated; `*` as a wildcard,
  alone: any origin) extend it. Requests without Origin (curl, the SDKs) pass, unless the
  browser's Fetch Metadata (`Sec-Fetch-Site: cross-site`) says another site's page sent
  them (a navigation excepted).
- **CORS** for allowed origins: a preflight (`OPTIONS` with
  `Access-Control-Request-Method`) is answered 204 with `Access-Control-Allow-Origin`,
  `-Methods`, `-Headers` (always `Authorization` and `Content-Type`) and, when Chrome asks
  (Private Network Access), `-Private-Network`; other replies get
  `Access-Control-Allow-Origin` and expose the `x-avengers-*` headers.
- **Body timeout**: the whole request body must arrive within `body_timeout_s` of the
  request's start (408 otherwise), so a client that sends headers and then nothing frees
  its slot. (Header timeouts and the connection cap live in
  :mod:`avengers_core.serve.limits`.)

Refusals come in the error shape of the protocol the path belongs to, before any work.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import re
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from avengers_core import config
from avengers_core.serve import ollama_api, openai_api

ORIGINS_ENV = "AVENGERS_ALLOWED_ORIGINS"
"""Environment variable: more allowed origins, comma-separated (as OLLAMA_ORIGINS)."""
DEFAULT_ORIGINS = (
    *(f"{scheme}://{host}{port}" for host in ("localhost", "127.0.0.1", "0.0.0.0")
      for scheme in ("http", "https") for port in ("", ":*")),
    "app://*", "file://*", "tauri://*", "vscode-webview://*", "vscode-file://*",
)
"""Ollama's default allow-list (envconfig.AllowedOrigins)."""
LOCAL_HOSTS = ("localhost",)
"""Host names always allowed when serving on loopback, besides loopback addresses."""
BODY_TIMEOUT_S = 30.0
"""Seconds from a request's start by which its whole body must have arrived (a chat
request is at most 1 MiB: 35 KB/s is enough)."""
ALLOW_METHODS = "GET, POST, HEAD, OPTIONS"
ALLOW_HEADERS = ("Authorization", "Content-Type")
EXPOSE_HEADERS = ("x-avengers-cluster, x-avengers-models, x-avengers-answer, x-avengers-votes, "
                  "x-avengers-confidence")
PREFLIGHT_MAX_AGE_S = 600
_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")  # an HTTP header name (RFC 9110 §5.6.2)


def error_response(path: str, status: int, message: str, code: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """An error in the shape of the protocol that serves `path` (`/v1...`: OpenAI's
    `{"error": {"message", ...}}`, else Ollama's `{"error": "..."}`)."""
    shape = openai_api.error_body if path.startswith("/v1") else ollama_api.error_body
    return JSONResponse(shape(status, message, code), status_code=status, headers=headers)


def split_list(values: Iterable[str | None]) -> list[str]:
    """Comma- or space-separated lists (flags given several times, an environment
    variable) as one list of non-empty items."""
    return [item for v in values if v for item in re.split(r"[,\s]+", v.strip()) if item]


def host_name(host: str) -> str:
    """The name part of a Host header, lower-case, without port, brackets or final dot:
    `LocalHost:11500` -> `localhost`, `[::1]:80` -> `::1`."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def is_loopback_name(name: str) -> bool:
    """`localhost` or a loopback address (127.0.0.0/8, ::1)."""
    if name in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def origin_pattern(pattern: str) -> re.Pattern[str]:
    """An allowed-origin pattern as a regex: `*` matches any run of characters (as
    gin-contrib/cors wildcards, which Ollama uses); case-insensitive; a trailing `/` is
    dropped."""
    pattern = pattern.strip().rstrip("/")
    body = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.compile(f"^{body}$", re.IGNORECASE)


class Guard:
    """ASGI middleware: the Host and Origin checks, CORS and the body timeout (see the
    module docstring). `check_host`: refuse Host names other than loopback ones and
    `allowed_hosts` (on when serving on loopback, or when `allowed_hosts` is given; `*`
    in it allows any). `allowed_origins` extends :data:`DEFAULT_ORIGINS`."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: Iterable[str] = (),
                 allowed_origins: Iterable[str] = (), check_host: bool = True,
                 body_timeout_s: float = BODY_TIMEOUT_S) -> None:
        self.app = app
        self.hosts = {host_name(h) for h in split_list(allowed_hosts)}
        self.check_host = (check_host or bool(self.hosts)) and "*" not in self.hosts
        extra = split_list(allowed_origins)
        self.any_origin = "*" in extra
        self.origins = [origin_pattern(p) for p in (*DEFAULT_ORIGINS, *extra) if p != "*"]
        self.body_timeout_s = body_timeout_s

    def host_allowed(self, host: str) -> bool:
        """Whether a request with this Host header may be served."""
        name = host_name(host)
        return not self.check_host or is_loopback_name(name) or name in self.hosts

    def origin_allowed(self, origin: str) -> bool:
        """Whether a browser page of this origin may call the API."""
        origin = origin.strip()
        return self.any_origin or any(p.match(origin) for p in self.origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        path = scope["path"]
        host = headers.get("host")
        if host is not None and not self.host_allowed(host):
            await error_response(path, 403, f"Host {host_name(host)!r} is not allowed: this "
                                 "server answers only to localhost and loopback addresses, "
                                 "and to the names given with --allowed-hosts",
                                 "host_not_allowed")(scope, receive, send)
            return
        origin = headers.get("origin")
        if origin is None and _cross_site_without_origin(headers):
            await error_response(path, 403, "a request from another site's page without "
                                 "Origin is not allowed (expected a request from a program, "
                                 "or from an allowed origin)",
                                 "origin_not_allowed")(scope, receive, send)
            return
        if origin is not None and not self.origin_allowed(origin):
            await error_response(path, 403, f"Origin {origin[:200]!r} is not allowed: start "
                                 f"the server with --allowed-origins {origin[:200]} (or set "
                                 f"{ORIGINS_ENV}) to let that page call it",
                                 "origin_not_allowed")(scope, receive, send)
            return
        if origin is not None and scope["method"] == "OPTIONS" \
                and "access-control-request-method" in headers:
            await self.preflight(origin, headers)(scope, receive, send)
            return
        if origin is not None:
            send = _with_cors(send, origin)
        await self.app(scope, self.timed(receive), send)

    def preflight(self, origin: str, headers: Headers) -> Response:
        """The 204 answer to an allowed origin's preflight."""
        asked = [h for h in split_list([headers.get("access-control-request-headers")])
                 if _TOKEN.match(h)]
        allow = list(dict.fromkeys([*ALLOW_HEADERS, *asked]))
        out = {"Access-Control-Allow-Origin": origin,
               "Access-Control-Allow-Methods": ALLOW_METHODS,
               "Access-Control-Allow-Headers": ", ".join(allow),
               "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_S),
               "Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"}
        if headers.get("access-control-request-private-network", "").lower() == "true":
            out["Access-Control-Allow-Private-Network"] = "true"
        return Response(status_code=204, headers=out)

    def timed(self, receive: Receive) -> Receive:
        """`receive` whose body messages must all arrive within body_timeout_s of now;
        after that HTTPException 408 (the app answers it in the protocol's shape). Once the
        body is complete, `receive` is passed through (a stream waits on it for the
        client's disconnect)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout_s
        complete = False

        async def timed_receive() -> Message:
            nonlocal complete
            if complete:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                raise HTTPException(408, f"request body not received within "
                                         f"{self.body_timeout_s:g} s") from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                complete = True
            return message

        return timed_receive


def _cross_site_without_origin(headers: Headers) -> bool:
    """A browser's request from another site that carries no Origin (a no-cors GET, say
    an `<img>` or `<script>` pointing here, or an old browser's POST): browsers mark it
    with `Sec-Fetch-Site` (Fetch Metadata); a navigation (the user opening a link) is
    allowed, as are programs, which send no such header."""
    site = headers.get("sec-fetch-site", "").lower()
    return site in ("cross-site", "same-site") and \
        headers.get("sec-fetch-mode", "").lower() != "navigate"


def _with_cors(send: Send, origin: str) -> Send:
    """`send` adding `Access-Control-Allow-Origin` (and exposing the x-avengers headers)
    to the response of an allowed origin."""

    async def cors_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            extra = [(b"access-control-allow-origin", origin.encode("latin-1")),
                     (b"access-control-expose-headers", EXPOSE_HEADERS.encode()),
                     (b"vary", b"Origin")]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return cors_send


def bearer_token(header: bytes | None) -> bytes | None:
    """The token of an `Authorization: Bearer <token>` header, the scheme matched
    case-insensitively (RFC 7235 §2.1); None for another scheme or none."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return None
    return token.strip() or None


def key_matches(header: bytes | None, key: bytes) -> bool:
    """Whether an Authorization header carries `key` as its Bearer token (constant time)."""
    token = bearer_token(header)
    return token is not None and hmac.compare_digest(token, key)


def env_origins() -> list[str]:
    """The origins allowed by the environment variable :data:`ORIGINS_ENV`."""
    return split_list([config.allowed_origins()])

