"""Shared setup for the issue-21 serve tests: the scripted engine speaking both protocols,
and `avengers serve` in front of it with models reached either way.

`qwen2.5:7b-instruct` and `llama3.1:8b` are the scripted engine's models over Ollama's API
(the default backend); the endpoints file serves the same two as `oa-qwen` and `oa-llama`
over its OpenAI-compatible `/v1`. With `mixed=True` the model map routes to the `oa-*`
names, so `avengers` and `avengers-route` meet an OpenAI engine; otherwise an Ollama one.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support.fake_ollama import FakeOllama, ModelScript
from tests.support.profiles import MATH
from tests.support.serve_util import serving

QWEN = "qwen2.5:7b-instruct"
LLAMA = "llama3.1:8b"
OA_QWEN = "oa-qwen"
OA_LLAMA = "oa-llama"


def scripts() -> dict[str, ModelScript]:
    """qwen's seeded replies vote 4 × 42 to 2 × 41 over 6 samples (seeds 0..5)."""
    return {QWEN: ModelScript(replies=["#### 42", "#### 42", "so 41\n#### 41"]),
            LLAMA: ModelScript(replies=["The answer is 41."]),
            "nomic-embed-text": ModelScript()}


def endpoints_file(srv: FakeOllama, folder: Path) -> Path:
    """An endpoints file serving the scripted models over `/v1` as oa-qwen and oa-llama."""
    path = folder / "endpoints.json"
    path.write_text(json.dumps({"models": {
        OA_QWEN: {"backend": "openai", "urls": [f"{srv.url}/v1"], "model": QWEN},
        OA_LLAMA: {"backend": "openai", "urls": [f"{srv.url}/v1"], "model": LLAMA},
    }}))
    return path


@contextlib.contextmanager
def serve(srv: FakeOllama, profile: Path, folder: Path, *extra: str,
          mixed: bool = False) -> Iterator[str]:
    """`avengers serve` over the scripted engine (6 samples, every one drawn: these tests
    count them); yields its URL."""
    argv = [str(profile), "--host", srv.url, "--samples", "6", "--early-stop", "off",
            "--keepalive", "0.2", "--endpoints", str(endpoints_file(srv, folder)), *extra]
    if mixed:
        argv += ["--model-map", json.dumps({"qwen2.5-7b-instruct": OA_QWEN,
                                            "llama-3.1-8b-instruct": OA_LLAMA})]
    with serving(argv) as url:
        yield url


def sent(srv: FakeOllama, since: int, path: str) -> list[dict[str, Any]]:
    """The requests the engine got on `path` since request number `since`, without the
    fake's own bookkeeping fields."""
    return [{k: v for k, v in r.items() if k not in ("path", "authorization")}
            for r in srv.requests[since:] if r["path"] == path]


def sse(text: str) -> list[dict[str, Any]]:
    """The JSON events of an SSE body, up to `[DONE]` (which must be there)."""
    events = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


def ndjson(text: str) -> list[dict[str, Any]]:
    """The lines of an NDJSON body."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def user(text: str = MATH[0]) -> list[dict[str, str]]:
    """One user message."""
    return [{"role": "user", "content": text}]
