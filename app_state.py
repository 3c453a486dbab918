"""Shared state and cached core calls for the Streamlit pages.

Pages hold layout and widgets; everything they compute comes from `avengers_core` through
the cached helpers here, keyed by dataset, embedder and settings. Uploaded tables live in
the browser session (`st.session_state`), so two tabs never see each other's uploads.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import tempfile
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from avengers_core import datasets, plots, project
from avengers_core.embed import DEFAULT_EMBEDDER, embed_texts, get_embedder
from avengers_core.errors import InputError
from avengers_core.labels import cluster_labels
from avengers_core.route import AvengersRouter, RouterConfig
from avengers_core.table import RoutingTable, read_table

DEMO = "llmrouter"
PER_DATASET = ("k",)  # settings whose range depends on the table: one value per dataset
DEFAULTS: dict[str, Any] = {
    "embedder": DEFAULT_EMBEDDER,
    "k": 64,
    "seed": 0,
    "top_k": 3,
    "beta": 6.0,
    "top_n": 1,
    "alpha": 1.0,
    "map_color": "cluster",
}


@dataclass(frozen=True)
class Dataset:
    """The table a session works on; `key` identifies it in every cache."""

    key: str
    name: str
    table: RoutingTable


# -- settings that survive page switches ------------------------------------------------


def setting_key(name: str) -> str:
    """Where setting `name` lives in session state: K is kept per dataset, so a small
    upload lowering it never changes the K of the demo table."""
    if name in PER_DATASET:
        return f"{name}@{st.session_state.get('dataset', DEMO)}"
    return name


def default_k(n: int) -> int:
    """The starting K for a table of `n` queries: 64, or n / 4 when 64 does not fit."""
    return DEFAULTS["k"] if n >= DEFAULTS["k"] else max(1, n // 4)


def get(name: str) -> Any:
    """A setting of this session (embedder, k, seed, top_k, beta, top_n, alpha)."""
    key = setting_key(name)
    if key not in st.session_state and name == "k":
        ds = current_dataset()
        st.session_state[key] = default_k(len(ds.table)) if ds else DEFAULTS["k"]
    return st.session_state.setdefault(key, DEFAULTS.get(name))


def bind(name: str, value: Any = None) -> dict[str, Any]:
    """Widget kwargs keeping `name` in session state even while its page is not shown.

    Streamlit drops a widget's state when the widget is not rendered, so the widget gets
    its own key and copies its value to the setting on change. `value` (default: the
    setting) is what the widget shows, e.g. the setting clamped to this table's range.
    """
    key = setting_key(name)
    wkey = f"_w_{key}"
    st.session_state[wkey] = get(name) if value is None else value

    def copy() -> None:
        st.session_state[key] = st.session_state[wkey]

    return {"key": wkey, "on_change": copy}


def int_slider(label: str, lo: int, hi: int, name: str | None = None, value: int = 1,
               where: Any = None, **kw: Any) -> int:
    """An integer slider bound to setting `name` (or starting at `value`), kept in range.

    With a single possible value (a one-model table, K = 1) it is shown as a caption:
    Streamlit refuses a slider whose bounds are equal. Clamping only changes what is
    shown: the setting keeps the user's choice until they move the slider.
    """
    where = where or st
    if hi <= lo:
        where.caption(f"{label}: {lo}")
        return lo
    if name:
        return where.slider(label, lo, hi, **bind(name, min(max(int(get(name)), lo), hi)),
                            **kw)
    return where.slider(label, lo, hi, value=min(max(value, lo), hi), **kw)


# -- datasets ----------------------------------------------------------------------------


@st.cache_resource(show_spinner="Loading the demo table…")
def _demo_table(name: str) -> RoutingTable:
    return datasets.load_demo_table(name)


def demo_available() -> bool:
    """True when the demo table's files are in the data directory (no download needed)."""
    return datasets.available(DEMO)


def _tables() -> dict[str, Dataset]:
    return st.session_state.setdefault("tables", {})


def add_table(name: str, table: RoutingTable, origin: str) -> Dataset:
    """Make `table` the session's current dataset (an upload or a calibration result)."""
    digest = hashlib.sha256(table.to_csv().encode("utf-8")).hexdigest()[:16]
    ds = Dataset(f"{origin}:{digest}", name, table)
    _tables()[ds.key] = ds
    st.session_state["dataset"] = ds.key
    return ds


