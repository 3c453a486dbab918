"""Shared pieces of the benchmark scripts: the machine, repeated timing, median and spread.

Every bench module `bench/bench_<name>.py` has `run(repeats: int, quick: bool) -> dict`
(JSON-ready results) and `section(results: dict) -> str` (its part of BENCHMARKS.md);
`python -m bench` runs them all and writes BENCHMARKS.md.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def machine() -> str:
    """One line naming the machine the numbers come from."""
    mem = ""
    try:
        kb = int(next(line for line in open("/proc/meminfo") if line.startswith("MemTotal"))
                 .split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    cpu = ""
    try:
        cpu = next(line for line in open("/proc/cpuinfo") if line.startswith("model name"))
        cpu = ", " + cpu.split(":", 1)[1].strip()
    except (OSError, StopIteration):
        pass
    return (f"{platform.machine()}{cpu}, {os.cpu_count()} cores{mem}, "
            f"Python {platform.python_version()}, {platform.system()}")


def spread(values: list[float]) -> dict[str, Any]:
    """Median, min, max and the raw values of repeated measurements."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "values": list(values)}


def repeat(fn: Callable[[], Any], repeats: int) -> dict[str, Any]:
    """Time `fn` `repeats` times (seconds) and summarise with `spread`."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return spread(times)


def fmt(s: dict[str, Any], unit: str = "s", scale: float = 1.0, digits: int = 2) -> str:
    """'1.23 s (1.20–1.31, n=3)': median with the range over repeats."""
    m, lo, hi = (s[k] * scale for k in ("median", "min", "max"))
    n = len(s.get("values", []))
    return f"{m:.{digits}f} {unit} ({lo:.{digits}f}–{hi:.{digits}f}, n={n})".replace(" ()", "")


def worker_main(prog: str, workers: dict[str, Callable[..., Any]],
                argv: list[str] | None = None) -> None:
    """Entry of a bench worker process: `python -m <prog> <kind> '<json kwargs>'` runs
    `workers[kind](**kwargs)` and prints its result as one JSON line (a fresh process per
    measurement, so peak memory and first-call costs are its own)."""
    import argparse
    import json

    ap = argparse.ArgumentParser(prog=f"python -m {prog}")
    ap.add_argument("kind", choices=sorted(workers))
    ap.add_argument("kwargs", help="keyword arguments as a JSON object")
    args = ap.parse_args(argv)
    print(json.dumps(workers[args.kind](**json.loads(args.kwargs))))
