"""Speed and scale: routing overhead, fit time and memory up to 200k queries, embedding.

Part of `python -m bench` (`--only speed`). Every measurement that loads the model or needs
a clean memory peak runs in a fresh worker process (`python -m bench.bench_speed <kind>`,
which prints one JSON line); the parent only orchestrates. The workers read the demo
table's vectors from a private copy of the embedding cache, written by the real
`embed_texts` path, so nothing another process writes to `~/.cache/avengers` can
disturb them, and that copy is also what the cache-size figure measures.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import ROOT, fmt, spread, worker_main

K = 64
SIGMA = 0.01  # per-dimension noise on resampled embeddings (≈ 0.2 in norm for d = 384)
FIT_SIZES = {"full": [0, 50_000, 200_000], "quick": [0, 10_000]}  # 0 = the demo table as is
COLD_QUERIES = {"full": 600, "quick": 50}
ROUTE_QUERIES = {"full": 150, "quick": 20}
WARMUP_CALLS = 5
TARGETS = {"route_ratio": 1.2, "fit_6k_s": 2.0, "fit_200k_s": 60.0, "fit_200k_gb": 2.0}
GB = 1e9 / 1024  # KiB per GB (decimal, the stricter reading of "2 GB")
CONFIGS = ("default", "paper")


# --- helpers shared by parent and workers --------------------------------------------------


def resample(x: np.ndarray, n: int, sigma: float, seed: int = 0,
             chunk: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    """`n` rows drawn with replacement from `x`, plus Gaussian noise, re-normalised.

    Returns the source row of each new row and the new unit-norm float32 vectors; built a
    chunk at a time so preparing 200k rows does not raise the memory peak above the fit's.
    """
    from avengers_core.embed.base import normalise

    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), n)
    out = np.empty((n, x.shape[1]), dtype=np.float32)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        noise = rng.standard_normal((e - s, x.shape[1]), dtype=np.float32)
        out[s:e] = normalise(x[idx[s:e]] + sigma * noise)
    return idx, out


def status_kib(field: str) -> int:
    """A field of /proc/self/status in KiB (VmRSS, VmHWM), 0 where unavailable."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS; False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def verdict(value: float, limit: float, unit: str, digits: int = 2) -> str:
    """'met (1.04× ≤ 1.2×)' or 'missed by 0.30× (25% over 1.2×)', from the numbers."""
    if value <= limit:
        return f"met ({value:.{digits}f}{unit} ≤ {limit:g}{unit})"
    return (f"missed by {value - limit:.{digits}f}{unit} "
            f"({value / limit - 1:.0%} over {limit:g}{unit})")


# --- workers (each in a fresh process) ----------------------------------------------------


def _demo() -> tuple[Any, np.ndarray]:
    """The demo table and its vectors from the cache (the model is never loaded)."""
    from avengers_core.data.load import load_table
    from avengers_core.embed.cache import EmbeddingCache, text_key
    from avengers_core.embed.load import get_embedder

    table = load_table("llmrouter")
    emb = get_embedder()
    keys = [text_key(q) for q in table.queries]
    found = EmbeddingCache(emb.id).get(keys)
    if len(found) != len(keys):
        raise RuntimeError(f"{len(keys) - len(found)} demo queries missing from the cache copy")
    return table, np.stack([found[k] for k in keys]).astype(np.float32)


def worker_fit(n: int, config: str, sigma: float) -> dict[str, Any]:
    """Fit K = 64 once on `n` resampled rows (0 = the demo table) and measure time and RSS."""
    import sklearn.cluster  # noqa: F401  (imported before timing, as in a running app)

    from avengers_core.routing.routers.avengers import AvengersRouter
    from avengers_core.routing.routers.base import RouterConfig

    table, x = _demo()
    out: dict[str, Any] = {"n": len(table) if n == 0 else n, "resampled": n != 0}
    if n:
        idx, x_new = resample(x, n, sigma)
        out["mean_cos_to_source"] = float(np.mean(np.sum(x_new * x[idx], axis=1)))
        table, x = table.subset(idx), x_new
    cfg = RouterConfig(k=K) if config == "default" else RouterConfig.paper(k=K)
    prep_peak = status_kib("VmHWM")
    rss_before = status_kib("VmRSS")
    out["peak_reset"] = reset_peak()
    t = time.perf_counter()
    router = AvengersRouter.fit(table, x, cfg)
    out["fit_s"] = time.perf_counter() - t
    fit_peak = status_kib("VmHWM")
    out.update(
        shrinkage=router.config.shrinkage,
        rss_before_kib=rss_before,
        fit_peak_kib=fit_peak,
        increase_kib=fit_peak - rss_before,
        peak_kib=max(prep_peak, fit_peak),
        ru_maxrss_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    )
    return out


