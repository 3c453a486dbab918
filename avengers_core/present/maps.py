"""2-D maps of query embeddings: a PCA preview at once, UMAP once per dataset and embedder.

UMAP is slow to start (numba compiles its kernels in every new process: 60-90 s before the
first projection), so it never runs on a page's critical path: `start_umap` launches
`python -m avengers_core.present.maps` in a subprocess that writes the coordinates to the cache
directory, keyed by embedder id and a hash of the texts. A restart finds them on disk.

New points (a routed query) are placed by `place`: the similarity-weighted mean of the
map positions of their nearest known queries. It works the same for PCA and UMAP maps and
needs no fitted model on disk (nothing is pickled).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avengers_core.fileio import atomic_write_bytes

Progress = Callable[[int, int, str], None]

METHODS = ("pca", "umap")
RETRY_AFTER = 600.0  # seconds before a failed background map is tried again
MAX_RUNTIME = 3600.0  # a "running" map older than this is a stale record (e.g. a reused pid)


def cache_root() -> Path:
    """Folder for cached maps: `maps/` under the embedding cache root (`AVENGERS_CACHE_DIR`)."""
    from avengers_core.config import cache_dir

    return cache_dir() / "maps"


def texts_key(texts: Sequence[str], embedder_id: str) -> str:
    """Stable key of a (texts, embedder) pair: a map is valid only for exactly these."""
    h = hashlib.sha256(embedder_id.encode("utf-8"))
    for t in texts:
        h.update(b"\x00")
        h.update(t.encode("utf-8"))
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in embedder_id)[-40:]
    return f"{safe}-{h.hexdigest()[:20]}"


def pca_2d(X: np.ndarray) -> np.ndarray:
    """First two principal components of `X` (N, d) as float32 (N, 2); fast, deterministic."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or len(X) == 0:
        raise ValueError(f"expected a non-empty (N, d) array, got shape {X.shape}")
    Xc = X - X.mean(axis=0)
    _, _, vt = np.linalg.svd(Xc, full_matrices=False)
    comps = vt[:2]
    if comps.shape[0] < 2:  # d == 1
        comps = np.vstack([comps, np.zeros_like(comps)])
    coords = Xc @ comps.T
    # fix the sign so the same data always gives the same picture
    signs = np.sign(coords[np.argmax(np.abs(coords), axis=0), [0, 1]])
    signs[signs == 0] = 1
    return (coords * signs).astype(np.float32)


def umap_2d(X: np.ndarray, seed: int = 0, progress: Progress | None = None) -> np.ndarray:
    """UMAP (cosine, 15 neighbours) of `X` to float32 (N, 2). Slow the first time per process."""
    if progress:
        progress(0, 3, "loading UMAP (numba compiles on first use)")
    import umap  # heavy: numba

    X = np.asarray(X, dtype=np.float32)
    n_neighbors = max(2, min(15, len(X) - 1))
    reducer = umap.UMAP(
        n_components=2, n_neighbors=n_neighbors, min_dist=0.1, metric="cosine", random_state=seed
    )
    if progress:
        progress(1, 3, f"fitting UMAP on {len(X)} points")
    coords = reducer.fit_transform(X)
    if progress:
        progress(3, 3, "done")
    return np.asarray(coords, dtype=np.float32)


