"""UMAP and the app: first-ever and repeated projections, the Clusters map, page loads.

    AVENGERS_DATA_DIR=../shared/data python -m bench --only app [--quick]

1. UMAP (`avengers_core.present.maps.umap_2d`) in a fresh process whose numba cache is an
   empty `NUMBA_CACHE_DIR` (numba otherwise keeps compiled code in `__pycache__` folders
   in site-packages, so only the very first run after installing would pay it), then
   again in the same process.
2. The Clusters page after `streamlit run app.py` with an empty map cache (PCA preview,
   then the UMAP map from the background worker) and after a restart (UMAP map on disk).
3. The first rendered page after `streamlit run app.py`, and page switches once warm.

The app runs headless on a free loopback port with a temporary `AVENGERS_CACHE_DIR`
holding a copy of the demo embeddings (so the user's cache is never touched) and is
driven by Debian's /usr/bin/chromium through Playwright. Also the background worker for
figure 1: `python -m bench.bench_app --umap-worker X.npy CALLS` prints the times.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import ROOT, fmt, spread
from tests.support.net import free_port, stop, wait_http

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 900_000  # a first-ever UMAP on a loaded 2-core machine can take minutes
SIGMA = 0.01  # per-dimension Gaussian noise added to resampled demo vectors
PAGES = ["Data", "Clusters", "Leaderboard", "Route", "Evaluate"]  # no Ollama needed

# JavaScript: does a plotly map with `n` queries (row index in customdata) and a title
# naming `method` ("UMAP", "PCA preview", or "" for either) show on a WebGL canvas?
MAP_SHOWN = """([n, method]) => Array.from(document.querySelectorAll('.js-plotly-plot')).some(d => {
  const t = d.layout && d.layout.title;
  const title = String((t && (t.text !== undefined ? t.text : t)) || '');
  const pts = (d.data || []).reduce((k, tr) => k + (tr.customdata || []).length, 0);
  return title.includes('(' + method) && pts === n && d.querySelector('.gl-container canvas');
})"""


# -- 1. UMAP in a fresh process -----------------------------------------------------------


def demo_vectors() -> np.ndarray:
    """The demo table's MiniLM vectors (from the embedding cache; embedded there if cold)."""
    from avengers_core.data.load import load_table
    from avengers_core.embed.cache import embed_texts
    from avengers_core.embed.load import get_embedder

    return embed_texts(load_table("llmrouter").queries, get_embedder())


def resample(x: np.ndarray, n: int, sigma: float = SIGMA, seed: int = 0) -> np.ndarray:
    """`n` rows drawn from `x` with replacement, plus N(0, sigma) noise, re-normalised."""
    rng = np.random.default_rng(seed)
    y = x[rng.integers(0, len(x), n)] + rng.normal(0.0, sigma, (n, x.shape[1]))
    return (y / np.linalg.norm(y, axis=1, keepdims=True)).astype(np.float32)


def umap_worker(vectors: Path, calls: int) -> None:
    """Project `vectors` `calls` times with `umap_2d`; print wall and CPU seconds per call
    as JSON (CPU time shows how much of the wall time a busy machine took away).

    The first call imports umap and compiles its numba kernels, as the app's worker does.
    """
    from avengers_core.present.maps import umap_2d

    x = np.load(vectors, allow_pickle=False)
    times: dict[str, list[float]] = {"wall": [], "cpu": []}
    for _ in range(calls):
        t, c = time.perf_counter(), time.process_time()
        coords = umap_2d(x)
        times["wall"].append(time.perf_counter() - t)
        times["cpu"].append(time.process_time() - c)
        if coords.shape != (len(x), 2) or not np.isfinite(coords).all():
            raise RuntimeError(f"{vectors}: bad UMAP output of shape {coords.shape}")
    print(json.dumps(times))


