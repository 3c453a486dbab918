"""Model names across engines: a routing table's names against the tags a server offers.

A table names models as their authors do (`qwen2.5-7b-instruct`, `Qwen/Qwen2.5-7B-Instruct`,
RouterBench's `meta/llama-2-70b-chat`); an engine lists its own tags (`qwen2.5:7b-instruct`,
`llama3.2:latest`). :func:`map_models` pairs them: the user's mapping first, then the same
name, then a suggestion. As in Ollama, a tag without `:` means `:latest` (issue 11).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

_SIZE = re.compile(r"(?<![a-z0-9.])(\d+(?:\.\d+)?)b(?![a-z0-9])")


def _key(name: str) -> str:
    """The comparable core of a name: no organisation (`Qwen/`, `meta-llama/`, `hf.co/x/`),
    no `:latest`, lower case letters and digits only."""
    name = name.lower().rsplit("/", 1)[-1]
    name = name.removesuffix(":latest")
    return re.sub(r"[^a-z0-9]", "", name)


def _sizes(name: str) -> set[str]:
    return set(_SIZE.findall(re.sub(r"[:_/-]", " ", name.lower().rsplit("/", 1)[-1])))


def suggest_tag(name: str, local: Iterable[str]) -> str | None:
    """Best-effort local tag for a routing-table model name, or None.

    `qwen2.5-7b-instruct` and `Qwen/Qwen2.5-7B-Instruct` -> `qwen2.5:7b-instruct`;
    `gemma-2-9b-it` -> `gemma2:9b`; `meta/llama-2-70b-chat` -> `llama2:70b-chat`;
    `llama3.2` -> `llama3.2:latest`. Names must agree on the parameter size (7b, 70b...)
    when the name states one; an organisation prefix is ignored.
    """
    local = list(local)
    listed = find_listed(name, local)
    if listed is not None:
        return listed
    key, sizes = _key(name), _sizes(name)
    best: tuple[int, str] | None = None
    for tag in local:
        tkey = _key(tag)
        if not tkey or (sizes and _sizes(tag) != sizes):
            continue
        if tkey == key:
            return tag
        if key.startswith(tkey) or tkey.startswith(key):
            score = min(len(tkey), len(key))
            if best is None or score > best[0]:
                best = (score, tag)
    return best[1] if best else None


def map_models(
    names: Iterable[str], local: Iterable[str], mapping: Mapping[str, str] | None = None
) -> dict[str, str | None]:
    """Routing-table name -> local tag: the user's mapping first (a mapped `llama3.2` is the
    listed `llama3.2:latest`), then identity, then a suggestion; None when nothing local
    fits. A mapped tag that is not listed is kept as given (the caller reports it)."""
    local = list(local)
    mapping = dict(mapping or {})
    out: dict[str, str | None] = {}
    for name in names:
        if name in mapping:
            out[name] = find_listed(mapping[name], local) or mapping[name]
        else:
            out[name] = suggest_tag(name, local)
    return out


def same_model(a: str, b: str) -> bool:
    """True when two tags name one model: Ollama treats `llama3.2` and `llama3.2:latest`
    as the same (issue 11). Tags are compared exactly otherwise (case and organisation
    count: `meta/llama3` is not `llama3`)."""
    return a == b or a.removesuffix(":latest") == b.removesuffix(":latest")


def find_listed(name: str, listed: Iterable[str]) -> str | None:
    """The tag among `listed` that is the model `name` (see :func:`same_model`), or None."""
    return next((tag for tag in listed if same_model(name, tag)), None)


def pick_local_models(
    ranking: Sequence[str],
    local: Sequence[str],
    top_n: int = 1,
    mapping: Mapping[str, str] | None = None,
) -> tuple[list[str], list[str]]:
    """Local tags for the first `top_n` routed models that exist locally, and notes naming
    the routed models that are missing (with the one used instead)."""
    tags = map_models(ranking, local, mapping)
    chosen: list[str] = []
    notes: list[str] = []
    missing: list[str] = []
    for name in ranking:
        tag = tags[name]
        if tag in chosen:
            continue  # two table names for one local model: sample it once
        if tag is not None and tag in local:
            if missing and len(chosen) < top_n:
                notes.append(f"{', '.join(missing)} not available locally; using {tag} ({name})")
                missing = []
            chosen.append(tag)
            if len(chosen) == top_n:
                break
        elif len(chosen) < top_n:
            missing.append(f"{name} (tried {tag})" if tag else name)
    if missing:
        notes.append(f"{', '.join(missing)} not available locally")
    return chosen, notes
