"""Samples and the majority count (self-consistency, Wang et al. 2023): failed or answerless
samples do not vote; ties go to the better-ranked model, then the earlier arrival."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from avengers_core.answers.extract import group_free

TRUNCATED = "reply cut off by the token limit before a final answer"
FINAL = re.compile(r"####|\\boxed|answer\s*(?:is|:)", re.IGNORECASE)
"""A final-answer marker: a reply cut by the token limit votes only if it has one."""
FREE_CHARS = 1000
"""Free-text samples are grouped on their first FREE_CHARS characters: character
similarity costs time quadratic in length, and a runaway 1 MB reply must not stall the
vote (the whole text is still shown and returned)."""


@dataclass
class Sample:
    """One drawn sample. `error` is the failure reason; `answer` the extracted answer;
    `text` the answer part of the reply and `thinking` its reasoning trace (kept out of
    the vote); `endpoint` the server that drew it. Samples drawn in one `n` request share
    its seed and differ by `choice`; `no_answer` says why a reply gave no answer."""

    index: int
    model: str
    rank: int
    seed: int
    text: str = ""
    error: str | None = None
    answer: str | None = None
    arrival: int = -1
    thinking: str = ""
    endpoint: str = ""
    choice: int = 0
    no_answer: str | None = None
    truncated: bool = False
    finish_reason: str | None = None  # the engine's, where it said (serve relays it)
    prompt_tokens: int | None = None  # usage, where the engine reported it
    completion_tokens: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "seed": self.seed,
            "text": self.text,
            "answer": self.answer,
            "error": self.error,
            "endpoint": self.endpoint,
            "choice": self.choice,
            "thinking": self.thinking,
            "no_answer": self.no_answer,
        }


@dataclass(frozen=True)
class Tally:
    """Votes per answer, winner first (ties: better routing rank, then earlier arrival)."""

    votes: dict[str, int]
    voters: dict[str, list[int]]
    winner: str | None
    confidence: float
    counted: int
    failed: int


@dataclass
class VoteResult:
    """The outcome of a run; `to_dict()` is the CLI's `--json` object.

    asked: the samples the run planned (N; Model-Switch: N per model it reached);
    stopped: why sampling ended: "complete" (every sample asked ran), "decided" or
    "confident" (a stopping rule of :mod:`avengers_core.vote.stopping`), "cancelled".
    """

    query: str
    kind: str
    models: list[str]
    samples: list[Sample]
    tally: Tally
    cancelled: bool = False
    notes: list[str] = field(default_factory=list)
    asked: int = 0
    stopped: str = "complete"

    @property
    def drawn(self) -> int:
        """Samples that ran to the end (answered, answerless or failed)."""
        return len(self.samples)

    @property
    def answer(self) -> str | None:
        return self.tally.winner

    @property
    def confidence(self) -> float:
        return self.tally.confidence

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "votes": dict(self.tally.votes),
            "confidence": self.confidence,
            "voters": {a: list(v) for a, v in self.tally.voters.items()},
            "kind": self.kind,
            "models": list(self.models),
            "cancelled": self.cancelled,
            "drawn": self.drawn,
            "asked": self.asked,
            "stopped": self.stopped,
            "notes": list(self.notes),
            "samples": [s.to_dict() for s in self.samples],
        }


# -- counting ----------------------------------------------------------------------------


def count_votes(
    samples: Sequence[Sample],
    kind: str = "number",
    embed: Callable[[list[str]], Sequence[Sequence[float]]] | None = None,
) -> Tally:
    """Majority vote over the samples' answers (failed or answerless samples do not vote).

    For `free` text the answers are groups of near-identical samples (compared on their
    first FREE_CHARS characters), named by the text of each group's most central sample.
    Confidence is the winner's share of the votes cast.
    """
    done = [s for s in samples if s.error is None]
    failed = sum(1 for s in samples if s.error is not None)
    voters: dict[str, list[int]] = {}
    if kind == "free":
        valid = [s for s in done if s.text.strip()]
        for g in group_free([s.text[:FREE_CHARS] for s in valid], embed=embed):
            key = valid[g.center].text.strip()
            voters.setdefault(key, []).extend(valid[i].index for i in g.members)
    else:
        for s in done:
            if s.answer is not None:
                voters.setdefault(s.answer, []).append(s.index)
    by_index = {s.index: s for s in samples}

    def order(answer: str) -> tuple[int, int, int]:
        members = [by_index[i] for i in voters[answer]]
        rank = min(m.rank for m in members)
        first = min(m.arrival if m.arrival >= 0 else 1 << 30 for m in members)
        return (-len(members), rank, first)

    ranked = sorted(voters, key=order)
    counted = sum(len(v) for v in voters.values())
    winner = ranked[0] if ranked else None
    confidence = len(voters[winner]) / counted if winner is not None else 0.0
    return Tally(
        votes={a: len(voters[a]) for a in ranked},
        voters={a: sorted(voters[a], key=lambda i: by_index[i].arrival) for a in ranked},
        winner=winner,
        confidence=confidence,
        counted=counted,
        failed=failed,
    )


def failure_summary(samples: Sequence[Sample], limit: int = 3) -> str:
    """The distinct failure reasons, most frequent first: `HTTP 500: boom (×3); ...`.

    Why: when no sample answered, the user needs to know why in one line.
    """
    counts = Counter(s.error for s in samples if s.error)
    parts = [f"{r} (×{n})" if n > 1 else r for r, n in counts.most_common(limit)]
    if len(counts) > limit:
        parts.append(f"{len(counts) - limit} other reason(s)")
    return "; ".join(parts)