def nearest(vec: np.ndarray, X: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosine similarities of the k rows of `X` most similar to `vec`, best first."""
    sims = np.asarray(X, dtype=np.float32) @ np.asarray(vec, dtype=np.float32).ravel()
    k = max(1, min(k, len(sims)))
    idx = np.argpartition(-sims, k - 1)[:k]
    idx = idx[np.argsort(-sims[idx], kind="stable")]
    return idx, sims[idx]


def place(vec: np.ndarray, X: np.ndarray, coords: np.ndarray, k: int = 10) -> np.ndarray:
    """Map position (2,) of a new normalised vector: weighted mean of its k nearest queries."""
    idx, sims = nearest(vec, X, k)
    w = np.exp(10.0 * (sims - sims.max()))
    return (w[:, None] * coords[idx]).sum(axis=0) / w.sum()


@dataclass(frozen=True)
class MapJob:
    """Where a background projection keeps its vectors, result and status.

    `n` is the number of points the map must have, when known (a map of other texts or a
    damaged file is dropped and recomputed).
    """

    key: str
    method: str
    folder: Path
    n: int | None = None

    @property
    def coords_path(self) -> Path:
        return self.folder / f"{self.key}.{self.method}.npy"

    @property
    def status_path(self) -> Path:
        return self.folder / f"{self.key}.{self.method}.status.json"

    @property
    def vectors_path(self) -> Path:
        return self.folder / f"{self.key}.{self.method}.input.npy"

    def coords(self) -> np.ndarray | None:
        """The finished (N, 2) coordinates, or None while not (yet) computed.

        A damaged file (truncated, garbage, pickled objects, wrong shape, not finite) is
        deleted with a warning, so the next `start_map` computes the map again; one that
        cannot be opened (an OSError) is kept.
        """
        try:
            coords = np.load(self.coords_path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except OSError as e:  # the file may be fine (permissions, too many open files): kept
            warnings.warn(f"{self.coords_path}: cannot read this map cache file ({e})",
                          RuntimeWarning, stacklevel=2)
            return None
        except (EOFError, ValueError) as e:
            return self._drop(f"{type(e).__name__}: {e}")
        n = self.n if self.n is not None else len(coords)
        if coords.ndim != 2 or coords.shape != (n, 2) or coords.dtype.kind != "f":
            return self._drop(f"expected ({n}, 2) floats, got {coords.dtype} {coords.shape}")
        if not np.isfinite(coords).all():
            return self._drop("not all finite")
        return coords

    def _drop(self, reason: str) -> None:
        self.coords_path.unlink(missing_ok=True)
        warnings.warn(f"{self.coords_path}: unusable map cache file ({reason}); removed, "
                      "the map will be computed again", RuntimeWarning, stacklevel=3)

    def status(self) -> dict:
        """Last reported `{"state", "done", "total", "message", "pid", "started"}`."""
        if self.coords() is not None:
            return {"state": "done", "done": 1, "total": 1, "message": "done"}
        st = self._read_status()
        if not st:
            return {"state": "missing", "done": 0, "total": 1, "message": "not started"}
        if st.get("state") == "done":  # the map file was removed since: compute it again
            return {"state": "missing", "done": 0, "total": 1, "message": "map file removed"}
        if st.get("state") == "running" and not _alive(st.get("pid")):
            st = {**st, "state": "failed", "message": st.get("message", "") + " (process ended)"}
        elif st.get("state") == "running" and time.time() - st.get("started", 0) > MAX_RUNTIME:
            st = {**st, "state": "failed", "message": st.get("message", "") + " (too long)"}
        return st

    def _read_status(self) -> dict:
        """The status file's content; {} when missing or damaged (then it is rewritten)."""
        try:
            st = json.loads(self.status_path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError, OSError):
            return {}
        ok = (isinstance(st, dict) and isinstance(st.get("started", 0), int | float)
              and isinstance(st.get("message", ""), str))
        return st if ok else {}

    def write_status(self, state: str, done: int, total: int, message: str) -> None:
        """Record progress for the page polling this job (atomically)."""
        started = self._read_status().get("started", time.time())
        st = {"state": state, "done": done, "total": total, "message": message,
              "pid": os.getpid(), "started": started}
        atomic_write_bytes(self.status_path, json.dumps(st).encode("utf-8"))


def map_job(texts: Sequence[str], embedder_id: str, method: str = "umap",
            folder: Path | None = None) -> MapJob:
    """The job (finished or not) for these texts, embedder and method."""
    if method not in METHODS:
        raise ValueError(f"unknown projection {method!r}; expected one of {METHODS}")
    return MapJob(texts_key(texts, embedder_id), method, Path(folder or cache_root()), len(texts))


def start_map(X: np.ndarray, texts: Sequence[str], embedder_id: str, method: str = "umap",
              folder: Path | None = None, seed: int = 0) -> MapJob:
    """Compute the map in a background subprocess unless it is on disk or already running.

    Returns at once; poll `job.coords()` / `job.status()`. A failed run is retried only
    after `RETRY_AFTER` seconds, so a page that reruns often does not respawn it each time.
    """
    job = map_job(texts, embedder_id, method, folder)
    state = job.status()["state"]  # drops a damaged map file, which is then recomputed
    if state in ("done", "running"):
        return job
    if state == "failed" and time.time() - job.status_path.stat().st_mtime < RETRY_AFTER:
        return job
    job.folder.mkdir(parents=True, exist_ok=True)
    buf = _npy_bytes(np.asarray(X, dtype=np.float32))
    atomic_write_bytes(job.vectors_path, buf)
    job.status_path.unlink(missing_ok=True)
    log = open(job.folder / f"{job.key}.{method}.log", "wb")  # noqa: SIM115 - child owns it
    proc = subprocess.Popen(
        [sys.executable, "-m", "avengers_core.present.maps", str(job.vectors_path),
         str(job.coords_path), "--method", method, "--seed", str(seed)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        cwd=str(Path(__file__).resolve().parent.parent), start_new_session=True,
    )
    log.close()
    threading.Thread(target=proc.wait, name="avengers-map-reaper", daemon=True).start()
    st = {"state": "running", "done": 0, "total": 3, "message": "starting",
          "pid": proc.pid, "started": time.time()}
    atomic_write_bytes(job.status_path, json.dumps(st).encode("utf-8"))
    return job


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        return state != "Z"
    except OSError:
        return True


def _npy_bytes(a: np.ndarray) -> bytes:
    import io

    bio = io.BytesIO()
    np.save(bio, a, allow_pickle=False)
    return bio.getvalue()


def _run(vectors: Path, out: Path, method: str, seed: int) -> None:
    job = MapJob(out.name.split(".")[0], method, out.parent)
    try:
        X = np.load(vectors, allow_pickle=False)
        if method == "umap":
            coords = umap_2d(X, seed=seed, progress=lambda d, t, m: job.write_status(
                "running", d, t, m))
        else:
            coords = pca_2d(X)
        # the map file is what readers take as "done": everything else happens before it
        # (issue 22: a test saw the input still there once the map had appeared)
        vectors.unlink(missing_ok=True)
        atomic_write_bytes(out, _npy_bytes(coords))
        job.write_status("done", 1, 1, "done")
    except Exception as e:  # reported to the page through the status file
        job.write_status("failed", 0, 1, f"{type(e).__name__}: {e}")
        raise


def main(argv: list[str] | None = None) -> None:
    """Background worker: `python -m avengers_core.present.maps IN.npy OUT.npy --method umap`."""
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("vectors", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--method", choices=METHODS, default="umap")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    _run(a.vectors, a.out, a.method, a.seed)


if __name__ == "__main__":
    main()
