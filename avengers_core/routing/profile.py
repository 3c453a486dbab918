"""Saved routers: a folder with `profile.json` (readable stats) and `centroids.npz`.

Both files are written atomically; `profile.json` records the SHA-256 of `centroids.npz`, so
a centroids file that was altered, or comes from another fit, is refused. `load_profile`
also reads the same two files from a .zip (the app's download), in memory: nothing is ever
extracted, and members with absolute or `..` paths, symlinks, unexpected names or oversized
contents are refused. Nothing is ever unpickled (`allow_pickle=False`).
"""

from __future__ import annotations

import hashlib
import io
import json
import stat
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import asdict, fields, replace
from pathlib import Path

import numpy as np

from avengers_core import jsonsafe
from avengers_core.data.readers import is_pickle
from avengers_core.embed.base import Embedder
from avengers_core.errors import InputError
from avengers_core.fileio import atomic_write_bytes
from avengers_core.npz_limits import check_npz
from avengers_core.routing.routers.avengers import AvengersRouter
from avengers_core.routing.routers.base import RouterConfig
from avengers_core.routing.score import CapabilityProfile, TaskPrior

FORMAT = "avengers-profile"
VERSION = 2  # 2: profile.json records centroids_sha256
MEMBERS = ("profile.json", "centroids.npz")
MAX_MEMBER_BYTES = 64 * 2**20  # a zip member larger than this is refused unread
MAX_ZIP_MEMBERS = 16


def _nan_to_none(a: np.ndarray) -> list:
    return [None if np.isnan(v) else round(float(v), 6) for v in a]


def profile_files(router: AvengersRouter,
                  labels: Sequence[str] | None = None) -> dict[str, bytes]:
    """The two files of a saved router, in memory: profile.json (readable stats and the
    SHA-256 of centroids.npz) and centroids.npz. The app zips them for download.

    `labels` (one per cluster, e.g. `labels.cluster_labels`) are kept in profile.json so
    `avengers route` can name the cluster as the app does; they are optional.
    """
    prof = router.profile
    mean = prof.mean
    clusters = []
    for c in range(prof.k):
        clusters.append({
            "id": c,
            "size": int(prof.size[c]) if prof.size is not None else None,
            "tasks": router.cluster_tasks[c],
            "sums": [round(float(v), 6) for v in prof.sums[c]],
            "count": [int(v) for v in prof.count[c]],
            "mean": _nan_to_none(mean[c]),
            "cost": None if prof.cost is None else _nan_to_none(prof.cost[c]),
            **({"label": str(labels[c])} if labels is not None else {}),
        })
    buf = io.BytesIO()
    arrays = {"centroids": router.centroids.astype(np.float32)}
    tp = router.task_prior if router.config.prior == "task" else None
    if tp is not None:  # the task classifier (issue 15), checksummed with the centroids
        arrays.update(task_coef=tp.coef.astype(np.float32),
                      task_intercept=tp.intercept.astype(np.float32))
    np.savez(buf, **arrays)
    npz = buf.getvalue()
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "models": prof.models,
        "k": prof.k,
        "k_asked": int(getattr(router, "k_asked", prof.k)),  # more than k: clusters dropped
        "embedder": {"id": router.embedder_id, "dim": int(router.centroids.shape[1])},
        "parameters": asdict(router.config),
        "global_mean": [float(v) for v in prof.global_mean],
        "centroids_sha256": hashlib.sha256(npz).hexdigest(),
        "clusters": clusters,
    }
    if tp is not None:
        doc["task_prior"] = {"tasks": tp.tasks, "sums": tp.sums.round(6).tolist(),
                             "count": tp.count.astype(int).tolist()}
    text = jsonsafe.dumps(doc, indent=1)  # never NaN or Infinity (issue 22)
    return {"profile.json": text.encode("utf-8"), "centroids.npz": npz}


