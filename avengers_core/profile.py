"""Saved routers: a folder with `profile.json` (readable stats) and `centroids.npz`.

Loading checks the format version, the array shapes and the embedder; nothing is ever
unpickled (`allow_pickle=False`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

from avengers_core.errors import InputError
from avengers_core.route import AvengersRouter, RouterConfig
from avengers_core.score import CapabilityProfile

FORMAT = "avengers-profile"
VERSION = 1


def _nan_to_none(a: np.ndarray) -> list:
    return [None if np.isnan(v) else round(float(v), 6) for v in a]


def save_profile(router: AvengersRouter, out: str | Path) -> Path:
    """Write the fitted router to the folder `out` (created if needed)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
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
        })
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "models": prof.models,
        "k": prof.k,
        "embedder": {"id": router.embedder_id, "dim": int(router.centroids.shape[1])},
        "parameters": asdict(router.config),
        "global_mean": [float(v) for v in prof.global_mean],
        "clusters": clusters,
    }
    (out / "profile.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")
    np.savez(out / "centroids.npz", centroids=router.centroids.astype(np.float32))
    return out


def _fail(path: Path, what: str) -> InputError:
    return InputError(f"{path}: {what}")


def load_profile(folder: str | Path, embedder_id: str | None = None) -> AvengersRouter:
    """Read a saved router; `embedder_id`, when given, must match the one it was fitted with."""
    folder = Path(folder)
    pj, cz = folder / "profile.json", folder / "centroids.npz"
    for p in (pj, cz):
        if not p.exists():
            raise _fail(p, "missing (expected a profile folder written by `avengers fit`)")
    try:
        doc = json.loads(pj.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _fail(pj, f"not valid JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _fail(pj, f"not an Avengers profile (expected format {FORMAT!r})")
    if doc.get("version") != VERSION:
        raise _fail(pj, f"format version {doc.get('version')!r}, this program reads {VERSION}")
    try:
        with np.load(cz, allow_pickle=False) as z:
            centroids = np.asarray(z["centroids"], dtype=np.float32)
    except (ValueError, KeyError, OSError) as e:
        raise _fail(cz, f"not a centroids file ({e})") from None
    try:
        models, k = list(doc["models"]), int(doc["k"])
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
    except (KeyError, TypeError, ValueError) as e:
        raise _fail(pj, f"malformed field ({type(e).__name__}: {e})") from None
    m = len(models)
    if centroids.shape != (k, dim):
        raise _fail(cz, f"centroids have shape {centroids.shape}, expected ({k}, {dim})")
    if sums.shape != (k, m) or count.shape != (k, m) or (cost is not None and cost.shape != (k, m)):
        raise _fail(pj, f"cluster stats do not match K = {k} clusters × {m} models")
    if embedder_id is not None and embedder_id != emb_id:
        raise _fail(pj, f"fitted with embedder {emb_id!r}, but {embedder_id!r} was given")
    profile = CapabilityProfile(models, sums, count, cost, float(config.shrinkage), size)
    return AvengersRouter(centroids, profile, config.validate(), emb_id, tasks)
