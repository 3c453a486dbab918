"""Labeled questions for calibration: question files (JSON Lines, CSV) and the demo sets."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avengers_core.answers.extract import canonical_number, normalize_text, parse_choices
from avengers_core.answers.grading import gold_answer
from avengers_core.answers.kinds import KINDS, LETTERS, kind_for_task
from avengers_core.errors import InputError

if TYPE_CHECKING:
    pass

DEMO_SOURCES = ("gsm8k", "llmrouter")
GRADABLE = ("number", "choice", "text")


@dataclass(frozen=True)
class Question:
    """One labeled question; `answer` is the gold answer as written in the source."""

    id: str
    question: str
    answer: str
    kind: str
    task: str | None = None
    choices: tuple[str, ...] | None = None


@dataclass
class QuestionSet:
    """Questions ready to grade, where they came from, and what was left out and why."""

    questions: list[Question]
    source: str
    notes: list[str] = field(default_factory=list)


# -- loading -----------------------------------------------------------------------------


def load_questions(source: str | Path, limit: int | None = None) -> QuestionSet:
    """A labeled question set: `gsm8k` (the GSM8K test demo), `llmrouter` (the labeled
    questions behind the demo table), or a JSONL/CSV file with `question`, `answer` and
    optional `task`, `kind`, `choices`, `id`. A choice question's answer is a letter, an
    option's text, or a 0-based index into `choices` as in the Hugging Face MMLU files
    (`"answer": 2` is C). Raises InputError naming file and line."""
    from avengers_core.data.datasets import demo_file

    name = str(source)
    if name == "gsm8k":
        qs = _read_rows(demo_file("gsm8k", "test.jsonl"), default_task="gsm8k", prefix="gsm8k")
    elif name == "llmrouter":
        qs = _read_rows(demo_file("llmrouter", "query_test.jsonl"), prefix="llmrouter-test")
    else:
        qs = _read_rows(Path(source))
    if limit is not None:
        qs.questions = qs.questions[: max(0, limit)]
    return qs


def _read_rows(path: Path, default_task: str | None = None, prefix: str = "") -> QuestionSet:
    if not path.exists():
        raise InputError(f"{path}: file not found (expected a .jsonl or .csv question set)")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text (byte {e.start})") from None
    if not text.strip():
        raise InputError(f"{path}: empty file (expected questions with 'question' and 'answer')")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = [(i + 2, r) for i, r in enumerate(csv.DictReader(io.StringIO(text)))]
        where = "row"
    elif suffix in (".jsonl", ".ndjson", ".json"):
        rows = list(_jsonl(path, text))
        where = "line"
    else:
        raise InputError(f"{path}: unsupported file type {suffix!r} (expected .jsonl or .csv)")
    prefix = prefix or path.stem
    out = QuestionSet([], str(path))
    skipped: dict[str, int] = {}
    for n, row in rows:
        q = _question(row, f"{path}, {where} {n}", default_task, f"{prefix}-{n}")
        if q.kind in GRADABLE:
            out.questions.append(q)
        else:
            skipped[q.task or q.kind] = skipped.get(q.task or q.kind, 0) + 1
    if skipped:
        parts = ", ".join(f"{k} ({v})" for k, v in sorted(skipped.items()))
        out.notes.append(f"skipped free-text questions that cannot be graded: {parts}")
    if not out.questions:
        raise InputError(f"{path}: no gradable questions (kinds {', '.join(GRADABLE)})")
    return out


def _jsonl(path: Path, text: str):
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}, line {n}: not valid JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise InputError(f"{path}, line {n}: expected a JSON object, got {type(obj).__name__}")
        yield n, obj


def _question(row: dict[str, Any], where: str, default_task: str | None, rid: str) -> Question:
    text = _field(row, "question", "query")
    gold = _field(row, "answer", "ground_truth")
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"{where}: expected a non-empty 'question'")
    if gold is None or (isinstance(gold, str) and not gold.strip()):
        raise InputError(f"{where}: expected a non-empty 'answer'")
    if isinstance(gold, list | dict):
        raise InputError(f"{where}: expected 'answer' to be text or a number")
    task = _field(row, "task", "task_name") or default_task
    raw_choices = row.get("choices")
    choices = parse_choices(raw_choices)
    if choices is None and isinstance(raw_choices, str) and "|" in raw_choices:
        choices = [c.strip() for c in raw_choices.split("|")]
    kind = (row.get("kind") or "").strip().lower() if isinstance(row.get("kind"), str) else ""
    if kind and kind not in KINDS:
        raise InputError(f"{where}: unknown kind {kind!r} (expected one of {', '.join(KINDS)})")
    if not kind:
        kind = kind_for_task(task, default="") or _guess_kind(gold, choices)
    if kind == "choice" and not choices and not _is_letter(str(gold)):
        raise InputError(f"{where}: a choice question needs 'choices' or a letter answer")
    if kind == "choice":
        gold = _choice_gold(gold, choices, where)
    qid = row.get("id") or row.get("task_id")
    return Question(
        id=str(qid) if qid not in (None, "") else rid,
        question=text,
        answer=str(gold),
        kind=kind,
        task=str(task) if task else None,
        choices=tuple(choices) if choices else None,
    )


def _field(row: dict[str, Any], *names: str) -> Any:
    for name in names:
        if row.get(name) not in (None, ""):
            return row[name]
    return None


def _choice_gold(gold: Any, choices: Sequence[str] | None, where: str) -> str:
    """A choice question's gold answer as its letter where it is an index: a JSON integer, or
    a CSV cell of digits that is no option's text, is 0-based, as in the Hugging Face MMLU
    files (`"answer": 2` is C). Letters and option texts are kept. Raises InputError for
    an index outside the choices or an answer that names no option."""
    n = len(choices or ())
    text = str(gold).strip()
    is_option = any(normalize_text(c) == normalize_text(text) for c in choices or ())
    if isinstance(gold, bool) or isinstance(gold, float):
        raise InputError(f"{where}: expected 'answer' to be a letter, an option's text or a "
                         f"0-based index, got {gold!r}")
    if isinstance(gold, int) or (text.isdigit() and not is_option):
        index = int(text)
        if not 0 <= index < n:
            raise InputError(f"{where}: answer index {index} is outside the {n} choices "
                             f"(expected a 0-based index from 0 to {n - 1}, or a letter)")
        return LETTERS[index]
    if gold_answer(text, "choice", choices) is None:
        raise InputError(f"{where}: answer {text!r} is not a letter, a 0-based index or one "
                         "of the choices")
    return text


def _is_letter(s: str) -> bool:
    return len(s.strip()) == 1 and s.strip().upper() in "ABCDEFGHIJ"


def _guess_kind(raw: Any, choices: Sequence[str] | None) -> str:
    gold = str(raw)
    if choices and (_is_letter(gold) or gold.strip().isdigit() or isinstance(raw, int)):
        return "choice"  # a JSON integer with choices is an index (see _choice_gold)
    if canonical_number(gold) is not None or "####" in gold:
        return "number"
    return "text"