def upload_suffix(name: str) -> str:
    """The extension of an uploaded file's name, lower case, or "" when it is not a plain
    one: the only part of a browser's file name that may reach the file system."""
    suffix = Path(name.strip()).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,10}", suffix) else ""


def read_upload(name: str, data: bytes) -> RoutingTable:
    """Parse an uploaded table; InputError messages name the file as the user knows it.

    The bytes are parsed from a temporary file named only after the upload's extension,
    so a strange name (empty, very long, odd characters) never reaches the file system.
    """
    shown = name.strip() or "upload"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"upload{upload_suffix(shown)}"
        path.write_bytes(data)
        try:
            table = read_table(path)
        except InputError as e:
            raise InputError(str(e).replace(str(path), shown)) from None
    table.source = shown
    return table


def dataset_choices() -> dict[str, str]:
    """key -> display name of every dataset this session can switch to."""
    out = {DEMO: f"{DEMO} (demo)"} if demo_available() else {}
    out.update({k: ds.name for k, ds in _tables().items()})
    return out


def current_dataset() -> Dataset | None:
    """The session's dataset: the last chosen, else the demo table when it is available."""
    key = st.session_state.get("dataset")
    if key in _tables():
        return _tables()[key]
    if demo_available():
        st.session_state["dataset"] = DEMO
        return Dataset(DEMO, f"{DEMO} (demo)", _demo_table(DEMO))
    return None


def require_dataset() -> Dataset:
    """The current dataset, or explain how to get one and stop the page."""
    ds = current_dataset()
    if ds is None:
        st.info(
            "No routing table yet. Fetch the demo data with `avengers data` (or point "
            "`AVENGERS_DATA_DIR` at a folder holding `llmrouter/`), then reload; or upload "
            "your own table on the **Data** page."
        )
        st.stop()
    return ds


def k_of(ds: Dataset) -> int:
    """The session's K for this dataset, within what K-means can fit (1 <= K <= N)."""
    return min(max(1, int(get("k"))), len(ds.table))


def few_per_cluster(ds: Dataset, k: int) -> bool:
    """True when K leaves under ten queries per cluster on average (noisy profiles)."""
    return k > 1 and len(ds.table) / k < 10


# -- long computations with live progress -----------------------------------------------


@st.cache_resource(show_spinner=False, max_entries=64)
def _slot(kind: str, *key: object) -> dict[str, Any]:
    """A process-wide box per computation and key; filled once, shared by all sessions."""
    return {"lock": threading.Lock()}


def computed(kind: str, key: tuple, compute: Callable[[Callable[[int, int, str], None]], Any],
             label: str) -> Any:
    """`compute(progress)` once per (kind, key) in a worker thread, with a live progress bar.

    The work runs apart from the script because a click elsewhere (another page, a widget)
    interrupts the script: a first embedding of 6k queries must not restart from zero each
    time. The next visit finds the work still running and shows its progress again. (It
    cannot be a `st.cache_*` function either: those replay the elements drawn inside.)
    """
    slot = _slot(kind, *key)
    with slot["lock"]:
        if "value" in slot:
            return slot["value"]
        if "thread" not in slot:
            slot["progress"] = (0, 1, "starting")

            def work() -> None:
                try:
                    slot["value"] = compute(lambda d, t, m: slot.__setitem__("progress",
                                                                            (d, t, m)))
                except BaseException as e:  # noqa: BLE001 - handed to the waiting script
                    slot["error"] = e

            slot["thread"] = threading.Thread(target=work, name=f"avengers-{kind}", daemon=True)
            slot["thread"].start()
    thread = slot["thread"]
    thread.join(0.05)
    if thread.is_alive():
        bar = st.progress(0.0, text=label)
        try:
            while thread.is_alive():
                done, total, message = slot["progress"]
                count = f" ({done:,} / {total:,})" if total > 1 else ""
                bar.progress(min(1.0, done / total) if total else 0.0,
                             text=f"{label} {message}{count}")
                thread.join(0.25)
        finally:
            bar.empty()
    with slot["lock"]:
        if "value" in slot:
            return slot["value"]
        error = slot.pop("error", None)  # the next call starts over
        slot.pop("thread", None)
    if error is None:  # another session took the error: try once more ourselves
        return computed(kind, key, compute, label)
    raise error