def fresh_umap(x: np.ndarray, calls: int, work: Path) -> dict[str, list[float]]:
    """Wall and CPU seconds of `calls` projections of `x` in one new process with an empty
    numba cache."""
    vectors = work / f"x{len(x)}.npy"
    np.save(vectors, x, allow_pickle=False)
    numba = Path(tempfile.mkdtemp(prefix="numba-", dir=work))
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_app", "--umap-worker", str(vectors), str(calls)],
        cwd=ROOT, env={**os.environ, "NUMBA_CACHE_DIR": str(numba)}, capture_output=True,
        text=True)
    if out.returncode != 0:
        raise RuntimeError(f"UMAP worker failed on {len(x)} points: {out.stderr[-2000:]}")
    shutil.rmtree(numba, ignore_errors=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_umap(x: np.ndarray, processes: int, calls: int, work: Path) -> dict[str, Any]:
    """First-ever (one per fresh process) and repeated (later calls) projection times,
    wall clock and CPU."""
    runs = [fresh_umap(x, calls, work) for _ in range(processes)]
    res: dict[str, Any] = {"n": len(x)}
    for kind in ("wall", "cpu"):
        suffix = "" if kind == "wall" else "_cpu"
        again = [t for r in runs for t in r[kind][1:]]
        res["first" + suffix] = spread([r[kind][0] for r in runs])
        res["repeated" + suffix] = spread(again) if again else None
    return res


# -- 2 and 3. The app in headless Chromium ------------------------------------------------


def make_cache(root: Path) -> Path:
    """A temporary AVENGERS_CACHE_DIR with a copy of the demo embeddings and no maps."""
    from avengers_core.embed.cache import EmbeddingCache
    from avengers_core.embed.load import get_embedder

    src = EmbeddingCache(get_embedder().id).dir
    cache = root / "cache"
    shutil.copytree(src, cache / "embeddings" / src.name)
    return cache


@contextlib.contextmanager
def streamlit_app(cache: Path, numba: Path, logs: Path, umap: bool = True) -> Iterator[dict]:
    """`streamlit run app.py` on a free port; yields {"url", "t0" (perf_counter at launch),
    "wall0" (time.time at launch), "server" (s until /_stcore/health answers)}."""
    port = free_port()
    env = {**os.environ, "AVENGERS_CACHE_DIR": str(cache), "NUMBA_CACHE_DIR": str(numba),
           "AVENGERS_CALIBRATION_DIR": str(cache / "calibration"),
           "OLLAMA_HOST": f"http://127.0.0.1:{free_port()}",  # nothing listens: never a real one
           "AVENGERS_UMAP": "1" if umap else "0"}
    log = logs / f"app-{port}.log"
    wall0, t0 = time.time(), time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true",
             "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/_stcore/health", timeout=120)
        yield {"url": url, "t0": t0, "wall0": wall0, "server": time.perf_counter() - t0}
    except Exception as e:
        tail = log.read_text(errors="replace")[-1500:]
        raise RuntimeError(f"app benchmark failed ({e}); app log {log}:\n{tail}") from e
    finally:
        stop(proc)
        stop_map_workers(cache)


def stop_map_workers(cache: Path) -> None:
    """End background map workers the app left running (own session, outlive streamlit)."""
    for status in (cache / "maps").glob("*.status.json"):
        with contextlib.suppress(OSError, ValueError, TypeError):
            st = json.loads(status.read_text())
            if st.get("state") == "running" and isinstance(st.get("pid"), int):
                os.kill(st["pid"], signal.SIGTERM)


def wait_map(page, n: int, method: str) -> None:
    """Until the page draws a map of `n` queries made by `method` ("" for any)."""
    page.wait_for_function(MAP_SHOWN, arg=[n, method], polling=100, timeout=TIMEOUT_MS)


def wait_page(page, title: str, n: int) -> None:
    """Until page `title` has run to the end and its main content is drawn."""
    page.locator("h1", has_text=title).wait_for(timeout=TIMEOUT_MS)
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(
        state="attached", timeout=TIMEOUT_MS)
    if title == "Data":
        page.locator('[data-testid="stMetricValue"]', has_text=f"{n:,}").wait_for()
    elif title == "Clusters":
        wait_map(page, n, "")
    elif title == "Leaderboard":
        page.locator(".js-plotly-plot .heatmaplayer").first.wait_for(state="attached")
    elif title == "Route":
        page.locator('[data-testid="stAlert"]', has_text="Route to").wait_for()
        wait_map(page, n, "")
    else:
        page.locator(".js-plotly-plot").first.wait_for(state="attached")
    if page.locator('[data-testid="stException"]').count():
        raise RuntimeError(f"page {title} shows an exception")


def switch(page, title: str, n: int) -> float:
    """Seconds from a click on the sidebar link to page `title` until it is drawn."""
    t = time.perf_counter()
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    wait_page(page, title, n)
    return time.perf_counter() - t


