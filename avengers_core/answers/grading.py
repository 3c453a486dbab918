"""Grading against a gold answer (calibration): the gold in canonical form, and whether a
reply's extracted answer matches it."""

from __future__ import annotations

from collections.abc import Sequence

from avengers_core.answers.extract import (
    canonical_number,
    extract_choice,
    extract_number,
    extract_with_reason,
    free_key,
    normalize_text,
)
from avengers_core.answers.kinds import LETTERS


def gold_answer(gold: str, kind: str, choices: Sequence[str] | None = None) -> str | None:
    """The canonical form of a labeled answer (`... #### 42` -> `42`, `C` -> `C`, option
    text -> its letter), keyed as :func:`extract` keys replies."""
    gold = str(gold).strip()
    if kind == "number":
        return canonical_number(gold) or extract_number(gold)
    if kind == "choice":
        if len(gold) == 1 and gold.upper() in LETTERS:
            return gold.upper()
        if choices:
            for i, option in enumerate(choices[: len(LETTERS)]):
                if normalize_text(option) == normalize_text(gold):
                    return LETTERS[i]
        return extract_choice(gold, choices)
    if kind == "text":
        return normalize_text(gold) or None
    return free_key(gold) or None


def is_correct(
    reply: str,
    gold: str,
    kind: str,
    choices: Sequence[str] | None = None,
    query: str | None = None,
) -> bool:
    """Whether `reply` answers `gold`: their vote keys are equal (`query` as in
    :func:`extract_with_reason`). Short text also counts when the gold answer appears whole
    inside the extracted answer (`in paris france` answers `Paris`)."""
    want = gold_answer(gold, kind, choices)
    got = extract_with_reason(reply, kind, choices, query)[0]
    if want is None or got is None:
        return False
    if kind == "text":
        return got == want or f" {want} " in f" {got} "
    return got == want