@st.cache_resource(show_spinner="Loading the embedder…")
def embedder(name: str):
    """The embedder by name (kept loaded: the first MiniLM load takes ~10 s)."""
    return get_embedder(name)


@st.cache_resource(show_spinner=False)
def _load_lock(embedder_id: str) -> threading.Lock:
    return threading.Lock()


def load_embedder(name: str) -> int:
    """Load the embedder's model now (once), so a bad name or an unreachable host fails
    here; its dimension. Waits for a background preload of the same embedder."""
    emb = embedder(name)
    return _load(emb, _load_lock(emb.id))


def preload_embedder() -> None:
    """Load the session's local embedder in the background, once per process, so the first
    routed query does not wait ~10 s for MiniLM. It starts once the current dataset has a
    fitted router, so it never competes with a first embedding or fit; errors show up
    when a page uses the embedder."""
    name, ds = get("embedder"), current_dataset()
    if name.startswith("ollama:") or ds is None:
        return
    emb = embedder(name)
    if "value" not in _slot("fit", ds.key, emb.id, k_of(ds), int(get("seed"))):
        return
    slot = _slot("preload", emb.id)
    with slot["lock"]:
        if "thread" in slot:
            return
        slot["thread"] = threading.Thread(target=_quiet_load, args=(emb, _load_lock(emb.id)),
                                          daemon=True, name="avengers-preload")
        slot["thread"].start()


def _load(emb: Any, lock: threading.Lock) -> int:
    with lock:
        return emb.dim


def _quiet_load(emb: Any, lock: threading.Lock) -> None:
    with contextlib.suppress(Exception):
        _load(emb, lock)


def embeddings(ds: Dataset) -> np.ndarray:
    """The dataset's query vectors (disk-cached by the core; embedded once with progress)."""
    emb = embedder(get("embedder"))
    try:
        return computed(
            "embeddings", (ds.key, emb.id),
            lambda progress: embed_texts(ds.table.queries, emb, progress=progress),
            f"Embedding {len(ds.table)} queries with {emb.id} (once; then cached on disk):",
        )
    except InputError as e:
        st.error(f"Embedding failed: {md_escape(str(e))}\n\n"
                 "Choose another embedder on the **Data** page.")
        st.stop()


def router(ds: Dataset) -> AvengersRouter:
    """The router fitted on the whole dataset with the session's K (routing knobs apart)."""
    x = embeddings(ds)
    emb = embedder(get("embedder"))
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
    return project.pca_2d(_x)


def map_coords(ds: Dataset) -> tuple[np.ndarray, str, dict]:
    """2-D map: UMAP from disk when ready, else the PCA preview while UMAP runs apart.

    `AVENGERS_UMAP=0` never starts UMAP (it still uses a map already on disk).
    """
    x = embeddings(ds)
    emb = embedder(get("embedder"))
    if os.environ.get("AVENGERS_UMAP", "1") == "0":  # tests: never start UMAP
        job = project.map_job(ds.table.queries, emb.id, "umap")
    else:
        job = project.start_map(x, ds.table.queries, emb.id, method="umap")
    coords = job.coords()
    if coords is not None and len(coords) == len(x):
        return coords, "UMAP", job.status()
    return _pca(ds.key, emb.id, x), "PCA preview", job.status()


@st.cache_resource(show_spinner=False, max_entries=16)
def _cluster_figure(key: str, embedder_id: str, k: int, seed: int, color: str, method: str,
                    _ds: Dataset, _r: AvengersRouter, _names: list[str], _coords: np.ndarray):
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
                           ds, r, names, coords)


@st.cache_data(show_spinner=False, max_entries=8)
def _hovers(key: str, _t: RoutingTable) -> list[str]:
    """Per query, its shortened, escaped hover text (the same for every K)."""
    return [plots.hover_text(q) for q in _t.queries]


def query_rows(ds: Dataset, r: AvengersRouter, rows: list[int]):
    """Table of the given queries: text, task, cluster and every model's score."""
    import pandas as pd

    df = ds.table.to_frame().iloc[rows]
    df = df.drop(columns=[c for c in df.columns if c.startswith("cost:")])
    if r.labels is not None:
        df.insert(1, "cluster", [int(r.labels[i]) for i in rows])
    return pd.DataFrame(df)


