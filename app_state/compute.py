"""Cached core computations for the pages, keyed by dataset, embedder and settings.

Long work runs as a background job (`app_state.jobs`); everything else is a `st.cache_*`
call into `avengers_core`.
"""

from __future__ import annotations

import contextlib
import io
import threading
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np
import streamlit as st

from app_state.fmt import md_escape
from app_state.jobs import WORKER, _slot, _start, computed, progress_line
from app_state.session import Dataset, get, k_of
from avengers_core import config
from avengers_core.data.table import RoutingTable
from avengers_core.embed.cache import embed_texts
from avengers_core.embed.load import get_embedder
from avengers_core.errors import InputError
from avengers_core.present import maps, plots
from avengers_core.present.labels import cluster_labels
from avengers_core.routing.explain import describe_prior
from avengers_core.routing.routers.avengers import AvengersRouter
from avengers_core.routing.routers.base import RouterConfig


@st.cache_resource(show_spinner="Loading the embedder…")
def embedder(name: str, device: str = "auto"):
    """The embedder by name on `device` ("auto": `AVENGERS_DEVICE`, else CUDA, MPS, CPU),
    kept loaded: the first MiniLM load takes ~10 s. Vectors are the same on every device,
    so they share one cache (issue 13)."""
    return get_embedder(name, device=device)


@st.cache_resource(show_spinner=False)
def _load_lock(embedder_id: str) -> threading.Lock:
    return threading.Lock()


def load_embedder(name: str) -> int:
    """Load the embedder's model now (once), so a bad name or an unreachable host fails
    here; its dimension. Waits for a background preload of the same embedder."""
    emb = embedder(name, get("device"))
    return _load(emb, _load_lock(emb.id))


def preload_embedder(ds: Dataset) -> None:
    """Load the session's local embedder in the background, once per process, so the first
    routed query does not wait ~10 s for MiniLM. It starts once the current dataset has a
    fitted router, so it never competes with a first embedding or fit; errors show up
    when a page uses the embedder."""
    name = get("embedder")
    if name.startswith("ollama:"):
        return
    emb = embedder(name, get("device"))
    if "value" not in _slot("fit", ds.key, emb.id, k_of(ds), int(get("seed"))):
        return
    slot = _slot("preload", emb.id)
    with slot["lock"]:
        if "thread" in slot:
            return
        slot["thread"] = threading.Thread(target=_quiet_load, args=(emb, _load_lock(emb.id)),
                                          daemon=True, name=f"{WORKER}preload")
        slot["thread"].start()


def _load(emb: Any, lock: threading.Lock) -> int:
    with lock:
        return emb.dim


def _quiet_load(emb: Any, lock: threading.Lock) -> None:
    with contextlib.suppress(Exception):
        _load(emb, lock)


def _embed_job(ds: Dataset) -> tuple[tuple, Callable]:
    emb = embedder(get("embedder"), get("device"))
    return (ds.key, emb.id), lambda progress: embed_texts(ds.table.queries, emb,
                                                          progress=progress)


def start_embeddings(ds: Dataset) -> None:
    """Start embedding the dataset in the background (once; no-op when done or running),
    so the pages that need no vectors stay usable while it runs (issue 14, item 9)."""
    if not get("embedder").startswith("ollama:"):  # a remote embedder may be down: on use
        _start("embeddings", *_embed_job(ds))


def embedding_progress(ds: Dataset) -> tuple[float, str] | None:
    """(fraction, line) while the dataset's embeddings are being computed, else None."""
    slot = _slot("embeddings", ds.key, embedder(get("embedder"), get("device")).id)
    if "value" in slot or "thread" not in slot or not slot["thread"].is_alive():
        return None
    return progress_line(slot)


def embeddings(ds: Dataset) -> np.ndarray:
    """The dataset's query vectors (disk-cached by the core; embedded once with progress)."""
    key, job = _embed_job(ds)
    try:
        return computed("embeddings", key, job,
                        f"Embedding {len(ds.table)} queries with {key[1]} (once; then cached "
                        "on disk):")
    except InputError as e:
        st.error(f"Embedding failed: {md_escape(str(e))}\n\n"
                 "Choose another embedder on the **Data** page.")
        st.stop()


