"""Wall time of one 10-sample vote against the fake Ollama server (0.5 s per reply).

Concurrent (samples of one model in parallel) versus one after another. Writes the
markdown table to stdout; run from the repository root:

    python -m bench.bench_vote [--repeats 3] [--latency 0.5] [--samples 10]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

from avengers_core.vote import VoteRun
from tests.fake_ollama import FakeOllama, ModelScript

MODEL = "qwen2.5:7b-instruct"


def time_vote(url: str, samples: int, concurrency: int) -> float:
    start = time.perf_counter()
    result = VoteRun(url, [MODEL], "What is 6*7?", samples=samples, concurrency=concurrency).run()
    elapsed = time.perf_counter() - start
    if result.answer != "42" or result.tally.counted != samples:
        raise RuntimeError(f"unexpected vote result: {result.to_dict()}")
    return elapsed


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--latency", type=float, default=0.5)
    ap.add_argument("--samples", type=int, default=10)
    args = ap.parse_args(argv)
    script = ModelScript(replies=["Six times seven is 42.\n#### 42"], latency=args.latency)
    with FakeOllama({MODEL: script}) as srv:
        time_vote(srv.url, 2, 2)  # warm-up: imports, first connection
        rows = []
        for label, conc in [
            ("one after another", 1),
            ("concurrent, 4 at a time", 4),
            (f"concurrent, all {args.samples}", args.samples),
        ]:
            times = [time_vote(srv.url, args.samples, conc) for _ in range(args.repeats)]
            rows.append((label, conc, statistics.median(times), min(times), max(times)))
    print(f"machine: {platform.machine()}, nproc {os.cpu_count()}, "
          f"Python {platform.python_version()} ({sys.implementation.name}), {platform.system()}")
    print(f"{args.samples} samples, {args.latency} s latency per reply, "
          f"{args.repeats} repeats (median, min-max)\n")
    print("| mode | concurrency | wall time (median) | min | max |")
    print("|---|---:|---:|---:|---:|")
    for label, conc, med, lo, hi in rows:
        print(f"| {label} | {conc} | {med:.2f} s | {lo:.2f} s | {hi:.2f} s |")


if __name__ == "__main__":
    main()