def cluster_summary(ds: Dataset, r: AvengersRouter, names: list[str]) -> list[dict]:
    """One row per cluster: label, size, main task, best model and its raw accuracy there."""
    prof = r.profile
    best = r.best_models()
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
            "its accuracy": None if np.isnan(mean[c, j]) else round(float(mean[c, j]), 3),
        })
    return out


def route_reason(res: Any, names: list[str]) -> str:
    """The plain-language reason for a route (Markdown, data escaped)."""
    return (f"**Route to {md_escape(', '.join(res.models))}.** "
            f"{res.reason(names[res.cluster], md_escape)}.")


@st.cache_data(show_spinner="Embedding the query…", max_entries=256)
def _query_vector(embedder_name: str, query: str) -> np.ndarray:
    return embedder(embedder_name).encode([query])[0]


def query_vector(query: str) -> np.ndarray:
    """The normalised vector of one query with the session's embedder."""
    if not query.strip():
        raise InputError("the query is empty (expected some text)")
    load_embedder(get("embedder"))  # waits for the preload instead of loading twice
    return _query_vector(get("embedder"), query)


URL = re.compile(r"https?://[^\s<>`]+")
MD_SPECIAL = set("\\`*_[]<>#|$~:")  # links, emphasis, code, HTML, LaTeX, :color[] directives


def md_escape(text: object) -> str:
    """Text from data made inert in inline Markdown (no links, emphasis, HTML, LaTeX or
    colour directives); URLs in it become code spans so they read as written."""
    text = " ".join(str(text).split())  # one line: no headings or lists from data
    out, pos = [], 0
    for m in URL.finditer(text):
        out += [_escape_chars(text[pos:m.start()]), code(m.group())]
        pos = m.end()
    return "".join(out) + _escape_chars(text[pos:])


def _escape_chars(text: str) -> str:
    return "".join("\\" + ch if ch in MD_SPECIAL else ch for ch in text)


