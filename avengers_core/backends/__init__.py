"""LLM backends, one module each, registered by name (in the spirit of RouteLLM's routers).

`get_backend("ollama", host)` or `get_backend("openai", host, api_key=...)` returns a
:class:`~avengers_core.backends.base.Backend`; :data:`BACKENDS` lists the names. Heavy
client libraries are imported inside the backends' methods.
"""

from __future__ import annotations

from collections.abc import Callable

from avengers_core.backends.base import (
    DEFAULT_TEMPERATURE,
    Backend,
    BackendUnavailable,
    Choice,
    StreamCall,
    Timeouts,
)
from avengers_core.backends.errors import SampleError

__all__ = [
    "BACKENDS",
    "DEFAULT_TEMPERATURE",
    "Backend",
    "BackendUnavailable",
    "Choice",
    "SampleError",
    "StreamCall",
    "Timeouts",
    "get_backend",
]


def _ollama(host: str | None, timeouts: Timeouts | None, api_key: str | None) -> Backend:
    from avengers_core.backends.ollama import OllamaBackend

    return OllamaBackend(host, timeouts)


def _openai(host: str | None, timeouts: Timeouts | None, api_key: str | None) -> Backend:
    from avengers_core.backends.openai import OpenAIBackend

    return OpenAIBackend(host, timeouts, api_key=api_key)


_REGISTRY: dict[str, Callable[[str | None, Timeouts | None, str | None], Backend]] = {
    "ollama": _ollama,
    "openai": _openai,
}
BACKENDS = tuple(_REGISTRY)
"""The backend names `--backend` and endpoint files accept."""


def get_backend(
    name: str = "ollama",
    host: str | None = None,
    timeouts: Timeouts | None = None,
    api_key: str | None = None,
) -> Backend:
    """The backend `name` at `host` (None: the backend's default host).

    Raises ValueError for an unknown name (the message lists :data:`BACKENDS`).
    """
    try:
        make = _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown backend {name!r} (expected one of {', '.join(BACKENDS)})"
        ) from None
    return make(host, timeouts, api_key)
