"""Escaping and formatting for the pages: data made inert in Markdown, code spans, slugs."""

from __future__ import annotations

import re
from typing import Any

URL = re.compile(r"https?://[^\s<>`]+")
MD_SPECIAL = set("\\`*_[]<>#|$~:")  # links, emphasis, code, HTML, LaTeX, :color[] directives


def md_escape(text: object) -> str:
    """Text from data made inert in inline Markdown (no links, emphasis, HTML, LaTeX or
    colour directives); URLs in it become code spans so they read as written."""
    text = " ".join(str(text).split())  # one line: no headings or lists from data
    out, pos = [], 0
    for m in URL.finditer(text):
        out += [_escape_chars(text[pos:m.start()]), code(m.group())]
        pos = m.end()
    return "".join(out) + _escape_chars(text[pos:])


def _escape_chars(text: str) -> str:
    return "".join("\\" + ch if ch in MD_SPECIAL else ch for ch in text)


def code(text: object) -> str:
    """`text` as a Markdown code span, whatever backticks it holds."""
    text = str(text)
    fence = "`" * (max((len(r) for r in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def slug(text: str) -> str:
    """`text` as a safe file-name part: letters, digits, dots and dashes."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-.") or "x"


def plural(n: int, word: str) -> str:
    """`n` and `word`, plural unless n is 1: "1 model", "5 queries" (word ending in y)."""
    if n == 1:
        return f"{n:,} {word}"
    return f"{n:,} {word[:-1]}ies" if word.endswith("y") else f"{n:,} {word}s"


def route_reason(res: Any, names: list[str]) -> str:
    """The plain-language reason for a route (Markdown, data escaped), from the router's
    own explanation (`RouteResult.reason`)."""
    return (f"**Route to {md_escape(', '.join(res.models))}.** "
            f"{res.reason(names[res.cluster], md_escape)}")


def missing_as_dash(df: Any, columns: list[str]) -> Any:
    """`df` (a pandas DataFrame) styled so that its missing values in `columns` (scores:
    "not evaluated") read "–", not a raw None, and numbers as short as they are (0.5, 1)."""
    cols = [c for c in columns if c in df.columns]
    return df.style.format(lambda v: f"{v:g}", subset=cols, na_rep="–")


def duration(seconds: float) -> str:
    """A rough duration for a progress line: "40 s", "3 min", "1 h 5 min"."""
    s = max(0, round(seconds))
    if s < 90:
        return f"{s} s"
    if s < 3600:
        return f"{round(s / 60)} min"
    return f"{s // 3600} h {round(s % 3600 / 60)} min"