def umap_written(cache: Path, wall0: float) -> tuple[float, float]:
    """Seconds from the launch, and from the worker's start (its status file), until the
    background worker wrote the UMAP coordinates."""
    coords = next((cache / "maps").glob("*.umap.npy"))
    status = json.loads(coords.with_name(coords.name[:-4] + ".status.json").read_text())
    written = coords.stat().st_mtime
    return written - wall0, written - status["started"]


def clusters_run(browser, cache: Path, numba: Path, logs: Path, n: int,
                 umap: bool) -> dict[str, Any]:
    """Launch, open /clusters at once; seconds from launch until the map shows (the PCA
    preview on an empty map cache, else UMAP) and until the UMAP map replaces it."""
    fresh = not list((cache / "maps").glob("*.umap.npy"))
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    try:
        with streamlit_app(cache, numba, logs, umap=umap) as app:
            page.goto(f"{app['url']}/clusters")
            wait_map(page, n, "PCA preview" if fresh else "UMAP")
            res = {"server": app["server"], "map": time.perf_counter() - app["t0"]}
            if fresh and umap:
                wait_map(page, n, "UMAP")
                res["umap_map"] = time.perf_counter() - app["t0"]
                res["umap_file"], res["umap_worker"] = umap_written(cache, app["wall0"])
    finally:
        page.close()
    return res


