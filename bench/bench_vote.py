"""Voting: wall time of one 10-sample vote against the loopback Ollama-protocol server.

Concurrent (samples of one model in parallel) versus one after another, every reply delayed
0.5 s before its first token; the real `ollama` client streams each sample over HTTP.
Part of `python -m bench` (`--only vote`).
"""

from __future__ import annotations

from typing import Any

from avengers_core.pipeline import VotePlan, start_vote
from bench.common import fmt, repeat
from tests.support.fake_ollama import FakeOllama, ModelScript

MODEL = "qwen2.5:7b-instruct"
LATENCY = 0.5
SAMPLES = 10


def vote_once(url: str, samples: int, concurrency: int) -> None:
    """One vote; raises if the majority is not the scripted answer (a broken run is no timing)."""
    result = start_vote(url, VotePlan([MODEL], "number"), "What is 6*7?", samples=samples,
                        concurrency=concurrency, early_stop="off").run()
    if result.answer != "42" or result.tally.counted != samples:
        raise RuntimeError(f"unexpected vote result: {result.to_dict()}")


def run(repeats: int, quick: bool) -> dict[str, Any]:
    """Time sequential, 4-way and all-at-once voting, `repeats` times each."""
    samples = 4 if quick else SAMPLES
    script = ModelScript(replies=["Six times seven is 42.\n#### 42"], latency=LATENCY)
    rows = []
    with FakeOllama({MODEL: script}) as srv:
        vote_once(srv.url, 2, 2)  # warm-up: imports, first connection
        for label, conc in [("one after another", 1), ("concurrent, 4 at a time", 4),
                            (f"concurrent, all {samples}", samples)]:
            t = repeat(lambda c=conc: vote_once(srv.url, samples, c), repeats)
            ideal = -(-samples // conc) * LATENCY
            rows.append({"mode": label, "concurrency": conc, "wall_s": t, "ideal_s": ideal})
    return {"samples": samples, "latency_s": LATENCY, "rows": rows}


def section(res: dict[str, Any]) -> str:
    """The voting part of BENCHMARKS.md."""
    seq = res["rows"][0]["wall_s"]["median"]
    lines = [
        f"## Voting: {res['samples']} samples, concurrent vs one after another\n",
        f"Wall time of one vote of {res['samples']} samples from one model against the project's",
        "loopback Ollama-protocol server (`tests/support/fake_ollama.py`), each reply delayed "
        f"{res['latency_s']} s before its first token. The real `ollama` client streams every "
        "sample over HTTP; the majority (`42`, all votes) is checked on every run.\n",
        "| mode | concurrency | wall time | ideal ⌈n ∕ c⌉ × latency | vs sequential |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in res["rows"]:
        w = r["wall_s"]
        lines.append(f"| {r['mode']} | {r['concurrency']} | {fmt(w)} | {r['ideal_s']:.2f} s "
                     f"| {seq / w['median']:.1f}× |")
    over = max(r["wall_s"]["median"] - r["ideal_s"] for r in res["rows"])
    lines.append(
        f"\nReading: the overhead beyond the scripted latency is at most {over * 1000:.0f} ms "
        "per vote (connection, streaming, extraction, tally). On a real Ollama the gain "
        "depends on `OLLAMA_NUM_PARALLEL` (how many requests one loaded model serves at "
        "once) and on the GPU; with `OLLAMA_NUM_PARALLEL=1` Ollama queues the requests and "
        "concurrency brings nothing.")
    return "\n".join(lines)