def worker_cold(n: int) -> dict[str, Any]:
    """Empty cache: time loading MiniLM, then embedding `n` demo queries through the cache."""
    from avengers_core.data.load import load_table
    from avengers_core.embed.cache import EmbeddingCache, embed_texts, text_key
    from avengers_core.embed.load import get_embedder

    table = load_table("llmrouter")
    rng = np.random.default_rng(0)
    texts = [table.queries[i] for i in sorted(rng.choice(len(table), n, replace=False))]
    emb = get_embedder()
    if EmbeddingCache(emb.id).get([text_key(t) for t in texts]):
        raise RuntimeError("the cache is not empty: this would not be a cold run")
    t = time.perf_counter()
    _ = emb.dim  # loads sentence-transformers and the model
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    embed_texts(texts, emb)
    encode_s = time.perf_counter() - t
    return {"n": n, "load_s": load_s, "encode_s": encode_s, "qps": n / encode_s,
            "mean_chars": float(np.mean([len(q) for q in texts]))}


def worker_warm(repeats: int) -> dict[str, Any]:
    """Full demo table, every vector in the cache: `embed_texts` time per call."""
    from avengers_core.data.load import load_table
    from avengers_core.embed.cache import embed_texts
    from avengers_core.embed.load import get_embedder

    table = load_table("llmrouter")
    emb = get_embedder()
    times = []
    for _ in range(repeats):  # each call opens the cache afresh and reads every shard
        t = time.perf_counter()
        embed_texts(table.queries, emb)
        times.append(time.perf_counter() - t)
    return {"n": len(table), "times_s": times}


def worker_route(n: int, repeats: int) -> dict[str, Any]:
    """Route `n` new queries and bare-encode the same texts, interleaved, `repeats` rounds."""
    from avengers_core.embed.load import get_embedder
    from avengers_core.routing.routers.avengers import AvengersRouter
    from avengers_core.routing.routers.base import RouterConfig

    table, x = _demo()
    emb = get_embedder()
    router = AvengersRouter.fit(table, x, RouterConfig(k=K), embedder_id=emb.id)
    model = emb._model  # the very SentenceTransformer that route() encodes with
    rng = np.random.default_rng(1)
    # New texts (a demo question with a suffix): never in any cache, same length mix.
    texts = [f"{table.queries[i]} (variant {j})"
             for j, i in enumerate(rng.choice(len(table), n, replace=False))]

    def bare(q: str) -> None:
        model.encode([q], batch_size=1, convert_to_numpy=True)  # as Embedder._encode does

    def routed(q: str) -> None:
        router.route(q, embedder=emb)

    for q in texts[:WARMUP_CALLS]:
        bare(q)
        routed(q)
    rounds = []
    for r in range(repeats):
        enc, rte = [], []
        for i, q in enumerate(texts):
            pair = [(bare, enc), (routed, rte)]
            for fn, sink in (pair if (i + r) % 2 == 0 else pair[::-1]):  # alternate order
                t = time.perf_counter()
                fn(q)
                sink.append(time.perf_counter() - t)
        rounds.append({
            "encode_s": statistics.median(enc),
            "route_s": statistics.median(rte),
            "ratio": statistics.median(b / a for a, b in zip(enc, rte)),
            "extra_s": statistics.median(b - a for a, b in zip(enc, rte)),
        })
    return {"n": n, "k": K, "top_k": router.config.top_k, "rounds": rounds}


def worker_busy(repeats: int) -> dict[str, Any]:
    """K-means on the demo table while another process keeps one core busy: the product's
    `kmeans` (one BLAS thread) against plain scikit-learn KMeans (BLAS threads unlimited)."""
    from sklearn.cluster import KMeans

    from avengers_core.embed.base import normalise
    from avengers_core.routing.cluster import kmeans

    _, x = _demo()
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        out: dict[str, list[float]] = {"product": [], "unlimited": []}
        for _ in range(repeats):  # interleaved so drift hits both alike
            t = time.perf_counter()
            kmeans(x, K, seed=0)
            out["product"].append(time.perf_counter() - t)
            t = time.perf_counter()
            KMeans(n_clusters=K, init="k-means++", n_init=1, random_state=0).fit(normalise(x))
            out["unlimited"].append(time.perf_counter() - t)
    finally:
        hog.kill()
        hog.wait()
    return out