def pages_run(browser, cache: Path, numba: Path, logs: Path, n: int,
              rounds: int) -> dict[str, Any]:
    """Launch, open the app's root: seconds until the first page is drawn; then, if
    `rounds`, each page once (its first visit warms the caches) and `rounds` rounds of
    switches through PAGES."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    try:
        with streamlit_app(cache, numba, logs, umap=False) as app:
            page.goto(app["url"])
            wait_page(page, PAGES[0], n)
            res: dict[str, Any] = {"server": app["server"],
                                   "first_page": time.perf_counter() - app["t0"]}
            if rounds:
                res["first_visit"] = {p: switch(page, p, n) for p in PAGES[1:]}
                res["switches"] = {p: [] for p in PAGES}
                for _ in range(rounds):
                    for p in PAGES:
                        res["switches"][p].append(switch(page, p, n))
    finally:
        page.close()
    return res


def bench_app(n: int, work: Path, fresh_runs: int, restarts: int, rounds: int,
              umap: bool) -> dict[str, Any]:
    """Figures 2 and 3: fresh starts, warm restarts, first page and page switches."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"no Chromium at {CHROMIUM} (set CHROMIUM to its path)")
    logs = work / "logs"
    logs.mkdir()
    fresh, warm, pages = [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            for i in range(fresh_runs):  # each with its own empty map and numba caches
                cache, numba = make_cache(work / f"run{i}"), work / f"run{i}" / "numba"
                numba.mkdir()
                fresh.append(clusters_run(browser, cache, numba, logs, n, umap))
            if umap:  # the last run's UMAP map is on disk now
                warm = [clusters_run(browser, cache, numba, logs, n, umap)
                        for _ in range(restarts)]
            pages = [pages_run(browser, cache, numba, logs, n, rounds if i == 0 else 0)
                     for i in range(restarts)]  # first page each time; switches once
        finally:
            browser.close()
    switches = pages[0]["switches"]
    res: dict[str, Any] = {
        "fresh_pca_map": spread([r["map"] for r in fresh]),
        "server_ready": spread([r["server"] for r in fresh + warm + pages]),
        "first_page": spread([r["first_page"] for r in pages]),
        "page_switch": spread([t for ts in switches.values() for t in ts]),
        "page_switch_by_page": {p: spread(ts) for p, ts in switches.items()},
        "first_visit": pages[0]["first_visit"],
        "raw": {"fresh": fresh, "warm": warm, "pages": pages},
    }
    if umap:
        res["fresh_umap_map"] = spread([r["umap_map"] for r in fresh])
        res["fresh_umap_file"] = spread([r["umap_file"] for r in fresh])
        res["fresh_umap_worker"] = spread([r["umap_worker"] for r in fresh])
        res["warm_umap_map"] = spread([r["map"] for r in warm])
    return res


# -- the bench interface ------------------------------------------------------------------


def run(repeats: int, quick: bool) -> dict:
    """All figures; `quick`: UMAP on 1,000 demo queries only, no UMAP in the app, one
    round of page switches.

    Every new process pays numba's compilation (minutes on a busy 2-core machine), so
    to stay within the budget the 6k first-ever runs `repeats - 1` times, the 50k
    first-ever and the app's fresh start (which waits for another first-ever UMAP) once.
    """
    x = demo_vectors()
    n = len(x)
    res: dict[str, Any] = {"n_demo": n, "sigma": SIGMA, "quick": quick}
    with tempfile.TemporaryDirectory(prefix="avengers-bench-app-") as tmp:
        work = Path(tmp)
        if quick:
            res["umap"] = {"demo subset": bench_umap(x[:1000], 1, 2, work)}
            res["app"] = bench_app(n, work, 1, 1, 1, umap=False)
            return res
        res["umap"] = {
            "demo table": bench_umap(x, max(1, repeats - 1), 3, work),
            "50k resampled": bench_umap(resample(x, 50_000), 1, 2, work),
        }
        res["app"] = bench_app(n, work, 1, repeats, repeats, umap=True)
    return res


def section(results: dict) -> str:
    """The BENCHMARKS.md part: UMAP times and the app's map and page times."""
    u, a, n = results["umap"], results["app"], results["n_demo"]
    lines = ["## UMAP and the app", "",
             "UMAP runs apart from the app (a background process writes the map to disk); "
             "these are the waits a user sees. Every new process compiles UMAP's numba "
             "kernels, so the slow first-ever runs are repeated fewer times than the rest "
             "(n in brackets). Times from a launch start at `streamlit run`.", "",
             "| figure | time | what it measures |", "|---|---:|---|"]
    for label, r in u.items():
        what = (f"the {r['n']:,} demo queries" if "resampled" not in label else
                f"{r['n']:,} demo vectors drawn with replacement, plus Gaussian noise "
                f"(σ = {results['sigma']} per dimension), re-normalised")
        lines.append(f"| UMAP first-ever, {label} | {fmt(r['first'])} | `umap_2d` on {what}, "
                     "in a new process with an empty numba cache (import and compilation "
                     f"included); CPU time {r['first_cpu']['median']:.1f} s |")
        if r["repeated"]:
            lines.append(f"| UMAP repeated, {label} | {fmt(r['repeated'])} | the same, "
                         "called again in that process (kernels compiled); CPU time "
                         f"{r['repeated_cpu']['median']:.1f} s |")
    lines += [
        f"| app server up | {fmt(a['server_ready'])} | `streamlit run app.py` until "
        "`/_stcore/health` answers |",
        f"| first page | {fmt(a['first_page'])} | `streamlit run app.py` until the Data page "
        "is drawn in headless Chromium (embeddings on disk) |",
        f"| Clusters map, fresh start | {fmt(a['fresh_pca_map'])} | launch until /clusters "
        f"shows the PCA preview of {n:,} queries (empty map cache: embeddings read from "
        "disk, router fitted) |",
    ]
    if "fresh_umap_map" in a:
        lines += [
            f"| UMAP map, fresh start | {fmt(a['fresh_umap_map'])} | launch until the UMAP "
            "map replaces the preview (the page polls every 5 s; empty numba cache, as on "
            "the first start after installing) |",
            f"| UMAP file written | {fmt(a['fresh_umap_file'])} | launch until the background "
            "worker wrote the coordinates |",
            f"| UMAP worker | {fmt(a['fresh_umap_worker'])} | the worker's own run, start to "
            "coordinates on disk (a first-ever UMAP of the demo table beside the app) |",
            f"| Clusters map, warm restart | {fmt(a['warm_umap_map'])} | a new `streamlit run` "
            "until /clusters shows the UMAP map cached on disk |",
        ]
    lines.append(f"| page switch | {fmt(a['page_switch'])} | click on a sidebar link until "
                 f"the page is drawn, caches warm ({', '.join(PAGES)}; all switches) |")
    lines += ["", "Page switch by page: " + "; ".join(
        f"{p} {fmt(s)}" for p, s in a["page_switch_by_page"].items()) + ".", "",
        "First visit of each page in a new app process, after the Data page (one run; "
        "Clusters fits the router, Route loads MiniLM, Evaluate runs the held-out "
        "evaluation): " + "; ".join(f"{p} {t:.1f} s" for p, t in a["first_visit"].items())
        + "."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--umap-worker", nargs=2, metavar=("VECTORS", "CALLS"), required=True)
    a = ap.parse_args(argv)
    umap_worker(Path(a.umap_worker[0]), int(a.umap_worker[1]))


if __name__ == "__main__":
    main()
