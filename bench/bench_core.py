"""Benchmarks of the core on the demo table: embedding cold/warm, fit time per K, held-out scores.

    AVENGERS_DATA_DIR=../shared/data python bench/bench_core.py [--skip-cold] > bench/core.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

from avengers_core.embed import embed_texts, get_embedder
from avengers_core.evaluate import METHODS, evaluate, sweep_k, sweep_models
from avengers_core.route import AvengersRouter, RouterConfig
from avengers_core.table import load_table


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def cold_embed_seconds() -> float:
    """Embed the demo table in a fresh process with an empty cache (model load included)."""
    code = (
        "import time; t = time.perf_counter();"
        "from avengers_core.table import load_table;"
        "from avengers_core.embed import embed_texts, get_embedder;"
        "embed_texts(load_table('llmrouter').queries, get_embedder());"
        "print(time.perf_counter() - t)"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "AVENGERS_CACHE_DIR": cache}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-cold", action="store_true")
    args = ap.parse_args()
    res: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                   f"Python {platform.python_version()}",
        "command": "AVENGERS_DATA_DIR=../shared/data python bench/bench_core.py",
    }
    if not args.skip_cold:
        res["embed_cold_s"] = cold_embed_seconds()
    table = load_table("llmrouter")
    emb = get_embedder()
    x, res["embed_warm_s"] = timed(lambda: embed_texts(table.queries, emb))
    res["n_queries"] = len(table)
    res["fit_s"] = {}
    for k in (16, 64, 128):
        _, auto = timed(lambda k=k: AvengersRouter.fit(table, x, RouterConfig(k=k)))
        _, paper = timed(lambda k=k: AvengersRouter.fit(table, x, RouterConfig.paper(k=k)))
        res["fit_s"][k] = {"default (auto shrinkage)": auto, "paper": paper}
    runs = [evaluate(table, x, RouterConfig(k=64), seed=s) for s in (0, 1, 2)]
    res["heldout"] = {
        m: {"seeds": [r[m] for r in runs], "mean": float(np.mean([r[m] for r in runs]))}
        for m in METHODS
    }
    res["shrinkage_chosen"] = [r["shrinkage"] for r in runs]
    res["n_train"], res["n_test"] = runs[0]["n_train"], runs[0]["n_test"]
    variants = {
        "top_k=1, shrinkage auto": RouterConfig(top_k=1),
        "top_k=3, rank fusion, no shrinkage (paper's code)": RouterConfig(fusion="rank",
                                                                           shrinkage=0.0),
        "top_k=3, score fusion, no shrinkage": RouterConfig(shrinkage=0.0),
        "top_k=5, shrinkage auto": RouterConfig(top_k=5),
    }
    res["variants"] = {
        name: float(np.mean([evaluate(table, x, cfg, seed=s)["router"] for s in (0, 1, 2)]))
        for name, cfg in variants.items()
    }
    # A slice where one model dominates (mmlu + math: llama-3.3-nemotron-super-49b-v1):
    # raw per-cluster accuracies overfit there; shrinkage should fall back to that model.
    idx = [i for i, t in enumerate(table.tasks) if t in ("mmlu", "math")]
    sl, xs = table.subset(idx), x[idx]
    slice_runs = [evaluate(sl, xs, RouterConfig(k=64), seed=s) for s in range(5)]
    res["dominant_slice"] = {
        "tasks": ["mmlu", "math"], "n": len(idx), "seeds": list(range(5)),
        **{m: float(np.mean([r[m] for r in slice_runs]))
           for m in ("router", "paper", "best_single", "knn", "oracle")},
        "shrinkage_chosen": [r["shrinkage"] for r in slice_runs],
    }
    res["sweep_k_seed0"] = sweep_k(table, x, [8, 16, 32, 64, 128, 256])
    res["sweep_models_seed0"] = [
        {"n": r["n"], "router": r["router"]} for r in sweep_models(table, x)
    ]
    json.dump(res, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
