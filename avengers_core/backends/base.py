"""What every LLM backend shares: timeouts, failure reasons, and the call/backends interface.

A backend talks one protocol to one base URL (`host`). It lists the models the server
offers and builds :class:`StreamCall` objects: one streaming request each, run in a worker
thread and aborted from any thread. Every failure becomes a :class:`SampleError` whose
`reason` is one short line, so a vote can go on with the other samples.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from avengers_core.backends.errors import SampleError
from avengers_core.backends.retry import with_retries
from avengers_core.redact import scrub, strip_userinfo

DEFAULT_TEMPERATURE = 0.7
TIMER_PREFIX = "avengers-timeout"


@dataclass(frozen=True)
class Timeouts:
    """Seconds allowed to connect, to receive the first token (includes model load; also
    bounds any later gap between tokens) and for the whole reply."""

    connect: float = 5.0
    first_token: float = 120.0
    total: float = 600.0


class BackendUnavailable(RuntimeError):
    """The server cannot be reached (or answers nothing usable); the message names it
    (secrets scrubbed, see :mod:`avengers_core.redact`)."""

    def __init__(self, host: str, message: str) -> None:
        self.host = host
        super().__init__(scrub(message))


@dataclass
class Choice:
    """One returned choice of a request: the answer text and the reasoning trace (kept out
    of the vote). `error` is set when this choice alone did not finish."""

    text: str = ""
    thinking: str = ""
    error: str | None = None
    truncated: bool = False  # the token limit cut the reply (finish/done reason "length")
    finish_reason: str | None = None  # the engine's own finish or done reason
    prompt_tokens: int | None = None  # usage, where the engine reported it
    completion_tokens: int | None = None


TokenCallback = Callable[[int, str], None]
"""`on_token(choice_index, text)`: streamed answer text of one choice."""


class StreamCall(ABC):
    """One streaming request for `n` choices. `run()` in a worker; `abort()` from any thread.

    Subclasses implement :meth:`_stream`; this class owns the total-time timer and the
    abort reason, so every backend times out and cancels alike.
    """

    def __init__(self, host: str, model: str, n: int, timeouts: Timeouts) -> None:
        self.host = host
        self.model = model
        self.n = n
        self.timeouts = timeouts
        self._abort_reason: str | None = None
        self._lock = threading.Lock()
        self.thinking = ""  # the first choice's reasoning trace, after run()
        self.retries: list[tuple[int, float]] = []  # (HTTP status, seconds waited) per retry

    @property
    def endpoint(self) -> str:
        """Where the request goes: the base URL (shown per sample), without userinfo."""
        return strip_userinfo(self.host)

    def abort(self, reason: str = "cancelled") -> None:
        """Stop the request now; `run()` then raises SampleError(reason)."""
        with self._lock:
            if self._abort_reason is None:
                self._abort_reason = reason
        self._close_connections()

    @property
    def aborted(self) -> str | None:
        """The abort reason, or None while the call may go on."""
        return self._abort_reason

    def run_choices(self, on_token: TokenCallback | None = None) -> list[Choice]:
        """Stream the reply; return its choices (at most `n`: a server that ignores `n`
        returns one). A busy or warming engine (HTTP 429/503 before any token) is asked
        again within the total timeout (:mod:`avengers_core.backends.retry`; `retries`
        records each wait). Raises SampleError with the reason when the request fails as a
        whole.
        """
        total = self.timeouts.total
        deadline = time.monotonic() + total
        timer = threading.Timer(total, self.abort, (f"no complete reply within {total:g} s",))
        timer.name = f"{TIMER_PREFIX}-{self.model}"
        timer.daemon = True
        timer.start()
        try:
            if self._abort_reason is not None:
                raise SampleError(self._abort_reason)
            choices = with_retries(lambda: self._stream(on_token), deadline,
                                   lambda: self._abort_reason,
                                   lambda status, wait: self.retries.append((status, wait)))
            if self._abort_reason is not None:
                raise SampleError(self._abort_reason)
            return choices
        except SampleError as exc:
            if self._abort_reason is not None and exc.reason != self._abort_reason:
                raise SampleError(self._abort_reason) from None
            raise
        finally:
            timer.cancel()
            if timer.is_alive():
                timer.join()

    def run(self, on_token: Callable[[str], None] | None = None) -> str:
        """The first choice's text (one sample); raises SampleError on failure."""
        callback = None if on_token is None else (lambda _i, text: on_token(text))
        first = self.run_choices(callback)[0]
        if first.error is not None:
            raise SampleError(first.error)
        self.thinking = first.thinking
        return first.text

    @abstractmethod
    def _stream(self, on_token: TokenCallback | None) -> list[Choice]:
        """Send the request and read the stream; raise SampleError on any failure."""

    @abstractmethod
    def _close_connections(self) -> None:
        """Shut the request's sockets so a blocked read returns at once."""


class Backend(ABC):
    """One server speaking one protocol: list its models and build streaming calls."""

    name: str = ""

    def __init__(self, host: str, timeouts: Timeouts | None = None) -> None:
        self.host = host
        self.timeouts = timeouts or Timeouts()

    @abstractmethod
    def list_models(self) -> list[str]:
        """The models the server offers; raises BackendUnavailable when unreachable."""

    @abstractmethod
    def stream_call(
        self,
        model: str,
        prompt: str,
        *,
        seed: int | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
        n: int = 1,
        options: Mapping[str, Any] | None = None,
    ) -> StreamCall:
        """A streaming request for `n` choices, ready to `run()`; `options` holds
        `max_tokens` and `think` (False, True or a level such as "low")."""

    @abstractmethod
    def embed(self, model: str, texts: list[str]) -> list[list[float]]:
        """One vector per text; raises SampleError on failure."""

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
        return self.stream_call(model, prompt, seed=seed, temperature=temperature).run(on_token)
