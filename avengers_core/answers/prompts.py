"""The prompt a model is sampled with: the query plus an instruction that makes its answer
extractable for the answer kind."""

from __future__ import annotations

from collections.abc import Sequence

from avengers_core.answers.kinds import LETTERS


def make_prompt(query: str, kind: str, choices: Sequence[str] | None = None) -> str:
    """The query plus a short instruction that makes the answer easy to extract."""
    if kind == "number":
        return f"{query}\n\nThink step by step, then give the final answer as '#### <number>'."
    if kind == "choice":
        options = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(list(choices or [])[:10]))
        body = f"{query}\n\n{options}" if options else query
        return f"{body}\n\nEnd with 'Answer: <letter>'."
    if kind == "text":
        return f"{query}\n\nAnswer briefly, ending with 'The answer is <answer>.'"
    return query
