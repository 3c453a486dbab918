"""What a failed request says: :class:`SampleError` with a short reason, and
:func:`one_line` to make any server's error text one readable line."""

from __future__ import annotations

import re

from avengers_core.redact import scrub

REASON_CHARS = 160  # a failure reason is one short line, whatever the server sent


class SampleError(Exception):
    """One request failed; `reason` is a short, user-readable explanation (secrets
    scrubbed: a server may quote the key it got)."""

    def __init__(self, reason: str) -> None:
        reason = scrub(reason)
        super().__init__(reason)
        self.reason = reason


def one_line(text: str) -> str:
    """`text` as one short line: HTML tags dropped (a proxy's error page), whitespace
    collapsed, secrets scrubbed, cut at REASON_CHARS."""
    text = " ".join(re.sub(r"<[^>]*>", " ", scrub(text)).split())
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1].rstrip() + "…"
