"""Answer kinds (number, choice, text, free) and which one a query or task calls for."""

from __future__ import annotations

import re
from collections.abc import Sequence

KINDS = ("number", "choice", "text", "free")
LETTERS = "ABCDEFGHIJ"
OPTION_LINE = re.compile(r"(?m)^[\s>*_-]*(?:\(([A-J])\)|([A-J])[.)])[*_]*[ \t]+(\S[^\n]*)")

_TASK_KINDS = {
    "number": ("gsm8k", "math", "mgsm", "svamp", "aqua_num", "asdiv"),
    "choice": (
        "mmlu",
        "gpqa",
        "arc",
        "commonsense_qa",
        "openbook_qa",
        "logicgrid",
        "hellaswag",
        "winogrande",
    ),
    "text": ("natural_qa", "trivia_qa", "squad", "hotpot"),
    "free": ("mbpp", "human_eval", "humaneval", "commongen", "code"),
}


def kind_for_task(task: str | None, default: str = "free") -> str:
    """The answer kind for a task name (`gsm8k` -> number, `mmlu` -> choice...)."""
    if task:
        t = task.lower()
        for kind in ("free", "choice", "text", "number"):  # 'math' would match 'mathqa' last
            if any(name in t for name in _TASK_KINDS[kind]):
                return kind
    return default


def answer_kind(query: str, task: str | None = None,
                choices: Sequence[str] | None = None) -> str:
    """The answer kind for a query: `choice` when it offers options (a `choices` list, or
    lines such as "A) …" / "(B) …" in the query), else the kind of its routed task, and never
    `choice` for a query that offers no options (`text` instead, since a multiple-choice
    task's question without its options is answered in words).

    query: the user's text. task: the routed cluster's task (None: unknown, gives `free`).
    """
    if choices or len(query_options(query)) >= 2:
        return "choice"
    kind = kind_for_task(task)
    return "text" if kind == "choice" else kind


def query_options(query: str) -> dict[str, str]:
    """Option lines in a query: `{"A": "Oxygen", ...}` when at least two are listed."""
    found: dict[str, str] = {}
    for m in OPTION_LINE.finditer(query):
        found.setdefault(m.group(1) or m.group(2), m.group(3).strip())
    return found if len(found) >= 2 else {}
