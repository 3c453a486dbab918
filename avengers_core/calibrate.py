"""Calibration: score your own local models on labeled questions and write a routing table.

Why: the recipe needs a routing table for the models a user actually runs. Each chosen
model answers each question once; the graded result (1 = correct) is appended to the
table as soon as it arrives, so an interrupted run loses nothing and a rerun skips the
question/model pairs already written. Models run one after another (one loaded at a time).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avengers_core.backends import Backend, SampleError, StreamCall
from avengers_core.endpoints import Engines, as_engines
from avengers_core.errors import InputError
from avengers_core.extract import (
    KINDS,
    LETTERS,
    canonical_number,
    gold_answer,
    kind_for_task,
    normalize_text,
    parse_choices,
)
from avengers_core.fileio import atomic_open
from avengers_core.model_names import find_listed
from avengers_core.thinking import split_thinking

if TYPE_CHECKING:
    from avengers_core.table import RoutingTable

Progress = Callable[[int, int, str], None]
DEMO_SOURCES = ("gsm8k", "llmrouter")
GRADABLE = ("number", "choice", "text")
THREAD_PREFIX = "avengers-calibrate"


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
    from avengers_core.datasets import demo_file

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


# -- the table file ----------------------------------------------------------------------


def read_done(out: Path, host: str | Collection[str] | None = None
              ) -> dict[str, dict[str, float]]:
    """Scores already written: {query: {model: score}}.

    A row is written with its newline last, so a crash can only leave an unterminated last
    line: if it is not a complete row it is removed, and a complete one gets its newline,
    so appending continues cleanly. Any other bad line is an InputError, and so is a row
    graded on a server other than `host` (or the hosts given: its grades are not ours to
    reuse)."""
    hosts = {host} if isinstance(host, str) else set(host or ())
    done: dict[str, dict[str, float]] = {}
    if not out.exists():
        return done
    data = out.read_bytes()
    lines = data.split(b"\n")
    offset = 0
    for n, line in enumerate(lines, 1):
        start, offset = offset, offset + len(line) + 1
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            query, scores = obj["query"], obj["scores"]
            row_host = obj.get("host")
            done.setdefault(query, {}).update({m: float(s) for m, s in scores.items()})
        except (ValueError, KeyError, TypeError, AttributeError):
            if n < len(lines) or not _cut_row(line):  # not what a crash leaves behind
                raise InputError(
                    f"{out}, line {n}: expected a routing-table row with 'query' and 'scores'"
                ) from None
            with open(out, "r+b") as f:  # an interrupted write: drop the partial last line
                f.truncate(start)
            break
        if hosts and row_host and row_host not in hosts:
            raise InputError(f"{out}, line {n}: graded on {row_host}, not {', '.join(hosts)} "
                             "(use another file for this host)")
    else:
        if data and not data.endswith(b"\n"):  # a complete row cut before its newline
            with open(out, "ab") as f:
                f.write(b"\n")
    return done


def _cut_row(line: bytes) -> bool:
    """True when `line` can be the start of a row `_record` writes (`{"query": ...`), so
    truncating it never eats the last line of some other file given as the output."""
    head = b'{"query": '
    return line.startswith(head) or head.startswith(line)


def calibration_table(out: str | Path, questions: QuestionSet | Sequence[Question],
                      models: Sequence[str]) -> RoutingTable:
    """The routing table of `out` restricted to these questions and models (a file can hold
    more: earlier runs with other questions or models)."""
    import numpy as np

    from avengers_core.table import read_table

    qs = questions.questions if isinstance(questions, QuestionSet) else questions
    wanted = {q.question for q in qs}
    table = read_table(out)
    cols = [j for j, m in enumerate(table.models) if m in set(models)]
    scores = table.scores[:, cols]
    rows = [i for i, q in enumerate(table.queries)
            if q in wanted and not np.isnan(scores[i]).all()]
    if not rows:
        raise InputError(f"{out}: no graded answer for the chosen questions and models")
    sub = table.subset(rows)
    sub.models, sub.scores = [table.models[j] for j in cols], scores[rows]
    sub.costs = None if sub.costs is None else sub.costs[:, cols]
    return sub


def compact(out: Path) -> None:
    """Rewrite the table with one row per question (atomically)."""
    rows: dict[str, dict[str, Any]] = {}
    with open(out, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                obj = json.loads(line)
                row = rows.setdefault(obj["query"], {**obj, "scores": {}})
                row["scores"].update(obj["scores"])
    with atomic_open(out) as f:
        for row in rows.values():
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


@contextlib.contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    """Hold a lock beside `out` for a whole run: two runs appending to one file would mix
    their rows, and the first to compact would drop the rows the other appends later."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with open(out.with_name(f".{out.name}.lock"), "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"{out}: another calibration is writing this file (wait for it "
                             "to finish or choose another file)") from None
        yield


# -- the run -----------------------------------------------------------------------------


@dataclass(frozen=True)
class QuestionResult:
    """One graded answer (or the failure reason; failures are not written)."""

    model: str
    question: Question
    correct: bool | None
    reply: str
    error: str | None = None


@dataclass
class CalibrationReport:
    out: Path
    total: int
    ran: int = 0
    resumed: int = 0
    errors: list[str] = field(default_factory=list)
    correct: dict[str, int] = field(default_factory=dict)
    graded: dict[str, int] = field(default_factory=dict)
    cancelled: bool = False

    def accuracy(self) -> dict[str, float]:
        """Running accuracy per model over the pairs graded so far (resumed ones included)."""
        return {m: self.correct[m] / n for m, n in self.graded.items() if n}