def code(text: object) -> str:
    """`text` as a Markdown code span, whatever backticks it holds."""
    text = str(text)
    fence = "`" * (max((len(r) for r in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def slug(text: str) -> str:
    """`text` as a safe file-name part: letters, digits, dots and dashes."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-.") or "x"


# -- Ollama ------------------------------------------------------------------------------

#: Ollama library tags for the demo table's models (for `ollama pull` hints).
PULL_TAGS = {
    "qwen2.5-7b-instruct": "qwen2.5:7b-instruct",
    "llama-3.1-8b-instruct": "llama3.1:8b",
    "gemma-2-9b-it": "gemma2:9b",
    "mistral-7b-instruct-v0.3": "mistral:7b-instruct-v0.3",
    "codegemma-7b": "codegemma:7b",
    "llama3-chatqa-1.5-8b": "llama3-chatqa:8b",
    "llama3-chatqa-1.5-70b": "llama3-chatqa:70b",
}


def ollama_host() -> str:
    """The session's Ollama host (default: `OLLAMA_HOST`, else 127.0.0.1:11434)."""
    from avengers_core.backends.ollama import resolve_host

    st.session_state.setdefault("ollama_host", resolve_host())
    return st.session_state["ollama_host"]


def calibration_path(source: str, host: str) -> Path:
    """Default calibration table for a question set on a host: grades are never shared
    between hosts. Folder: `AVENGERS_CALIBRATION_DIR`, else `calibration/` in the cache."""
    from avengers_core.embed import cache_dir

    folder = os.environ.get("AVENGERS_CALIBRATION_DIR") or cache_dir() / "calibration"
    return Path(folder) / f"{slug(source)}-{slug(host.split('://')[-1])}.jsonl"


@st.cache_data(ttl=10, show_spinner="Asking Ollama for its models…")
def local_models(host: str) -> list[str]:
    """Models available on `host`; raises OllamaUnavailable (not cached) when unreachable."""
    from avengers_core.backends.ollama import OllamaBackend

    return OllamaBackend(host).list_models()


def ollama_missing(host: str, wanted: list[str], running: bool = False) -> None:
    """Say exactly what to start (or pull) when Ollama cannot be used at `host`."""
    pulls = [PULL_TAGS[m] for m in wanted if m in PULL_TAGS] or ["qwen2.5:7b-instruct"]
    if running:
        st.warning(f"Ollama at {code(host)} answers but has no model yet.")
        st.markdown("Pull a model, then press **Check again**:")
    else:
        st.warning(f"Ollama is not reachable at {code(host)}.")
        st.markdown("Start it with `ollama serve` and pull the models the router picks, "
                    "then press **Check again**:")
    lines = [] if running else ["ollama serve"]
    st.code("\n".join(lines + [f"ollama pull {tag}" for tag in pulls[:3]]), language="bash")
    st.caption("Ollama on another machine or port? Change the host above.")


def check_again(where: Any = None) -> None:
    """A *Check again* button: forget the cached model list so Ollama is asked anew."""
    if (where or st).button("Check again"):
        local_models.clear()


# -- evaluation --------------------------------------------------------------------------


def eval_key(ds: Dataset) -> tuple:
    return (ds.key, embedder(get("embedder")).id, k_of(ds), int(get("seed")))


def evaluation(ds: Dataset) -> dict:
    """Held-out evaluation with the session's K and seed."""
    from avengers_core.evaluate import evaluate

    x = embeddings(ds)
    cfg = RouterConfig(k=k_of(ds), seed=int(get("seed")))
    result = computed("evaluate", eval_key(ds),
                      lambda p: evaluate(ds.table, x, cfg, seed=cfg.seed, progress=p),
                      "Evaluating on a held-out 30 %:")
    st.session_state["last_evaluation"] = (eval_key(ds), result)
    return result


def sweep(ds: Dataset, what: str, ks: list[int] | None = None) -> Any:
    """A cached held-out sweep: `k` (over `ks`), `models` (number of models), `alpha` (cost)."""
    from avengers_core import evaluate as ev

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


# -- downloads and the sidebar -----------------------------------------------------------


def profile_zip(r: AvengersRouter) -> bytes:
    """The fitted profile folder (profile.json + centroids.npz) as a zip."""
    from avengers_core.profile import profile_files

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in profile_files(r).items():
            z.writestr(f"profile/{name}", data)
    return buf.getvalue()


def sidebar(sb: Any, compute: bool = True) -> None:
    """Current dataset, embedder, K and profile, with downloads (into `sb`, the sidebar).

    Drawn before the page (`compute=False`: nothing is fitted for it, so it is there even
    when the page stops early) and again after it, with what the page computed.
    """
    ds = current_dataset()
    tag = "after" if compute else "before"  # two drawings of one run need distinct keys
    if ds is None:
        sb.caption("No dataset loaded.")
        return
    t = ds.table
    sb.markdown(f"**Dataset** {md_escape(ds.name)}  \n{len(t)} queries · {len(t.models)} models")
    sb.markdown(f"**Embedder** {md_escape(get('embedder'))}  \n"
                f"**K** {k_of(ds)} · seed {get('seed')}")
    r = fitted_router(ds) if compute else None
    if r is not None:
        sb.markdown(f"**Profile** K = {r.config.k}, shrinkage τ = {r.config.shrinkage:g}")
        sb.download_button("Profile (zip)", lambda: profile_zip(r), "avengers-profile.zip",
                           "application/zip", on_click="ignore", width="stretch",
                           key=f"dl-profile-{tag}")
    else:
        sb.caption("Profile: not fitted yet (open Clusters or Leaderboard).")
    sb.download_button("Routing table (CSV)", t.to_csv, f"{slug(Path(ds.name).stem)}-table.csv",
                       "text/csv", on_click="ignore", width="stretch", key=f"dl-table-{tag}")
    key, result = st.session_state.get("last_evaluation", (None, None))
    if result is not None and key == eval_key(ds):
        sb.download_button("Evaluation (JSON)", json.dumps(result, indent=1, default=str),
                           "evaluation.json", "application/json", on_click="ignore",
                           width="stretch", key=f"dl-eval-{tag}")


def fitted_router(ds: Dataset) -> AvengersRouter | None:
    """The router of this dataset and K when its embeddings are ready, else None."""
    fit = _slot("embeddings", ds.key, embedder(get("embedder")).id)
    return router(ds) if "value" in fit else None