def save_profile(router: AvengersRouter, out: str | Path,
                 labels: Sequence[str] | None = None) -> Path:
    """Write the fitted router to the folder `out` (created if needed), crash-safe.

    centroids.npz is written first and profile.json, which holds its checksum, last: an
    interrupted save leaves a profile that loads as before or one refused as mismatched.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: a file (expected a folder to write the profile into)")
    out.mkdir(parents=True, exist_ok=True)
    files = profile_files(router, labels)
    for name in ("centroids.npz", "profile.json"):  # the checksum holder last
        atomic_write_bytes(out / name, files[name])
    return out


def _fail(where: str | Path, what: str) -> InputError:
    return InputError(f"{where}: {what}")


def _read_folder(folder: Path) -> dict[str, tuple[str, bytes]]:
    out = {}
    for name in MEMBERS:
        p = folder / name
        if not p.is_file():
            raise _fail(p, "missing (expected a profile folder or .zip written by `avengers fit`)")
        out[name] = (str(p), p.read_bytes())
    return out


def _read_zip(path: Path) -> dict[str, tuple[str, bytes]]:
    """profile.json and centroids.npz from a zip (at its root or in one folder), in memory."""
    out: dict[str, tuple[str, bytes]] = {}
    folders = set()
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            if len(infos) > MAX_ZIP_MEMBERS:
                raise _fail(path, f"{len(infos)} archive members (expected "
                                  f"{' and '.join(MEMBERS)})")
            for info in infos:
                name = info.filename
                where = f"{path} member {name!r}"
                parts = name.split("/")
                if name.startswith(("/", "\\")) or "\\" in name or ":" in parts[0]:
                    raise _fail(where, "absolute or Windows path (expected a relative path)")
                if ".." in parts:
                    raise _fail(where, "path escapes the archive folder (expected no '..')")
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise _fail(where, "a symbolic link (expected a regular file)")
                if info.is_dir():
                    if len(parts) != 2:
                        raise _fail(where, "unexpected folder (expected at most one folder)")
                    folders.add(parts[0])
                    continue
                base = parts[-1]
                if len(parts) > 2 or base not in MEMBERS:
                    raise _fail(where, f"unexpected member (expected {' and '.join(MEMBERS)}, "
                                       "optionally in one folder)")
                folders.add(parts[0] if len(parts) == 2 else "")
                if len(folders) > 1:
                    raise _fail(where, "members in different folders (expected one profile)")
                if base in out:
                    raise _fail(where, f"a second {base} (expected one)")
                if info.file_size > MAX_MEMBER_BYTES:
                    raise _fail(where, f"{info.file_size:,} bytes (expected at most "
                                       f"{MAX_MEMBER_BYTES:,})")
                with z.open(info) as f:
                    data = f.read(MAX_MEMBER_BYTES + 1)  # the size in the header may lie
                if len(data) > MAX_MEMBER_BYTES:
                    raise _fail(where, f"more than {MAX_MEMBER_BYTES:,} bytes (expected at most "
                                       f"{MAX_MEMBER_BYTES:,})")
                out[base] = (where, data)
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError) as e:
        raise _fail(path, f"not a readable zip archive ({e})") from None
    for name in MEMBERS:
        if name not in out:
            raise _fail(path, f"no {name} in the archive (expected {' and '.join(MEMBERS)})")
    return out


def _centroids(where: str, data: bytes) -> np.ndarray:
    """The `centroids` float array of an .npz, refusing anything pickled."""
    if is_pickle(data):
        raise _fail(where, "a Python pickle, which is never loaded (expected an .npz file)")
    check_npz(data, where, MAX_MEMBER_BYTES)  # before anything inflates (issue 20)
    try:
        z = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise _fail(where, f"not an .npz file ({e})") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise _fail(where, "a bare array (expected an .npz file holding 'centroids')")
    with z:
        if "centroids" not in z.files:
            raise _fail(where, f"holds {z.files} (expected an array named 'centroids')")
        try:
            arr = z["centroids"]
        except ValueError as e:
            if "pickle" in str(e):
                raise _fail(where, "holds a pickled object array, which is never loaded "
                                   "(expected a float array)") from None
            raise _fail(where, f"unreadable centroids ({e})") from None
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
            raise _fail(where, f"unreadable centroids ({e})") from None
        except MemoryError:
            raise _fail(where, "centroids declare an impossible shape (expected K × dim "
                               "floats)") from None
    if not np.issubdtype(arr.dtype, np.floating) or arr.ndim != 2:
        raise _fail(where, f"centroids are {arr.dtype} with shape {arr.shape} (expected a "
                           "2-D float array)")
    if not np.isfinite(arr).all():
        raise _fail(where, "centroids hold NaN or infinity (expected finite numbers)")
    return arr.astype(np.float32)


def _task_prior(where: str, data: bytes, doc: dict, dim: int, m: int) -> TaskPrior | None:
    """The task classifier saved beside the centroids, or None for a profile without one
    (fitted with the global prior, or before issue 15)."""
    spec = doc.get("task_prior")
    if spec is None:
        return None
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        if "task_coef" not in z.files or "task_intercept" not in z.files:
            raise _fail(where, "profile.json names a task prior but the archive has no "
                               "task_coef / task_intercept (expected both)")
        coef, intercept = z["task_coef"], z["task_intercept"]
    tasks = [str(t) for t in spec["tasks"]]
    sums, count = np.array(spec["sums"], dtype=float), np.array(spec["count"], dtype=int)
    t = len(tasks)
    if coef.shape != (t, dim) or intercept.shape != (t,) or sums.shape != (t, m) \
            or count.shape != (t, m):
        raise _fail(where, f"task prior shapes do not match {t} tasks × {dim} dims × {m} "
                           "models")
    if not (np.isfinite(coef).all() and np.isfinite(intercept).all() and np.isfinite(sums).all()):
        raise _fail(where, "task prior holds NaN or infinity (expected finite numbers)")
    return TaskPrior(tasks, coef.astype(np.float32), intercept.astype(np.float32), sums, count)


def _document(where: str, data: bytes) -> dict:
    """profile.json as a dict, with its format and version checked."""
    if is_pickle(data):
        raise _fail(where, "a Python pickle, which is never loaded (expected JSON)")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _fail(where, f"not valid JSON ({e})") from None
    except RecursionError:
        raise _fail(where, "JSON nested too deeply (expected a profile)") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _fail(where, f"not an Avengers profile (expected format {FORMAT!r})")
    if doc.get("version") != VERSION:
        raise _fail(where, f"format version {doc.get('version')!r}, this program reads "
                           f"{VERSION} (expected a profile from this version; fit it again)")
    return doc


def _read(path: str | Path) -> dict[str, tuple[str, bytes]]:
    """The members of a saved profile given as its folder, its profile.json or a .zip."""
    path = Path(path)
    if path.is_file() and path.name == "profile.json":
        path = path.parent
    if path.is_dir():
        return _read_folder(path)
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise _fail(path, "not a profile (expected a folder or a .zip written by "
                              "`avengers fit` or the app)")
        return _read_zip(path)
    raise _fail(path, "no such profile folder or .zip (expected the output of `avengers fit`)")


def saved_labels(path: str | Path) -> list[str] | None:
    """The cluster labels a profile was saved with (one per cluster), or None when it has
    none (saved without them, or by an older version). Raises InputError as load_profile."""
    where, data = _read(path)["profile.json"]
    clusters = _document(where, data).get("clusters")
    names = [c.get("label") for c in clusters] if isinstance(clusters, list) else []
    return names if names and all(isinstance(n, str) for n in names) else None


def load_profile(path: str | Path, embedder_id: str | None = None) -> AvengersRouter:
    """Read a saved router from its folder, its profile.json or a .zip of the two files.

    `embedder_id`, when given, must match the one it was fitted with.
    """
    files = _read(path)
    pj, pj_bytes = files["profile.json"]
    cz, cz_bytes = files["centroids.npz"]
    doc = _document(pj, pj_bytes)
    centroids = _centroids(cz, cz_bytes)
    if hashlib.sha256(cz_bytes).hexdigest() != doc.get("centroids_sha256"):
        raise _fail(cz, "does not match profile.json (altered or from another fit; expected "
                        "the SHA-256 recorded in profile.json)")
    try:
        models, k = [str(m) for m in doc["models"]], int(doc["k"])
        dim, emb_id = int(doc["embedder"]["dim"]), str(doc["embedder"]["id"])
        cl = doc["clusters"]
        sums = np.array([c["sums"] for c in cl], dtype=float)
        count = np.array([c["count"] for c in cl], dtype=int)
        has_cost = any(c.get("cost") is not None for c in cl)
        cost = (
            np.array([[np.nan if v is None else v for v in c["cost"]] for c in cl], dtype=float)
            if has_cost else None
        )
        size = np.array([c.get("size") or 0 for c in cl], dtype=int)
        tasks = [dict(c.get("tasks") or {}) for c in cl]
        known = {f.name for f in fields(RouterConfig)}
        config = RouterConfig(**{k_: v for k_, v in doc["parameters"].items() if k_ in known})
        config.validate()
        shrinkage = float(config.shrinkage)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
        raise _fail(pj, f"malformed field ({type(e).__name__}: {e}; expected the fields "
                        "`avengers fit` writes)") from None
    m = len(models)
    if centroids.shape != (k, dim):
        raise _fail(cz, f"centroids have shape {centroids.shape}, expected ({k}, {dim}) "
                        "from profile.json")
    if sums.shape != (k, m) or count.shape != (k, m) or (cost is not None and cost.shape != (k, m)):
        raise _fail(pj, f"cluster stats do not match K = {k} clusters × {m} models")
    if config.k != k:
        raise _fail(pj, f"parameters say K = {config.k} but k is {k} (expected the same K)")
    if len(set(models)) != m:
        raise _fail(pj, "a model is listed twice in 'models' (expected each model once)")
    if not np.isfinite(sums).all() or (count < 0).any():
        raise _fail(pj, "cluster sums or counts out of range (expected finite sums, counts >= 0)")
    if embedder_id is not None and embedder_id != emb_id:
        raise _fail(pj, f"fitted with embedder {emb_id!r}, but {embedder_id!r} was given")
    try:
        task_prior = _task_prior(cz, cz_bytes, doc, dim, m)
    except (KeyError, TypeError, AttributeError, OverflowError) as e:
        raise _fail(pj, f"malformed task_prior ({type(e).__name__}: {e})") from None
    except ValueError as e:
        if isinstance(e, InputError):
            raise
        raise _fail(pj, f"malformed task_prior ({e})") from None
    if task_prior is None or config.prior != "task":
        config, task_prior = replace(config, prior="global"), None
    profile = CapabilityProfile(models, sums, count, cost, shrinkage, size)
    router = AvengersRouter(centroids, profile, config, emb_id, tasks, task_prior=task_prior)
    asked = doc.get("k_asked")
    router.k_asked = asked if isinstance(asked, int) and asked >= k else k
    names = [c.get("label") for c in cl]  # saved labels name the clusters of explanations
    if all(isinstance(n, str) for n in names):
        router.cluster_names = names
    return router


def check_embedder(router: AvengersRouter, embedder: Embedder, source: str | Path) -> None:
    """Refuse an embedder whose vectors do not fit the profile loaded from `source`, before
    routing fails deep inside on a shape mismatch."""
    dim = router.centroids.shape[1]
    if embedder.dim != dim:
        raise InputError(f"{source}: centroids have dimension {dim} but embedder "
                         f"{embedder.id!r} gives {embedder.dim} (expected the profile's own "
                         f"embedder's dimension)")
