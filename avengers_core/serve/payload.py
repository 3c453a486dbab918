"""A request body's JSON, checked before anything uses it: depth and text (issue 20).

Why: Python's JSON parser recurses, so a body nested 200,000 levels deep raised
RecursionError (a 500); and JSON may escape half a UTF-16 pair (`"\\ud800"`), which
decodes to a Python string that no UTF-8 encoder accepts, so it failed deep in a tokenizer
or an HTTP client (a 500, or a 502 naming the engine). Both are the client's mistake and
get a 400 naming where in the body the problem is.
"""

from __future__ import annotations

import json
from typing import Any

MAX_JSON_DEPTH = 100
"""Nesting levels allowed in a request body: a chat request needs about 6 (messages,
content parts, tool schemas a few more); 100 leaves room and keeps the checks cheap."""


class PayloadError(ValueError):
    """A body that is not acceptable JSON; the message says where and what was expected."""


def _where(path: list[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the body"


def check_tree(obj: Any, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise PayloadError when parsed JSON `obj` nests deeper than `max_depth` or holds a
    string (key or value) that is not valid Unicode (a lone surrogate). Iterative, so any
    depth is safe to check."""
    stack: list[tuple[Any, list[Any]]] = [(obj, [])]
    while stack:
        node, path = stack.pop()
        if len(path) > max_depth:
            raise PayloadError(f"{_where(path[:3])}...: JSON nested more than {max_depth} "
                               "levels (expected a chat request)")
        if isinstance(node, str):
            _check_text(node, path)
        elif isinstance(node, dict):
            for key, value in node.items():
                _check_text(key, [*path, "<key>"])
                stack.append((value, [*path, key]))
        elif isinstance(node, list):
            stack.extend((value, [*path, i]) for i, value in enumerate(node))


def _check_text(text: str, path: list[Any]) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        bad = text[e.start]
        raise PayloadError(f"{_where(path)}: character {e.start} is a lone surrogate "
                           f"(\\u{ord(bad):04x}), not text (expected valid Unicode: escape "
                           "a character outside the BMP as a surrogate pair)") from None


def parse_json(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """`body` parsed and checked (:func:`check_tree`). Raises PayloadError for invalid
    JSON, bytes that are not UTF-8, nesting beyond `max_depth` or lone surrogates."""
    try:
        obj = json.loads(body or b"null")
    except RecursionError:
        raise PayloadError(f"JSON nested more than {max_depth} levels (expected a chat "
                           "request)") from None
    except UnicodeDecodeError as e:
        raise PayloadError(f"request body is not UTF-8 text (byte {e.start}: "
                           f"{body[e.start:e.start + 1]!r})") from None
    except json.JSONDecodeError as e:
        raise PayloadError(f"request body is not valid JSON ({e})") from None
    check_tree(obj, max_depth)
    return obj