def router(ds: Dataset) -> AvengersRouter:
    """The router fitted on the whole dataset with the session's K (routing knobs apart)."""
    x = embeddings(ds)
    emb = embedder(get("embedder"), get("device"))
    k, seed = k_of(ds), int(get("seed"))
    try:
        base = computed(
            "fit", (ds.key, emb.id, k, seed),
            lambda progress: AvengersRouter.fit(ds.table, x, RouterConfig(k=k, seed=seed),
                                                embedder_id=emb.id, progress=progress),
            f"Fitting the router (K = {k}):",
        )
    except InputError as e:
        st.error(md_escape(str(e)))
        st.stop()
    return base.with_config(top_k=min(int(get("top_k")), base.config.k),
                            beta=float(get("beta")),
                            top_n=min(int(get("top_n")), len(ds.table.models)),
                            alpha=float(get("alpha")))


@st.cache_data(show_spinner=False, max_entries=32)
def _labels(key: str, embedder_id: str, k: int, seed: int, _queries: list[str],
            _assign: np.ndarray) -> list[str]:
    return cluster_labels(_queries, _assign, k)


def labels(ds: Dataset, r: AvengersRouter) -> list[str]:
    """Short c-TF-IDF label of each cluster of the current fit."""
    return _labels(ds.key, r.embedder_id, r.config.k, r.config.seed, ds.table.queries, r.labels)


@st.cache_data(show_spinner=False, max_entries=8)
def _pca(key: str, embedder_id: str, _x: np.ndarray) -> np.ndarray:
    return maps.pca_2d(_x)


def map_coords(ds: Dataset) -> tuple[np.ndarray, str, dict]:
    """2-D map: UMAP from disk when ready, else the PCA preview while UMAP runs apart.

    `AVENGERS_UMAP=0` never starts UMAP (it still uses a map already on disk).
    """
    x = embeddings(ds)
    emb = embedder(get("embedder"), get("device"))
    if not config.umap_enabled():  # tests: never start UMAP
        job = maps.map_job(ds.table.queries, emb.id, "umap")
    else:
        job = maps.start_map(x, ds.table.queries, emb.id, method="umap")
    coords = job.coords()
    if coords is not None and len(coords) == len(x):
        return coords, "UMAP", job.status()
    return _pca(ds.key, emb.id, x), "PCA preview", job.status()


@st.cache_resource(show_spinner=False, max_entries=16)
def _cluster_figure(key: str, embedder_id: str, k: int, seed: int, color: str, method: str,
                    alpha: float, _ds: Dataset, _r: AvengersRouter, _names: list[str],
                    _coords: np.ndarray):
    t = _ds.table
    assign = _r.labels
    if color == "task" and t.tasks is not None:
        values, cnames = list(t.tasks), None
    elif color == "best model":
        best = _r.best_models()
        values, cnames = [best[c] for c in assign], None
    else:
        values = [int(c) for c in assign]
        cnames = {c: plots.cluster_title(c, n) for c, n in enumerate(_names)}
    title = f"{len(t)} queries, K = {k} ({method})"
    return plots.cluster_map(_coords, t.queries, values, color_name=color, names=cnames,
                             scores=(t.models, t.scores), title=title,
                             hovers=_hovers(key, t))


def cluster_figure(ds: Dataset, r: AvengersRouter, names: list[str], coords: np.ndarray,
                   method: str, color: str):
    """The cluster map figure for this fit, colouring and projection (cached)."""
    return _cluster_figure(ds.key, r.embedder_id, r.config.k, r.config.seed, color, method,
                           float(r.config.alpha), ds, r, names, coords)  # α: best models


@st.cache_data(show_spinner=False, max_entries=8)
def _hovers(key: str, _t: RoutingTable) -> list[str]:
    """Per query, its shortened, escaped hover text (the same for every K)."""
    return [plots.hover_text(q) for q in _t.queries]


