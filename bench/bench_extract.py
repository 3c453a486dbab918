"""Answer extraction on the labeled corpus `tests/corpus/answers/` (issue 11).

Each corpus reply carries the answer a careful reader takes from it (`expected`, None when
the reply states none). Reported per kind and source: replies read right, read wrong (an
answer that is not the expected one) and missed (no answer where there is one). Replies
are then grouped into votes (by `group`, else by question; two replies or more) and counted with
:func:`avengers_core.vote.tally.count_votes`: a majority is *confidently wrong* when the winner
of the extracted answers is not one of the expected answers with the most votes, and
holds at least half of the votes. Part of `python -m bench` (`--only extract`);
tests/test_answers_corpus.py runs the same computation.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from avengers_core.answers.extract import extract_with_reason
from avengers_core.answers.kinds import KINDS
from bench.common import ROOT, fmt, repeat

CORPUS = ROOT / "tests" / "corpus" / "answers"
CONFIDENT = 0.5
"""A majority at or above this share of the votes is a confident one."""
MIN_VOTERS = 2
"""Replies to one question (or of one `group`) form a vote when there are at least this many."""


def load_corpus(folder: Path = CORPUS) -> list[dict[str, Any]]:
    """Every labeled reply of the corpus files (`*.jsonl`), with `file` set to the file name."""
    rows = []
    for path in sorted(folder.glob("*.jsonl")):
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                row = json.loads(line)
                row["file"] = f"{path.name}:{n}"
                rows.append(row)
    return rows


def read(row: dict[str, Any]) -> tuple[str | None, str | None]:
    """What extraction reads in one corpus reply: (answer, reason when None)."""
    return extract_with_reason(row["reply"], row["kind"], row.get("options"), row.get("query"))


def agrees(kind: str, got: str | None, want: str | None) -> bool:
    """Whether an extracted answer is the expected one. A short-text answer is the sentence
    that states it, so the expected words need only appear whole in it (`in sport of
    tennis` is `tennis`), as grading against a gold answer does."""
    if kind == "text" and got is not None and want is not None:
        return f" {want} " in f" {got} "
    return got == want


def score_corpus(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts per kind and source, the misread replies, and the confidently wrong majorities."""
    from avengers_core.vote.tally import Sample, count_votes

    by: dict[str, dict[str, int]] = defaultdict(lambda: {"n": 0, "right": 0, "wrong": 0,
                                                         "missed": 0})
    misread, groups = [], defaultdict(list)
    for row in rows:
        got, reason = read(row)
        want = row["expected"]
        verdict = "right" if agrees(row["kind"], got, want) else (
            "missed" if got is None else "wrong")
        for key in (row["kind"], f"{row['kind']} / {row['source']}", "all"):
            by[key]["n"] += 1
            by[key][verdict] += 1
        if verdict != "right":
            misread.append({"file": row["file"], "kind": row["kind"], "expected": want,
                            "got": got, "reason": reason})
        groups[(row["kind"], row.get("group") or row.get("query") or row["reply"])].append(
            (got, want))
    wrong_majorities = []
    votes = {k: v for k, v in groups.items() if len(v) >= MIN_VOTERS}
    for (kind, name), pairs in votes.items():
        tallies = []
        for answers in ([g for g, _ in pairs], [w for _, w in pairs]):
            samples = []
            for i, a in enumerate(answers):
                s = Sample(i, "m", 0, i, arrival=i)
                s.answer = a
                samples.append(s)
            tallies.append(count_votes(samples, kind))
        got, want = tallies
        top = [a for a, n in want.votes.items() if n == max(want.votes.values(), default=0)]
        wrong = got.winner is not None and not any(agrees(kind, got.winner, a) for a in top)
        if wrong and got.confidence >= CONFIDENT:
            wrong_majorities.append({"group": str(name)[:80], "kind": kind, "got": got.winner,
                                     "confidence": got.confidence, "expected": want.winner})
    return {"counts": dict(by), "misread": misread, "groups": len(votes),
            "wrong_majorities": wrong_majorities}


def run(repeats: int, quick: bool) -> dict[str, Any]:
    """Score the corpus, and time extraction of the whole corpus `repeats` times."""
    rows = load_corpus()
    res = score_corpus(rows)
    timed = rows[:40] if quick else rows
    res["replies_timed"] = len(timed)
    res["seconds"] = repeat(lambda: [read(r) for r in timed], repeats)
    return res


def section(res: dict[str, Any]) -> str:
    """The extraction part of BENCHMARKS.md."""
    counts = res["counts"]
    lines = [
        "## Answer extraction\n",
        "Extraction on the labeled corpus `tests/corpus/answers/`: real SmolLM2-135M-Instruct "
        "replies (Q4_1, llama.cpp, temperature 0.7, the prompts of `avengers vote`) to GSM8K, "
        "ARC/MMLU-style and short-answer questions, and hand-written replies in the styles of "
        "larger models (markdown, LaTeX, reasoning blocks). *Right*: the answer a careful "
        "reader takes from the reply (or none, when it states none); *wrong*: another "
        "answer; *missed*: no answer where the reply states one. A short-text answer is the "
        "normalised sentence that states it, and is right when the expected words appear "
        "whole in it (as grading against a gold answer does).\n",
        "| kind / source | replies | right | wrong | missed | accuracy |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    keys = [k for k in KINDS if k in counts]
    keys += sorted(k for k in counts if " / " in k) + ["all"]
    for k in keys:
        c = counts[k]
        name = f"**{k}**" if k == "all" else k
        lines.append(f"| {name} | {c['n']} | {c['right']} | {c['wrong']} | {c['missed']} "
                     f"| {c['right'] / c['n']:.1%} |")
    wm = res["wrong_majorities"]
    per = res["seconds"]["median"] / max(1, res["replies_timed"])
    lines += [
        f"\nConfidently wrong majorities (the winner over the extracted answers is not an "
        f"expected answer with the most votes, and holds at least {CONFIDENT:.0%} of them): "
        f"**{len(wm)}** of {res['groups']} votes (the replies to one question, two or more "
        "each: the SmolLM2 GSM8K questions were sampled twice, the hand-written groups 2–7 "
        "times).",
        f"\nExtraction time for the {res['replies_timed']} replies: "
        f"{fmt(res['seconds'])} ({per * 1000:.2f} ms per reply, median; math-verify parses "
        "each number span).",
    ]
    wrong_text = counts.get("text", {}).get("wrong", 0)
    if wrong_text:
        lines.append(f"\nReading: the {wrong_text} wrong short answers are SmolLM2 sentences "
                     "that answer nothing (a description, a restated question) yet are read "
                     "as an answer sentence: in a vote each counts for a non-answer, and "
                     "grading finds no gold answer in them. No number or letter is read wrong.")
    if res["misread"]:
        lines.append("\nMisread replies (file:line, expected → got, reason):\n")
        for m in res["misread"]:
            lines.append(f"- `{m['file']}` {m['kind']}: {m['expected']!r} → {m['got']!r}"
                         + (f" ({m['reason']})" if m["reason"] else ""))
    return "\n".join(lines)
