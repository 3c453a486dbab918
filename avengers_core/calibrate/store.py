"""The calibration results file: one JSON line per graded answer, appended and resumable,
and the routing table built from it."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avengers_core.errors import InputError
from avengers_core.fileio import atomic_open

if TYPE_CHECKING:
    from avengers_core.data.table import RoutingTable
from avengers_core.calibrate.questions import Question, QuestionSet

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

    from avengers_core.data.readers import read_table

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