def calibrate(
    questions: QuestionSet | Sequence[Question],
    models: Sequence[str],
    out: str | Path,
    *,
    client: Engines | Backend | str | None = None,
    temperature: float = 0.0,
    seed: int = 0,
    concurrency: int = 1,
    progress: Progress | None = None,
    on_result: Callable[[QuestionResult, CalibrationReport], None] | None = None,
    cancel: threading.Event | None = None,
    options: Mapping[str, Any] | None = None,
) -> CalibrationReport:
    """Ask every model every question once, grade, and append to the table at `out`.

    Models run one after another; up to `concurrency` questions of one model are in flight
    at once. Callbacks run in the calling thread. On return (or on an exception, such as
    Ctrl-C, from a callback) no request is left running. Raises OllamaUnavailable if the
    host is down and InputError if a model is not local. `client` is the engines (or one
    backend, or an Ollama host); `max_tokens` and `think` go to every request (see
    :class:`~avengers_core.vote.VoteRun`).
    """
    qs = list(questions.questions if isinstance(questions, QuestionSet) else questions)
    models = [m.strip() for m in models if m.strip()]
    if not models:
        raise InputError("no models given (expected e.g. --models qwen2.5:7b-instruct,llama3.1:8b)")
    engines = as_engines(client)
    local = engines.list_models()
    missing = [m for m in models if find_listed(m, local) is None]
    if missing:
        pull = f"; try `ollama pull {missing[0]}`" if not engines.endpoints else ""
        raise InputError(
            f"model(s) {', '.join(missing)} not available on {engines.describe()} "
            f"(available: {', '.join(local) or 'none'}{pull})"
        )
    models = [find_listed(m, local) or m for m in models]  # `llama3.2` is `llama3.2:latest`
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(out):  # one run per file at a time
        done = read_done(out, {engines.origin(m) for m in models})
        report = CalibrationReport(out=out, total=len(qs) * len(models))
        for m in models:
            prior = [d[m] for q in qs if m in (d := done.get(q.question, {}))]
            report.graded[m] = len(prior)
            report.correct[m] = sum(1 for s in prior if s >= 0.5)
            report.resumed += len(prior)
        if progress:
            progress(report.resumed, report.total, f"{report.resumed} already in {out.name}")
        with open(out, "a", encoding="utf-8") as f:
            for m in models:
                todo = [q for q in qs if m not in done.get(q.question, {})]
                answers = _answers(engines, m, todo, temperature, seed, concurrency, cancel,
                                   options)
                with contextlib.closing(answers):  # closing aborts what is still in flight
                    for result in answers:
                        _record(f, result, report, engines.origin(m))
                        if on_result:
                            on_result(result, report)
                        if progress:
                            acc = report.accuracy().get(m)
                            shown = f"{acc:.0%}" if acc is not None else "n/a"
                            done_n = report.resumed + report.ran
                            progress(done_n, report.total, f"{m}: accuracy {shown}")
                if cancel is not None and cancel.is_set():
                    report.cancelled = True
                    break
        compact(out)
        return report


def _record(f: Any, result: QuestionResult, report: CalibrationReport, host: str) -> None:
    """Append a graded answer, with the host that graded it (failures are only reported)."""
    report.ran += 1
    q, m = result.question, result.model
    if result.error is not None:
        report.errors.append(f"{m} on {q.id}: {result.error}")
        return
    row: dict[str, Any] = {"query": q.question, "scores": {m: float(bool(result.correct))}}
    if q.task:
        row["task"] = q.task
    row["id"] = q.id
    row["host"] = host
    f.write(json.dumps(row, ensure_ascii=False) + "\n")
    f.flush()
    report.graded[m] += 1
    report.correct[m] += int(bool(result.correct))


def _answers(
    engines: Engines,
    model: str,
    todo: list[Question],
    temperature: float,
    seed: int,
    concurrency: int,
    cancel: threading.Event | None,
    options: Mapping[str, Any] | None,
) -> Iterator[QuestionResult]:
    """Graded answers of one model, as they complete; in-flight requests are aborted when
    the consumer stops early or `cancel` is set."""
    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

    from avengers_core.vote import make_prompt

    pending = iter(todo)
    running: dict[Future[QuestionResult], StreamCall] = {}
    pool = ThreadPoolExecutor(max(1, concurrency), thread_name_prefix=THREAD_PREFIX)

    def submit() -> None:
        q = next(pending, None)
        if q is not None and not (cancel is not None and cancel.is_set()):
            prompt = make_prompt(q.question, q.kind, q.choices)
            call = engines.stream_call(model, prompt, seed=seed, temperature=temperature,
                                       options=options)
            running[pool.submit(_grade, call, model, q)] = call

    try:
        for _ in range(max(1, concurrency)):
            submit()
        while running:
            finished, _ = wait(list(running), timeout=0.2, return_when=FIRST_COMPLETED)
            if cancel is not None and cancel.is_set():
                for call in running.values():
                    call.abort("cancelled")
            for fut in finished:
                running.pop(fut)
                result = fut.result()
                if result.error != "cancelled":
                    yield result
                submit()
    finally:
        for call in running.values():
            call.abort("cancelled")
        pool.shutdown(wait=True, cancel_futures=True)


def _grade(call: StreamCall, model: str, q: Question) -> QuestionResult:
    """Ask, then grade the answer part of the reply (a reply cut off inside its reasoning
    has no answer, so it is graded wrong)."""
    from avengers_core.extract import is_correct

    try:
        reply = call.run()
    except SampleError as e:
        return QuestionResult(model, q, None, "", e.reason)
    split = split_thinking(reply, call.thinking)
    correct = not split.cut_off and is_correct(split.answer, q.answer, q.kind, q.choices,
                                               q.question)
    return QuestionResult(model, q, correct, reply)
