"""Busy and warming engines: wait and retry within the sample's time, and say so (issue 22).

An engine that is busy or still loading its model answers before any token with
- HTTP 429 (rate limited; vLLM behind a gateway, LM Studio, hosted APIs), usually with a
  `Retry-After` header, or
- HTTP 503 (Ollama with its queue full, "server busy, please try again"; llama.cpp's
  server while it loads the model, "Loading model"; vLLM and TEI while they warm up).

Such a reply is no answer about the question, so a sample is not lost to it: the request
is sent again after the wait the server asked for (`Retry-After`, seconds or an HTTP date,
RFC 9110 section 10.2.3), else after an exponential backoff (:data:`BACKOFF`), for at most
:data:`MAX_RETRIES` retries and never past the sample's total timeout. A wait that would
end after the sample's time fails the sample at once, naming the wait. Each retry is
recorded on the call (`StreamCall.retries`), and the vote says it once per engine and
status (:func:`retry_notes`). Never an endless wait, never a silent loss.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from avengers_core.backends.errors import SampleError, one_line

T = TypeVar("T")

BUSY = {429: "rate limited", 503: "busy or loading the model"}
"""The statuses that mean "come back later", and what they say."""
BACKOFF = (1.0, 2.0, 4.0, 8.0, 15.0)
"""Seconds before each retry when the server gives no `Retry-After` (then 15 s each)."""
MIN_WAIT = 0.25  # a `Retry-After: 0` still leaves the engine a moment
MAX_RETRIES = 20
"""Retries per request at most (with the backoff, about 4 minutes of waiting)."""
POLL = 0.05  # seconds between checks for an abort while waiting


class Busy(SampleError):
    """The engine answered HTTP 429 or 503 before any token: it may answer later.

    `status` is the HTTP status, `retry_after` the seconds its `Retry-After` asked for
    (None: not given or unreadable), `reason` the one-line failure if no retry helps."""

    def __init__(self, reason: str, status: int, retry_after: float | None) -> None:
        super().__init__(reason)
        self.status = status
        self.retry_after = retry_after


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delay-seconds (`"7"`) or an HTTP date
    (`"Wed, 21 Oct 2026 07:28:00 GMT"`, counted from `now`, default the clock). None when
    absent or unreadable; a date in the past gives 0."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None or when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds == float("inf"):  # NaN or infinity: unreadable
        return None
    return max(0.0, seconds)


def busy_error(exc: BaseException, reason: str, started: bool) -> Busy | None:
    """A :class:`Busy` for a client error that is HTTP 429 or 503 before any token, else
    None. Works for the `openai` client (`APIStatusError.response`) and the `ollama` one
    (`ResponseError.status_code`; its response is the HTTP error it was raised from)."""
    status = getattr(exc, "status_code", None)
    if started or status not in BUSY:
        return None
    response = getattr(exc, "response", None)
    if response is None:  # ollama raises ResponseError while handling httpx's error
        response = getattr(exc.__context__, "response", None)
    headers: Mapping[str, str] = getattr(response, "headers", None) or {}
    return Busy(reason, int(status), parse_retry_after(headers.get("retry-after")))


def with_retries(
    attempt: Callable[[], T],
    deadline: float,
    aborted: Callable[[], str | None],
    record: Callable[[int, float], None],
) -> T:
    """`attempt()`, sent again while it raises :class:`Busy`, until `deadline` (a
    `time.monotonic()` value: the sample's total timeout).

    Before each retry it waits what the server asked (or the backoff), in short steps so
    an abort (`aborted()` returns its reason) ends the wait at once, and calls
    `record(status, seconds)`. Raises SampleError with the server's reason and why it
    was not retried (the wait would pass the deadline, or MAX_RETRIES retries were spent),
    or with the abort reason.
    """
    tries = 0
    while True:
        try:
            return attempt()
        except Busy as exc:
            wait = exc.retry_after if exc.retry_after is not None else \
                BACKOFF[min(tries, len(BACKOFF) - 1)]
            wait = max(wait, MIN_WAIT)
            left = deadline - time.monotonic()
            if tries >= MAX_RETRIES:
                raise SampleError(one_line(f"{exc.reason}; still {exc.status} after "
                                           f"{tries} retries")) from None
            if wait >= left:
                raise SampleError(one_line(f"{exc.reason}; not retried: waiting {wait:g} s "
                                           f"would pass the sample's time ({max(left, 0):.0f} s "
                                           "left)")) from None
            record(exc.status, wait)
            end = time.monotonic() + wait
            while (now := time.monotonic()) < end:
                if aborted() is not None:
                    raise SampleError(aborted() or "cancelled") from None
                time.sleep(min(POLL, end - now))
            if aborted() is not None:
                raise SampleError(aborted() or "cancelled") from None
            tries += 1


def retry_notes(retries: Iterable[tuple[str, int, float]]) -> list[str]:
    """One note per engine and status for `(endpoint, status, seconds waited)` retries,
    e.g. "http://gpu0:8000/v1 answered HTTP 503 (busy or loading the model) 3 times; the
    samples waited 6 s in all and were sent again"."""
    seen: dict[tuple[str, int], list[float]] = {}
    for endpoint, status, seconds in retries:
        seen.setdefault((endpoint, status), []).append(seconds)
    notes = []
    for (endpoint, status), waits in seen.items():
        times = "once" if len(waits) == 1 else f"{len(waits)} times"
        notes.append(f"{endpoint} answered HTTP {status} ({BUSY.get(status, 'busy')}) {times}; "
                     f"the samples waited {sum(waits):.3g} s in all and were sent again")
    return notes


def call_retries(call: Any) -> list[tuple[str, int, float]]:
    """The `(endpoint, status, seconds)` retries a StreamCall made (none for a call built
    before issue 22 or by a test double)."""
    return [(call.endpoint, status, seconds) for status, seconds in getattr(call, "retries", ())]
