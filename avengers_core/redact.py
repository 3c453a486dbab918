"""Keeping secrets out of everything a person, a client or a log sees (issue 20).

Three kinds of secret can reach a message: the user name and password of a URL
(`http://alice:hunter2@host/v1`), an API key this process read (every key read through
:func:`avengers_core.backends.endpoints.api_key` is registered here), and a key that an upstream
server quotes back ("Incorrect API key provided: sk-..."). :func:`scrub` removes all three
from a text; the CLI, the app, `avengers serve`'s replies and in-stream errors, the backends'
failure reasons and the log handlers (:func:`install_log_scrubbing`) pass their text
through it. :func:`refuse_userinfo` turns a URL with credentials into one clear error,
pointing at the option that names a key variable instead.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from urllib.parse import urlsplit

from avengers_core.errors import InputError

MASK = "***"
MIN_SECRET_CHARS = 8
"""Registered secrets shorter than this are not scrubbed: placeholders such as `none`,
`EMPTY` (vLLM's convention) or `test` would mask ordinary words, and are no secret."""

_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^/\s@?#]*)@")
"""`scheme://user:password@`: what RFC 3986 §3.2.1 calls userinfo (deprecated in URLs)."""

_KEY_SHAPED = re.compile(
    r"(?<![A-Za-z0-9])(?:"
    r"sk-[A-Za-z0-9_\-*.]{6,}"  # OpenAI (sk-, sk-proj-), Anthropic (sk-ant-), DeepSeek...
    r"|(?:pk|rk)-[A-Za-z0-9_\-*]{12,}"
    r"|hf_[A-Za-z0-9*]{8,}"  # Hugging Face
    r"|gsk_[A-Za-z0-9*]{8,}"  # Groq
    r"|xai-[A-Za-z0-9*]{8,}"
    r"|AIza[A-Za-z0-9_\-*]{12,}"  # Google
    r"|gh[pousr]_[A-Za-z0-9*]{8,}"  # GitHub
    r"|xox[abprs]-[A-Za-z0-9\-*]{8,}"  # Slack
    r"|(?:AKIA|ASIA)[A-Z0-9*]{12,}"  # AWS access key ids
    r"|eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-.]{8,}"  # JWTs
    r")"
)
"""Tokens shaped like the keys of well-known hosted APIs, also when partly masked
("sk-proj-****abcd"), as their 401 messages quote them."""

_KEY_FIELDS = re.compile(
    r"(?P<name>\b(?:Bearer|Basic|bearer)\s+)(?P<value>[A-Za-z0-9._~+/\-=*]{8,})"
    r"|(?i:(?P<field>\b(?:api[_-]?key|apikey|x-api-key|access[_-]?key|token|password|secret)"
    r"[\"']?\s*[:=]\s*[\"']?))(?P<fvalue>[^\s\"',;]{4,})"
)
"""`Bearer XYZ`, `api_key=XYZ`, `"password": "XYZ"`: the value after a key-like name."""

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember `value` (a key this process read) so :func:`scrub` masks it everywhere."""
    if value and len(value) >= MIN_SECRET_CHARS:
        with _lock:
            _secrets.add(value)


def registered_secrets() -> list[str]:
    """The registered secrets, longest first (so a key containing another is masked whole)."""
    with _lock:
        return sorted(_secrets, key=len, reverse=True)


def strip_userinfo(text: str) -> str:
    """`text` with the userinfo of every URL in it removed:
    `http://alice:hunter2@host:8000/v1` -> `http://host:8000/v1`."""
    return _USERINFO.sub(lambda m: m.group("scheme"), text)


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` safe to show: URL userinfo removed, then `secrets` (e.g. the key a request
    carried), every registered secret and every key-shaped token replaced by MASK."""
    if not text:
        return text
    text = strip_userinfo(str(text))
    known = {s for s in secrets if s and len(s) >= MIN_SECRET_CHARS}
    for secret in sorted(known.union(registered_secrets()), key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _KEY_SHAPED.sub(MASK, text)
    return _KEY_FIELDS.sub(lambda m: (m.group("name") or m.group("field")) + MASK, text)


def has_userinfo(url: str) -> bool:
    """Whether `url` carries a user name or password (`scheme://user:pass@host`)."""
    raw = url.strip()
    if "://" not in raw:
        raw = "http://" + raw
    try:
        parts = urlsplit(raw)
    except ValueError:  # e.g. a malformed IPv6 host: look for `scheme://...@` itself
        return _USERINFO.match(raw) is not None
    return parts.username is not None or parts.password is not None


def refuse_userinfo(url: str | None, where: str, key_option: str) -> None:
    """Raise InputError when `url` (given as `where`, e.g. "--host") holds credentials:
    they would be sent as HTTP Basic auth in place of the key and shown in messages. The
    error names `key_option`, the way to give a key by its environment variable."""
    if url and has_userinfo(url):
        raise InputError(f"{where}: {strip_userinfo(url)} was given with a user name or "
                         f"password in the URL; remove it and put the key in an environment "
                         f"variable named with {key_option}")


class ScrubFilter(logging.Filter):
    """A logging filter that scrubs each record's message and traceback (see :func:`scrub`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is logged as it is
            return True
        record.msg, record.args = scrub(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True


LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "avengers_core", "streamlit")


def install_log_scrubbing(names: Iterable[str] = LOGGERS) -> None:
    """Add a :class:`ScrubFilter` to the handlers of the loggers `names` ("" is the root)
    and to the last-resort handler, once each; call it after logging is configured."""
    handlers = [h for name in names for h in logging.getLogger(name).handlers]
    if logging.lastResort is not None:
        handlers.append(logging.lastResort)
    for handler in handlers:
        if not any(isinstance(f, ScrubFilter) for f in handler.filters):
            handler.addFilter(ScrubFilter())
