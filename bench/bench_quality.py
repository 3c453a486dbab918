"""Routing quality on the demo table and the paper's ablations (BENCHMARKS.md, "quality").

    AVENGERS_DATA_DIR=../shared/data python -m bench --only quality [--repeats 3] [--quick]

Seed s (0 … repeats − 1) draws its own split, 30 % of every task held out, and every
method and setting of that seed is scored on the same held-out queries, so within a seed
the numbers are paired. Query vectors are MiniLM's, from the on-disk cache.
`AVENGERS_BENCH_EMBEDDERS` (comma-separated `get_embedder` names, e.g.
`ollama:nomic-embed-text`) adds embedders to the embedder comparison. The full run saves
two charts to assets/ (plotly exported by kaleido: bench/requirements.txt).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections import Counter
from typing import Any

import numpy as np

from avengers_core.data.load import load_table
from avengers_core.data.table import RoutingTable
from avengers_core.embed.base import normalise
from avengers_core.embed.cache import embed_texts
from avengers_core.embed.load import get_embedder
from avengers_core.errors import InputError
from avengers_core.routing.evaluate import (
    evaluate,
    fit_split,
    oracle_scores,
    picked_scores,
    picks,
    simulate_votes,
    sweep_fusion,
    sweep_k,
    sweep_models,
    sweep_shrinkage,
)
from avengers_core.routing.routers.avengers import AvengersRouter
from avengers_core.routing.routers.base import ROUTERS, RouterConfig

TEST_SIZE = 0.3
BINARY_SHARE = 0.95  # a task at least this share of whose scores are exactly 0 or 1 is right/wrong
GRID = {  # the settings of the full run
    "ks": [1, 4, 16, 64, 140],  # fewer than before issue 15: every fit now also runs the
    "top_ks": [1, 3, 5],  # task classifier's cross-validation
    "betas": [3.0, 6.0, 12.0],
    "taus": [0.0, 1.0, 5.0, 20.0, 100.0, 1000.0, "auto"],
    "vote_ns": [1, 3, 5, 10],
    "lsa_dim": 256,
}
QUICK = {**GRID, "ks": [1, 16], "top_ks": [1, 3], "betas": [1.0, 6.0],
         "taus": [0.0, 20.0, "auto"], "lsa_dim": 64}
METHODS = {  # held-out methods, in table order
    "router": "router (default: top-3 clusters, β = 6, prior and shrinkage by CV)",
    "paper": "paper-exact (nearest cluster, raw accuracy, rank fusion)",
    "best_single": "best single model (chosen on train)",
    "knn": "kNN router (20 nearest train queries)",
    "random": "random model",
    "oracle": "oracle (best model per query)",
}
TRIED = {  # every routing method of issue 15: label, and how it is fitted on a training half
    "router": ("default: recipe, prior (global or task) and τ chosen by CV",
               lambda t, x, s: AvengersRouter.fit(t, x, RouterConfig(seed=s))),
    "recipe_global": ("recipe with the global prior, τ by CV (the default before)",
                      lambda t, x, s: AvengersRouter.fit(t, x, RouterConfig(seed=s,
                                                                            prior="global"))),
    "recipe_task": ("recipe with the task prior, τ by CV",
                    lambda t, x, s: AvengersRouter.fit(t, x, RouterConfig(seed=s, prior="task"))),
    "task_prior": ("task prior alone (τ = 1000: P(task ∣ query) · task accuracy)",
                   lambda t, x, s: AvengersRouter.fit(t, x, RouterConfig(
                       seed=s, prior="task", shrinkage=1000.0))),
    "paper": ("paper-exact", lambda t, x, s: AvengersRouter.fit(t, x, RouterConfig.paper(seed=s))),
    "evidence": ("evidence: 30 nearest queries shrunk toward the default, τ by CV", None),
    "logreg": ("per-model logistic regression", None),
    "mlp": ("MLP (one hidden layer of 64)", None),
    "lowrank": ("low-rank factorisation (EmbedLLM style, rank 4)", None),
    "knn": ("kNN (20 nearest train queries)", None),
    "auto": ("auto: the inner-CV winner among default, evidence, logreg, MLP, low-rank, kNN",
             None),
}
CHARTS = {"k_sweep": "assets/bench_k_sweep.png", "models": "assets/bench_models.png"}


def log(msg: str) -> None:
    print(f"[quality] {msg}", file=sys.stderr, flush=True)


def lsa_vectors(texts: list[str], train_rows: np.ndarray, dim: int, seed: int) -> np.ndarray:
    """TF-IDF + truncated SVD (LSA) fitted on the training queries only, applied to all.

    A non-neural reference embedder: held-out queries never shape the vocabulary, the IDF
    weights or the SVD basis, so it leaks nothing into the evaluation.
    """
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(sublinear_tf=True, min_df=2)
    m = vec.fit_transform([texts[i] for i in train_rows])
    svd = TruncatedSVD(min(dim, m.shape[1] - 1), random_state=seed).fit(m)
    return normalise(svd.transform(vec.transform(texts)))


def demo_score_facts() -> dict[str, dict[str, Any]]:
    """Per task of the demo data: its metric's name and how many raw records (before
    repeated questions are merged) have a score strictly between 0 and 1."""
    from avengers_core.data.datasets import demo_file

    metric, task_of = {}, {}
    for name in ("query_train.jsonl", "query_test.jsonl"):
        with open(demo_file("llmrouter", name), encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    rec = json.loads(line)
                    metric.setdefault(rec["task_name"], rec["metric"])
                    task_of.setdefault(rec["query"], rec["task_name"])
    raw: Counter = Counter()
    for name in ("dcrouter_train.json", "dcrouter_test.json"):
        for rec in json.loads(demo_file("llmrouter", name).read_text(encoding="utf-8")):
            if any(0 < v < 1 for v in rec["scores"].values()):
                raw[task_of.get(rec["question"], "")] += 1
    return {t: {"metric": m, "raw_fractional_records": raw[t]} for t, m in metric.items()}


def score_kinds(table: RoutingTable, facts: dict[str, dict[str, Any]]) -> dict[str, dict]:
    """Per task: how many queries, the share of scores exactly 0 or 1, the other values
    (and `facts` about the task, e.g. its metric)."""
    tasks = np.array(table.tasks or [""] * len(table))
    out = {}
    for t in sorted(set(tasks)):
        v = table.scores[tasks == t]
        v = v[~np.isnan(v)]
        other = v[(v != 0) & (v != 1)]
        out[str(t)] = {
            "n": int((tasks == t).sum()),
            "share_01": float(1 - len(other) / max(len(v), 1)),
            "other_values": [float(a) for a, _ in Counter(np.round(other, 3)).most_common(3)],
            **facts.get(str(t), {}),
        }
    return out


def extra_embedders() -> list[str]:
    """Embedder names from AVENGERS_BENCH_EMBEDDERS (comma-separated), if set."""
    return [e.strip() for e in os.environ.get("AVENGERS_BENCH_EMBEDDERS", "").split(",")
            if e.strip()]


def _held_out(res: dict) -> dict[str, float]:
    return {m: res[m] for m in METHODS}


def run(repeats: int = 3, quick: bool = False, embedders: list[str] | None = None,
        table: RoutingTable | None = None, x: np.ndarray | None = None) -> dict:
    """Every measurement of this part, per seed (JSON-ready); `quality_report` draws them.

    `embedders` (default: AVENGERS_BENCH_EMBEDDERS) are extra `get_embedder` names to
    compare with MiniLM and LSA. `table` and its vectors `x` replace the demo table and
    its MiniLM vectors (for tests).
    """
    grid = QUICK if quick else GRID
    seeds = list(range(1 if quick else max(1, repeats)))
    demo = table is None
    vectors_id = "st:all-MiniLM-L6-v2"
    if demo:
        table = load_table("llmrouter")
        minilm = get_embedder()
        x, vectors_id = embed_texts(table.queries, minilm), minilm.id
    kinds = score_kinds(table, demo_score_facts() if demo else {})
    binary = [t for t, k in kinds.items() if k["share_01"] >= BINARY_SHARE]
    res: dict[str, Any] = {
        "table": {"name": table.source, "n_queries": len(table), "models": table.models,
                  "duplicates_merged": int(getattr(table, "duplicates_merged", 0)),
                  "tasks": kinds},
        "seeds": seeds, "test_size": TEST_SIZE, "grid": grid, "quick": quick,
        "config": {k: v for k, v in vars(RouterConfig()).items()},
        "heldout": [], "tried": [], "k_sweep": [], "models": [], "fusion": [], "shrinkage": [],
        "votes": {"tasks": binary, "runs": []},
        "embedders": {"minilm": {"id": vectors_id, "dim": int(x.shape[1]), "runs": []},
                      "lsa": {"id": f"TF-IDF + truncated SVD ({grid['lsa_dim']} dims)",
                              "dim": grid["lsa_dim"], "runs": []}},
        "seconds": {},
    }
    clock: Counter = Counter()

    @contextlib.contextmanager
    def timing(part: str):
        t = time.perf_counter()
        yield
        clock[part] += time.perf_counter() - t

    for s in seeds:
        with timing("held-out"):
            f = fit_split(table, x, RouterConfig(), TEST_SIZE, s)
            held = evaluate(table, x, fitted=f)
        res["heldout"].append(held)
        res["embedders"]["minilm"]["runs"].append(_held_out(held))
        with timing("methods tried"):
            res["tried"].append(tried(f, x))
            res.setdefault("fallback", []).append(confidence_fallback(f, x))
            res.setdefault("joint", []).append(joint_cv(f, x))
        with timing("models"):
            res["models"].append(sweep_models(table, x, fitted=f))
        with timing("fusion"):
            res["fusion"].append(sweep_fusion(table, x, grid["top_ks"], grid["betas"], fitted=f))
        with timing("shrinkage"):
            res["shrinkage"].append(sweep_shrinkage(table, x, grid["taus"], fitted=f))
        with timing("votes"):
            res["votes"]["runs"].append(
                simulate_votes(table, x, grid["vote_ns"], tasks=binary, fitted=f))
        with timing("K sweep"):
            res["k_sweep"].append(sweep_k(table, x, grid["ks"], RouterConfig(), TEST_SIZE, s))
        with timing("embedders"):
            xl = lsa_vectors(table.queries, f.tr, grid["lsa_dim"], s)
            res["embedders"]["lsa"]["runs"].append(
                _held_out(evaluate(table, xl, seed=s, test_size=TEST_SIZE)))
        log(f"seed {s} done ({sum(clock.values()):.0f} s so far)")
    if demo:
        with timing("slice"):
            res["slice"] = dominant_slice(table, x, seeds if quick else list(range(5)))
    for name in embedders if embedders is not None else extra_embedders():
        with timing("embedders"):
            res["embedders"][name] = other_embedder(table, name, seeds)
    res["seconds"] = {k: round(v, 1) for k, v in clock.items()}
    return res


def tried(f, x: np.ndarray) -> dict[str, dict[str, Any]]:
    """Every method of `TRIED` fitted on one split's training half: held-out score, share
    of the best-single → oracle gap closed, fit time (s) and route time (ms per query,
    routing the held-out queries' vectors in one batch; embedding not included)."""
    import avengers_core.routing.routers  # noqa: F401  (registers the routers beside the recipe)

    xt, st = x[f.te], f.test.scores
    best = float(picked_scores(picks(ROUTERS["best_single"].fit(f.train, x[f.tr], RouterConfig()),
                                     xt, st), st).mean())
    oracle = float(oracle_scores(st).mean())
    out: dict[str, dict[str, Any]] = {}
    for name, (_, make) in TRIED.items():
        fit = make or (lambda t, v, s, n=name: ROUTERS[n].fit(t, v, RouterConfig(seed=s)))
        t0 = time.perf_counter()
        r = fit(f.train, x[f.tr], f.seed)
        t1 = time.perf_counter()
        pick = picks(r, xt, st)
        t2 = time.perf_counter()
        score = float(picked_scores(pick, st).mean())
        row = {"score": score, "gap_closed": (score - best) / (oracle - best)
               if oracle > best else float("nan"),
               "fit_s": t1 - t0, "route_ms": 1000 * (t2 - t1) / max(len(xt), 1)}
        if isinstance(r, AvengersRouter):
            row.update(prior=r.config.prior, shrinkage=r.config.shrinkage)
        if name == "evidence":
            row["shrinkage"] = r.tau
        if name == "auto":
            row.update(choice=r.choice, cv=r.cv)
        out[name] = row
    return out


FALLBACK_MARGINS = (0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08)


def confidence_fallback(f, x: np.ndarray,
                        margins: tuple[float, ...] = FALLBACK_MARGINS) -> dict[str, Any]:
    """Per-query confidence (issue 15): where the default router's top two models are
    within `margin` of each other (fused score), take the one with the better global mean.
    Held-out score for each margin (0 = no fallback), on the split's fitted default."""
    r = f.router
    fused, st = r.predict(x[f.te]), np.nan_to_num(f.test.scores, nan=0.0)
    rows = np.arange(len(fused))
    order = np.argsort(-fused, axis=1, kind="stable")
    top1, top2 = order[:, 0], order[:, 1]
    margin = fused[rows, top1] - fused[rows, top2]
    g = r.profile.global_mean
    better = np.where(g[top1] >= g[top2], top1, top2)
    return {"margins": list(margins),
            "scores": [float(st[rows, np.where(margin < m, better, top1)].mean())
                       for m in margins]}


JOINT_GRID = {"k": (16, 32, 64, 128), "top_k": (1, 3, 5), "beta": (3.0, 6.0, 12.0)}


def joint_cv(f, x: np.ndarray, folds: int = 5, grid: dict | None = None) -> dict[str, Any]:
    """K, top-k and β chosen together by 5-fold cross-validation inside the training half
    (one criterion: the mean routed score; the clustering of each K is fitted per fold,
    the prior and τ fixed at the recipe's global prior with τ = 20), then the default
    (prior and τ by CV) fitted with them on the whole half: held-out score (issue 15)."""
    from avengers_core.routing.cluster import kmeans
    from avengers_core.routing.score import CapabilityProfile

    grid = grid or JOINT_GRID
    train, xt = f.train, x[f.tr]
    fold = np.random.default_rng(f.seed).integers(0, folds, len(train))
    filled = np.nan_to_num(train.scores, nan=0.0)
    cands = [(k, tk, b) for k in grid["k"] for tk in grid["top_k"] for b in grid["beta"]]
    got = np.zeros((len(cands), len(train)))
    for g in range(folds):
        fit_rows, rows = np.flatnonzero(fold != g), np.flatnonzero(fold == g)
        for k in grid["k"]:
            clus = kmeans(xt[fit_rows], k, f.seed)
            prof = CapabilityProfile.build(clus.labels, train.scores[fit_rows], k,
                                           train.models, None, 20.0)
            for c, (ck, tk, b) in enumerate(cands):
                if ck != k:
                    continue
                cfg = RouterConfig(k=k, top_k=tk, beta=b, shrinkage=20.0, prior="global")
                r = AvengersRouter(clus.centroids, prof, cfg)
                got[c, rows] = filled[rows, r.predict(xt[rows]).argmax(axis=1)]
    k, tk, b = cands[int(np.argmax(got.mean(axis=1)))]
    t0 = time.perf_counter()
    r = AvengersRouter.fit(train, xt, RouterConfig(k=k, top_k=tk, beta=b, seed=f.seed))
    fit_s = time.perf_counter() - t0
    st = f.test.scores
    return {"k": k, "top_k": tk, "beta": b, "fit_s": fit_s,
            "score": float(picked_scores(picks(r, x[f.te], st), st).mean())}


SLICE = ("mmlu", "math")  # one model (llama-3.3-nemotron-super-49b-v1) leads both


def dominant_slice(table: RoutingTable, x: np.ndarray, seeds: list[int]) -> dict[str, Any]:
    """Held-out scores on a slice where one model dominates: raw per-cluster accuracies
    overfit there, and shrinkage should fall back to that model."""
    idx = [i for i, t in enumerate(table.tasks) if t in SLICE]
    sl, xs = table.subset(idx), x[idx]
    runs = [evaluate(sl, xs, RouterConfig(), TEST_SIZE, s) for s in seeds]
    return {"tasks": list(SLICE), "n": len(idx), "seeds": seeds,
            "runs": [{**_held_out(r), "shrinkage": r["shrinkage"],
                      "best_single_model": r["best_single_model"]} for r in runs]}


def other_embedder(table: RoutingTable, name: str, seeds: list[int]) -> dict[str, Any]:
    """Held-out scores with embedder `name`, or the one-line reason it could not be used."""
    try:
        emb = get_embedder(name)
        xe = embed_texts(table.queries, emb, progress=None)
    except InputError as e:
        log(f"embedder {name}: {e}")
        return {"id": name, "error": str(e)}
    return {"id": emb.id, "dim": int(xe.shape[1]),
            "runs": [_held_out(evaluate(table, xe, seed=s, test_size=TEST_SIZE))
                     for s in seeds]}
