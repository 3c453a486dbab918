"""Reasoning traces: split a reply into its thinking and its answer.

Reasoning models send their trace apart (Ollama's `message.thinking`, OpenAI-style
`reasoning_content`) or inline in the content: `<think>…</think>answer`, or, as
DeepSeek-R1's template does, with no opening tag: `…reasoning</think>answer`. Text before
the first `</think>` is reasoning (issue 11). A `<think>` that is never closed (the token
limit cut it) leaves no answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_OPEN = re.compile(r"<think(?:ing)?>", re.IGNORECASE)
_CLOSE = re.compile(r"</think(?:ing)?>", re.IGNORECASE)
CUT_OFF = "reasoning cut off"
"""The reason given when a reply ends inside its reasoning."""


@dataclass(frozen=True)
class Split:
    """A reply taken apart: `answer` is what votes; `thinking` is shown collapsed;
    `cut_off` is True when the reply ended inside an unclosed `<think>`."""

    thinking: str
    answer: str
    cut_off: bool = False


def split_thinking(text: str, thinking: str = "") -> Split:
    """Separate inline reasoning from the answer; `thinking` is a trace the server already
    sent apart (it is kept in front of any inline trace).

    Examples: `"<think>2+2</think>4"` -> answer `"4"`; `"so 24\\n</think>\\n72"` -> answer
    `"72"`; `"<think>long…"` -> no answer, `cut_off=True`.
    """
    close = _CLOSE.search(text)
    if close is not None:
        inner = _OPEN.sub("", text[: close.start()], count=1)
        rest = text[close.end():]
        more = split_thinking(rest)  # a second block is reasoning too
        trace = "\n".join(t for t in (thinking, inner.strip(), more.thinking) if t)
        return Split(trace, more.answer, more.cut_off)
    opened = _OPEN.search(text)
    if opened is not None:
        trace = "\n".join(t for t in (thinking, text[opened.end():].strip()) if t)
        return Split(trace, text[: opened.start()].strip(), cut_off=True)
    return Split(thinking, text.strip())
