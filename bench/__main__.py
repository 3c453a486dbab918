"""Run the benchmark suite and write BENCHMARKS.md.

    AVENGERS_DATA_DIR=../shared/data python -m bench [--only speed,quality] [--repeats 3] [--quick]

Each part saves its raw results to bench/results/<part>.json; BENCHMARKS.md is rebuilt
from every results file present, so one part can be re-run alone.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import sys
import time

from bench.common import RESULTS, ROOT, machine

PARTS = ["quality", "speed", "gpu", "vote", "extract", "engine", "selfconsistency", "serve",
         "app"]
TITLE = """# Benchmarks

Every figure below comes from one command, run from the repository root:

```
AVENGERS_DATA_DIR=../shared/data python -m bench
```

(`--only quality,speed,gpu,vote,extract,engine,selfconsistency,serve,app` re-runs some
parts; `--quick` is a smoke run with fewer repeats and smaller sizes, not for publishing.)
Raw results are in `bench/results/*.json`. Times are the median over repeated runs with
the range (min–max) and the number of runs in brackets. The machines here are shared, so
where a figure has a natural reference the two are measured in the same run and reported
as a ratio.
"""


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(PARTS), help="comma-separated parts to run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="smoke run: small sizes, no publishing")
    ap.add_argument("--report-only", action="store_true", help="rebuild BENCHMARKS.md only")
    args = ap.parse_args(argv)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        ap.error(f"unknown part(s) {', '.join(unknown)}; expected some of {', '.join(PARTS)}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        for part in parts:
            mod = importlib.import_module(f"bench.bench_{part}")
            print(f"[bench] {part} ...", file=sys.stderr, flush=True)
            t = time.perf_counter()
            res = mod.run(repeats=args.repeats, quick=args.quick)
            res["_meta"] = {
                "machine": machine(),
                "date": datetime.date.today().isoformat(),
                "seconds": round(time.perf_counter() - t, 1),
                "repeats": args.repeats,
                "quick": args.quick,
            }
            out = RESULTS / (f"{part}.quick.json" if args.quick else f"{part}.json")
            out.write_text(json.dumps(res, indent=1))
            print(f"[bench] {part} done in {res['_meta']['seconds']} s -> {out}",
                  file=sys.stderr, flush=True)
    if args.quick:
        return
    sections = [TITLE]
    for part in PARTS:
        path = RESULTS / f"{part}.json"
        if not path.exists():
            continue
        res = json.loads(path.read_text())
        meta = res["_meta"]
        mod = importlib.import_module(f"bench.bench_{part}")
        if (ROOT / "bench" / f"{part}_report.py").exists():  # rendering kept apart
            mod = importlib.import_module(f"bench.{part}_report")
        sections.append(mod.section(res).rstrip() + "\n\n"
                        f"*Machine: {meta['machine']}; {meta['date']}; this part ran in "
                        f"{meta['seconds']:.0f} s.*\n")
    (ROOT / "BENCHMARKS.md").write_text("\n".join(sections))


if __name__ == "__main__":
    main()
