"""Calibration: score your own local models on labeled questions and write a routing table.

Why: the recipe needs a routing table for the models a user actually runs. Each chosen
model answers each question once; the graded result (1 = correct) is appended to the
table as soon as it arrives, so an interrupted run loses nothing and a rerun skips the
question/model pairs already written. Models run one after another (one loaded at a time).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avengers_core.answers.thinking import split_thinking
from avengers_core.backends import Backend, SampleError, StreamCall
from avengers_core.backends.endpoints import Engines, as_engines
from avengers_core.backends.model_names import find_listed
from avengers_core.errors import InputError

if TYPE_CHECKING:
    pass
from avengers_core.calibrate.questions import Question, QuestionSet
from avengers_core.calibrate.store import _exclusive, compact, read_done

Progress = Callable[[int, int, str], None]
THREAD_PREFIX = "avengers-calibrate"


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
    :class:`~avengers_core.vote.run.VoteRun`).
    """
    qs = list(questions.questions if isinstance(questions, QuestionSet) else questions)
    models = [m.strip() for m in models if m.strip()]
    if not models:
        raise InputError("no models given (expected e.g. --models qwen2.5:7b-instruct,llama3.1:8b)")
    engines = as_engines(client)
    local = engines.list_models()
    missing = [m for m in models if find_listed(m, local) is None]
    if missing:  # did-you-mean from the engine's own list; `ollama pull` only on Ollama
        import difflib

        close = difflib.get_close_matches(missing[0], local, n=1, cutoff=0.6)
        pull = f"; did you mean {close[0]}?" if close else ""
        if not close and engines.default.name == "ollama" and not engines.endpoints:
            pull = f"; try `ollama pull {missing[0]}`"
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

    from avengers_core.answers.prompts import make_prompt

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
    from avengers_core.answers.grading import is_correct

    try:
        reply = call.run()
    except SampleError as e:
        return QuestionResult(model, q, None, "", e.reason)
    split = split_thinking(reply, call.thinking)
    correct = not split.cut_off and is_correct(split.answer, q.answer, q.kind, q.choices,
                                               q.question)
    return QuestionResult(model, q, correct, reply)