def hovers(ds: Dataset) -> list[str]:
    """The dataset's queries as escaped, shortened hover texts (cached)."""
    return _hovers(ds.key, ds.table)


def query_rows(ds: Dataset, r: AvengersRouter, rows: list[int]):
    """Table of the given queries: text, task, cluster and every model's score."""
    import pandas as pd

    df = ds.table.to_frame().iloc[rows]
    df = df.drop(columns=[c for c in df.columns if c.startswith("cost:")])
    if r.labels is not None:
        df.insert(1, "cluster", [int(r.labels[i]) for i in rows])
    return pd.DataFrame(df)


def cluster_summary(ds: Dataset, r: AvengersRouter, names: list[str]) -> list[dict]:
    """One row per cluster: label, size, main task, best model by the effective scores the
    router uses at the cluster's centre (`AvengersRouter.cluster_scores`), that score and
    the model's raw accuracy there."""
    prof = r.profile
    best = r.best_models()
    eff = r.cluster_scores()
    sizes = np.bincount(r.labels, minlength=r.config.k)
    mean = prof.mean
    out = []
    for c in range(r.config.k):
        j = r.models.index(best[c])
        tasks = r.cluster_tasks[c]
        out.append({
            "cluster": c, "label": names[c], "queries": int(sizes[c]),
            "main task": next(iter(tasks), ""),
            "best model": best[c],
            "routing score": None if np.isnan(eff[c, j]) else round(float(eff[c, j]), 3),
            "its accuracy": None if np.isnan(mean[c, j]) else round(float(mean[c, j]), 3),
        })
    return out


@st.cache_data(show_spinner="Embedding the query…", max_entries=256)
def _query_vector(embedder_name: str, device: str, query: str) -> np.ndarray:
    return embedder(embedder_name, device).encode([query])[0]


def query_vector(query: str) -> np.ndarray:
    """The normalised vector of one query with the session's embedder."""
    if not query.strip():
        raise InputError("the query is empty (expected some text)")
    load_embedder(get("embedder"))  # waits for the preload instead of loading twice
    return _query_vector(get("embedder"), get("device"), query)


# -- evaluation --------------------------------------------------------------------------


def eval_key(ds: Dataset) -> tuple:
    return (ds.key, embedder(get("embedder"), get("device")).id, k_of(ds), int(get("seed")))


def evaluation(ds: Dataset) -> dict:
    """Held-out evaluation with the session's K and seed."""
    from avengers_core.routing.evaluate import evaluate

    x = embeddings(ds)
    cfg = RouterConfig(k=k_of(ds), seed=int(get("seed")))
    result = computed("evaluate", eval_key(ds),
                      lambda p: evaluate(ds.table, x, cfg, seed=cfg.seed, progress=p),
                      "Evaluating on a held-out 30 %:")
    st.session_state["last_evaluation"] = (eval_key(ds), result)
    return result


def sweep(ds: Dataset, what: str, ks: list[int] | None = None) -> Any:
    """A cached held-out sweep: `k` (over `ks`), `models` (number of models), `alpha` (cost)."""
    from avengers_core.routing import evaluate as ev

    x = embeddings(ds)
    cfg = RouterConfig(k=k_of(ds), seed=int(get("seed")))

    def run(progress: Callable[[int, int, str], None]) -> Any:
        if what == "k":
            return ev.sweep_k(ds.table, x, list(ks or []), cfg, seed=cfg.seed, progress=progress)
        if what == "models":
            return ev.sweep_models(ds.table, x, config=cfg, seed=cfg.seed)
        return ev.sweep_alpha(ds.table, x, config=cfg, seed=cfg.seed)

    key = (*eval_key(ds), what, tuple(ks or ()))
    return computed("sweep", key, run, f"Held-out sweep over {what}:")