WORKERS = {"fit": worker_fit, "cold": worker_cold, "warm": worker_warm, "route": worker_route,
           "busy": worker_busy}


def _call(kind: str, cache: Path, module: str = "bench.bench_speed", **kw: Any
          ) -> dict[str, Any]:
    """Run one worker of `module` in a fresh process with `cache` as AVENGERS_CACHE_DIR."""
    args = [sys.executable, "-m", module, kind, json.dumps(kw)]
    env = {**os.environ, "AVENGERS_CACHE_DIR": str(cache)}
    p = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{module} worker {kind} {kw} failed:\n{p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def _log(msg: str) -> None:
    print(f"[bench speed] {msg}", file=sys.stderr, flush=True)


# --- parent --------------------------------------------------------------------------------


def _cache_copy(root: Path) -> dict[str, Any]:
    """Write the demo table's vectors into a fresh cache at `root` through `embed_texts`.

    The vectors come from the user's cache (embedded there once if missing), replayed by an
    embedder that looks them up, so the shards are laid out exactly as a cold run writes them.
    """
    from avengers_core.data.load import load_table
    from avengers_core.embed.base import Embedder
    from avengers_core.embed.cache import EmbeddingCache, embed_texts
    from avengers_core.embed.load import get_embedder

    table = load_table("llmrouter")
    real = get_embedder()
    x = embed_texts(table.queries, real)
    lookup = dict(zip(table.queries, x))

    class Replay(Embedder):
        id = real.id
        dim = x.shape[1]

        def _encode(self, texts: list[str]) -> np.ndarray:
            return np.stack([lookup[t] for t in texts])

    old = os.environ.get("AVENGERS_CACHE_DIR")
    os.environ["AVENGERS_CACHE_DIR"] = str(root)
    try:
        embed_texts(table.queries, Replay())
        shards = list(EmbeddingCache(real.id).dir.glob("shard-*.npz"))
    finally:
        if old is None:
            del os.environ["AVENGERS_CACHE_DIR"]
        else:
            os.environ["AVENGERS_CACHE_DIR"] = old
    total = sum(p.stat().st_size for p in shards)
    return {"n": len(table), "dim": int(x.shape[1]), "bytes": total, "shards": len(shards),
            "bytes_per_query": total / len(table)}


def run(repeats: int, quick: bool) -> dict[str, Any]:
    """Fit, embedding and routing figures; `quick` shrinks sizes and runs each once."""
    mode = "quick" if quick else "full"
    reps = 1 if quick else repeats
    res: dict[str, Any] = {"k": K, "sigma": SIGMA, "targets": TARGETS, "repeats": reps}
    with tempfile.TemporaryDirectory(prefix="avengers-bench-") as tmp:
        cache = Path(tmp) / "cache"
        res["cache"] = _cache_copy(cache)
        _log(f"cache copy: {res['cache']['bytes'] / 1e6:.1f} MB")

        fits: dict[str, dict[str, list[dict]]] = {}
        for r in range(reps):  # sizes and configs interleaved so drift hits all alike
            for n in FIT_SIZES[mode]:
                for cfg in CONFIGS:
                    out = _call("fit", cache, n=n, config=cfg, sigma=SIGMA)
                    fits.setdefault(str(out["n"]), {}).setdefault(cfg, []).append(out)
                    _log(f"fit {out['n']} {cfg} (round {r + 1}): {out['fit_s']:.2f} s, "
                         f"peak {out['peak_kib'] / GB:.2f} GB")
        res["fit"] = [_fit_row(n, cfg, runs) for n, by in fits.items() for cfg, runs in by.items()]

        cold = []
        for r in range(reps):
            with tempfile.TemporaryDirectory(prefix="cold-", dir=tmp) as empty:
                cold.append(_call("cold", Path(empty), n=COLD_QUERIES[mode]))
            _log(f"cold (round {r + 1}): load {cold[-1]['load_s']:.1f} s, "
                 f"{cold[-1]['qps']:.1f} queries/s")
        res["cold"] = {
            "n": cold[0]["n"], "mean_chars": cold[0]["mean_chars"],
            "load_s": spread([c["load_s"] for c in cold]),
            "encode_s": spread([c["encode_s"] for c in cold]),
            "qps": spread([c["qps"] for c in cold]),
        }
        warm = _call("warm", cache, repeats=reps)
        res["warm"] = {"n": warm["n"], "time_s": spread(warm["times_s"]),
                       "qps": spread([warm["n"] / t for t in warm["times_s"]])}
        _log(f"warm: {res['warm']['time_s']['median']:.2f} s")

        route = _call("route", cache, n=ROUTE_QUERIES[mode], repeats=reps)
        res["route"] = {"n": route["n"], "k": route["k"], "top_k": route["top_k"],
                        **{key: spread([rd[key] for rd in route["rounds"]])
                           for key in ("encode_s", "route_s", "ratio", "extra_s")}}
        _log(f"route: ratio {res['route']['ratio']['median']:.3f}")

        busy = _call("busy", cache, repeats=max(3, reps))
        res["busy"] = {k: spread(v) for k, v in busy.items()}
        _log(f"busy core: product {res['busy']['product']['median']:.2f} s, "
             f"unlimited {res['busy']['unlimited']['median']:.2f} s")
    return res


def _fit_row(n: str, cfg: str, runs: list[dict]) -> dict[str, Any]:
    return {
        "n": int(n), "config": cfg, "resampled": runs[0]["resampled"],
        "mean_cos_to_source": runs[0].get("mean_cos_to_source"),
        "shrinkage": [r["shrinkage"] for r in runs],
        "peak_reset": all(r["peak_reset"] for r in runs),
        "fit_s": spread([r["fit_s"] for r in runs]),
        "peak_gb": spread([r["peak_kib"] / GB for r in runs]),
        "increase_gb": spread([r["increase_kib"] / GB for r in runs]),
        "ru_maxrss_gb": [r["ru_maxrss_kib"] / GB for r in runs],
    }


# --- report --------------------------------------------------------------------------------


def section(res: dict[str, Any]) -> str:
    """The speed-and-scale part of BENCHMARKS.md."""
    tg, rt, c, w, cache = res["targets"], res["route"], res["cold"], res["warm"], res["cache"]
    demo_n = cache["n"]
    lines = [
        "## Speed and scale\n",
        f"Demo table (`load_table(\"llmrouter\")`, {demo_n:,} queries), all-MiniLM-L6-v2 on CPU, "
        f"K = {res['k']}. Each measurement runs in a fresh process started for it.\n",
        "### Routing overhead\n",
        f"{rt['n']} new queries (demo questions with a suffix, so in no cache) are each routed "
        f"with `AvengersRouter.route` (embed, nearest {rt['top_k']} of {rt['k']} clusters, "
        "fused scores, explanation) and encoded bare with the same loaded SentenceTransformer "
        "(`model.encode([q], batch_size=1)`, as the embedder calls it), the two interleaved "
        "in alternating order. Per round: the median per call and the median of the per-query "
        f"ratios; rounds: {len(rt['ratio']['values'])}.\n",
        "| per query | median |",
        "|---|---:|",
        f"| bare `encode` | {fmt(rt['encode_s'], 'ms', 1000, 1)} |",
        f"| `route` (encode + routing) | {fmt(rt['route_s'], 'ms', 1000, 1)} |",
        f"| routing's own time (route − encode) | {fmt(rt['extra_s'], 'ms', 1000, 2)} |",
        f"| ratio route ∕ encode | {fmt(rt['ratio'], '×', 1, 3)} |",
        "",
        f"Target ≤ {tg['route_ratio']}×: "
        f"**{verdict(rt['ratio']['median'], tg['route_ratio'], '×', 3)}**.\n",
        "### Fit: clustering and scoring at scale\n",
        f"`AvengersRouter.fit` at K = {res['k']} with the vectors already embedded: the default "
        "configuration (shrinkage chosen by 5-fold cross-validation over a grid) and the "
        "paper-exact `RouterConfig.paper()` (nearest cluster, raw accuracies). "
        f"The {demo_n:,}-query row is the demo table itself; the larger tables resample its "
        "rows with replacement (embedding vector, score row, task and cost together) and add "
        f"Gaussian noise with σ = {res['sigma']} per dimension to each vector, re-normalised"
        + _cos_note(res["fit"]) + ". Every fit runs in its own fresh process; peak RSS is that "
        "process's high-water mark (VmHWM) and the increase is the fit's peak over the "
        "process's RSS just before fitting" + _reset_note(res["fit"]) + ". (`ru_maxrss` is "
        "in the JSON too but not used: on Linux a process inherits its parent's peak in it "
        "across `exec`.)\n",
        "| queries | configuration | fit time | peak RSS | increase during fit | τ chosen |",
        "|---:|---|---:|---:|---:|---|",
    ]
    for row in sorted(res["fit"], key=lambda r: (r["n"], r["config"])):
        tau = ", ".join(f"{t:g}" for t in row["shrinkage"])
        lines.append(
            f"| {row['n']:,}{'' if row['resampled'] else ' (demo)'} | {row['config']} | "
            f"{fmt(row['fit_s'])} | {fmt(row['peak_gb'], 'GB')} | "
            f"{fmt(row['increase_gb'], 'GB')} | {tau} |")
    lines += ["", "Targets:", ""] + _fit_targets(res["fit"], demo_n, tg) + [""]
    if "busy" in res:
        b = res["busy"]
        lines += [
            "With another program keeping one of the two cores busy (as Ollama or a browser "
            f"would), K-means (K = {res['k']}) on the demo table, interleaved in one process:\n",
            "| K-means | time |", "|---|---:|",
            f"| the product's `kmeans` (one BLAS thread) | {fmt(b['product'])} |",
            f"| scikit-learn `KMeans`, BLAS threads unlimited | {fmt(b['unlimited'])} |",
            "",
            f"Ratio {b['unlimited']['median'] / b['product']['median']:.1f}×: k-means++ seeding "
            "does many small matrix products, and two BLAS threads wait on each other when one "
            "core is taken, which is why `cluster.kmeans` limits BLAS to one thread.\n",
        ]
    lines += [
        "### Embedding throughput and cache\n",
        f"Cold: a fresh process with an empty `AVENGERS_CACHE_DIR` loads the model, then embeds "
        f"{c['n']:,} demo queries drawn at random (mean {c['mean_chars']:.0f} characters) "
        "through `embed_texts` (batches of 64, cache written). Warm: the full demo table with "
        "every vector cached (each call reads the cache's shards from disk; the model is never "
        "loaded).\n",
        "| | median |",
        "|---|---:|",
        f"| cold: import sentence-transformers + load MiniLM | {fmt(c['load_s'])} |",
        f"| cold: encode throughput | {fmt(c['qps'], 'queries/s', 1, 1)} |",
        f"| cold: whole demo table, estimated (load + {demo_n:,} ∕ throughput) | "
        f"{c['load_s']['median'] + demo_n / c['qps']['median']:.0f} s |",
        f"| warm: whole demo table ({w['n']:,} queries) | {fmt(w['time_s'])} |",
        f"| warm: throughput | {fmt(w['qps'], 'queries/s', 1, 0)} |",
        f"| cache on disk for the demo table ({cache['shards']} shards) | "
        f"{cache['bytes'] / 1e6:.1f} MB |",
        f"| cache per query ({cache['dim']} float32 = {cache['dim'] * 4:,} bytes of vector) | "
        f"{cache['bytes_per_query']:,.0f} bytes |",
    ]
    return "\n".join(lines)


def _cos_note(rows: list[dict]) -> str:
    cos = [r["mean_cos_to_source"] for r in rows if r["mean_cos_to_source"] is not None]
    return f" (mean cosine to the source row {min(cos):.3f})" if cos else ""


def _reset_note(rows: list[dict]) -> str:
    if all(r["peak_reset"] for r in rows):
        return " (the mark reset at that point)"
    return " (the mark could not be reset here, so the increase includes preparing the data)"


def _fit_targets(rows: list[dict], demo_n: int, tg: dict[str, float]) -> list[str]:
    out = []
    for row in sorted(rows, key=lambda r: (r["n"], r["config"])):
        t, mem = row["fit_s"]["median"], row["peak_gb"]["median"]
        what = f"- {row['n']:,} queries, {row['config']}:"
        if row["n"] == demo_n:
            out.append(f"{what} under {tg['fit_6k_s']:g} s — "
                       f"**{verdict(t, tg['fit_6k_s'], ' s')}**")
        elif row["n"] == 200_000:
            out.append(f"{what} under {tg['fit_200k_s']:g} s — "
                       f"**{verdict(t, tg['fit_200k_s'], ' s', 1)}**; under "
                       f"{tg['fit_200k_gb']:g} GB — **{verdict(mem, tg['fit_200k_gb'], ' GB')}**")
    return out or ["- (no size with a target in this run)"]


def main(argv: list[str] | None = None) -> None:
    """Worker entry: `python -m bench.bench_speed <kind> '<json kwargs>'` prints one JSON line."""
    worker_main("bench.bench_speed", WORKERS, argv)

if __name__ == "__main__":
    main()