def profile_zip(r: AvengersRouter, names: list[str] | None = None) -> bytes:
    """The fitted profile folder (profile.json + centroids.npz) as a zip; `names`, the
    cluster labels, are saved in it for `avengers route`."""
    from avengers_core.routing.profile import profile_files

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in profile_files(r, names).items():
            z.writestr(f"profile/{name}", data)
    return buf.getvalue()


def fitted_router(ds: Dataset, compute_now: bool = True) -> AvengersRouter | None:
    """The router of this dataset and the session's K: fitted now when its embeddings are
    ready (`compute_now`), else only if it is already fitted; None otherwise."""
    emb = embedder(get("embedder"), get("device"))
    if "value" not in _slot("embeddings", ds.key, emb.id):
        return None
    if not compute_now and "value" not in _slot("fit", ds.key, emb.id, k_of(ds),
                                                 int(get("seed"))):
        return None
    return router(ds)


def heatmap(r: AvengersRouter, names: list[str], order: list[int] | None = None):
    """The K × M heatmap of mean scores, best model first, clusters in `order`."""
    prof = r.profile
    cols = [int(j) for j in np.argsort(-prof.global_mean, kind="stable")]
    return plots.profile_heatmap(prof.mean[:, cols], prof.count[:, cols],
                                 [r.models[j] for j in cols], names, order,
                                 title=f"Mean score per cluster (K = {r.config.k}) and model")


@st.cache_data(show_spinner="Writing the report…", max_entries=4)
def _report(key: tuple, _ds: Dataset, _r: AvengersRouter, _names: list[str], method: str,
            _coords: np.ndarray, _evaluation: dict, _rows: list[dict]) -> bytes:
    from avengers_core.present.explain import effective_heatmap
    from avengers_core.present.report import dataset_report

    map_fig = cluster_figure(_ds, _r, _names, _coords, method, "cluster")
    best_fig = cluster_figure(_ds, _r, _names, _coords, method, "best model")
    routing = (describe_prior(_r.config.prior, _r.config.shrinkage), best_fig,
               effective_heatmap(_r, _names, _r.cluster_order("best model")))
    return dataset_report(_ds.name, len(_ds.table), map_fig, heatmap(_r, _names),
                          _evaluation, _rows, routing=routing).encode("utf-8")


def report_html(ds: Dataset, evaluation_result: dict, sweep_rows: list[dict]) -> bytes:
    """The dataset's self-contained HTML report (map, heatmap, evaluation, K sweep)."""
    r = router(ds)
    names = labels(ds, r)
    coords, method, _ = map_coords(ds)
    key = (*eval_key(ds), method, tuple(row["k"] for row in sweep_rows))
    return _report(key, ds, r, names, method, coords, evaluation_result, sweep_rows)


@st.cache_data(show_spinner="Replaying K-means…", max_entries=8)
def _kmeans_frames(key: str, embedder_id: str, k: int, seed: int, _x: np.ndarray
                   ) -> tuple[np.ndarray, list[np.ndarray]]:
    from avengers_core.present.tour import kmeans_frames

    return kmeans_frames(_x, k, iterations=6, seed=seed, sample=2000)


def kmeans_frames(ds: Dataset, k: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """(rows, per-step assignments) of the first K-means steps on (up to 2,000 of) the
    dataset's queries, for the tour (precomputed once per dataset and K)."""
    x = embeddings(ds)
    emb_id = embedder(get("embedder"), get("device")).id
    return _kmeans_frames(ds.key, emb_id, k, int(get("seed")), x)


@st.cache_data(show_spinner=False, max_entries=16)
def _cut_note(key: str, embedder_name: str, device: str, _queries: list[str]) -> str | None:
    from avengers_core.embed.window import cut_report

    report = cut_report(embedder(embedder_name, device), _queries)
    return None if report is None else report.note()


def cut_note(ds: Dataset) -> str | None:
    """How many of the dataset's queries the session's embedder cuts at its window (issue 22),
    as one line; None when none is cut or the window is not known (a served embedder)."""
    return _cut_note(ds.key, get("embedder"), get("device"), ds.table.queries)
