"""Embedding servers: an OpenAI-compatible `/v1/embeddings` endpoint as an embedder.

vLLM, llama.cpp (`llama-server --embedding`, llama-cpp-python), Hugging Face TEI and
Ollama's `/v1` all serve it. Two names (issue 13):

- `openai:<model>@<base URL>`, e.g. `openai:BAAI/bge-small-en-v1.5@http://gpu0:8000/v1`;
- `openai:<name>`, a model of an endpoints file (`avengers_core.backends.endpoints`): its replicas'
  URLs, the engine's model name and the key's environment variable come from there.

Texts go out in batches, several requests in flight (spread over the replicas in turn),
each through `OpenAIBackend.embed` (the official `openai` client). The id is the name, so
the cache follows the model whichever replica answers.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from avengers_core.backends import SampleError
from avengers_core.backends.endpoints import Endpoint, api_key, load_endpoints
from avengers_core.backends.openai import OpenAIBackend
from avengers_core.backends.trust import note_key_use
from avengers_core.embed.base import Progress, ServedEmbedder, normalise
from avengers_core.errors import InputError
from avengers_core.redact import refuse_userinfo, strip_userinfo

BATCH = 64  # texts per request (TEI's default maximum client batch is 32-512)
CONCURRENCY = 4  # requests in flight
SERVER_CHUNK = 4096  # texts between two cache writes


class ServerEmbedder(ServedEmbedder):
    """Vectors from `POST <url>/embeddings` of one or more replicas of one model.

    `urls`: base URLs ending in /v1; `model`: the engine's model name; `batch_size` texts
    per request, `concurrency` requests in flight. Raises InputError naming the embedder
    when a request fails or a reply has the wrong number of vectors.
    """

    chunk = SERVER_CHUNK

    def __init__(self, id: str, model: str, urls: tuple[str, ...], key: str | None = None,
                 batch_size: int = BATCH, concurrency: int = CONCURRENCY):
        if not urls:
            raise InputError(f"embedder {id}: no base URL")
        self.id = id
        self.model = model
        self.batch_size = max(1, batch_size)
        self.concurrency = max(1, concurrency)
        # "" (not None): without a key named by the user, none is sent (issue 20)
        self._backends = [OpenAIBackend(u, api_key=key or "") for u in urls]
        self._next = itertools.cycle(range(len(self._backends)))
        self._per_token = False  # the server returns token vectors: one text per request

    def _encode(self, texts: list[str]) -> np.ndarray:
        if self._per_token and len(texts) > 1:
            return np.concatenate([self._encode([t]) for t in texts])
        backend = self._backends[next(self._next)]  # replicas in turn
        try:
            raw = backend.embed(self.model, texts)
        except SampleError as e:
            raise InputError(f"embedder {self.id}: {e.reason}") from None
        if raw and np.ndim(raw[0]) == 2:
            # Token vectors (llama.cpp, model without pooling). llama-cpp-python then gives
            # the second and later texts of one request vectors that differ from the same
            # text sent alone (seen with SmolLM2): from now on, one text per request.
            self._per_token = True
            if len(texts) > 1:
                return self._encode(texts)
        try:
            vecs = np.stack([_pooled(v) for v in raw]) if raw else np.zeros((0, 0), np.float32)
        except ValueError:
            vecs = np.zeros((0, 0), dtype=np.float32)  # ragged widths: reported below
        if vecs.ndim != 2 or len(vecs) != len(texts):
            raise InputError(f"embedder {self.id}: {backend.host} returned {vecs.shape} "
                             f"for {len(texts)} texts (expected one vector per text)")
        return vecs

    def encode(
        self, texts: list[str], batch_size: int | None = None, progress: Progress | None = None
    ) -> np.ndarray:
        """(len(texts), dim) L2-normalised float32 vectors: batches of `batch_size` (default
        the embedder's), `concurrency` requests at a time, in the texts' order."""
        size = batch_size or self.batch_size
        starts = list(range(0, len(texts), size))
        if not starts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts: dict[int, np.ndarray] = {}
        done = 0
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(starts))) as pool:
            futures = {pool.submit(self._encode, texts[s : s + size]): s for s in starts}
            try:
                for fut in as_completed(futures):
                    s = futures[fut]
                    parts[s] = normalise(fut.result())
                    done += len(parts[s])
                    if progress:
                        progress(done, len(texts), f"embedding with {self.id}")
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
        widths = {p.shape[1] for p in parts.values()}
        if len(widths) != 1:
            raise InputError(f"embedder {self.id}: replies of different widths {sorted(widths)}")
        return np.concatenate([parts[s] for s in starts])


def _pooled(vec: list) -> np.ndarray:
    """One text's vector. llama.cpp serving a model without a pooling layer (e.g. a chat
    model, `--pooling none`) returns one vector per token: those are mean-pooled, as
    sentence-transformers' mean pooling does."""
    arr = np.asarray(vec, dtype=np.float32)
    return arr.mean(axis=0) if arr.ndim == 2 else arr


def server_embedder(name: str,
                    endpoints: str | Path | Mapping[str, Endpoint] | None = None
                    ) -> ServerEmbedder:
    """The embedder named `openai:<model>@<base URL>` or `openai:<name>` (a model of the
    endpoints file, or mapping, `endpoints`). The explicit form sends no key (a profile may
    name it: it must never carry `OPENAI_API_KEY` to a URL of its choosing, issue 20); a
    server that needs one is named in an endpoints file with `api_key_env`. Raises
    InputError for a bad name, credentials in the URL or an unknown model."""
    spec = name.split(":", 1)[1] if name.startswith("openai:") else name
    if "@" in spec:
        model, url = spec.rsplit("@", 1)
        if not model or not url.startswith(("http://", "https://")):
            raise InputError(f"embedder {name!r}: expected openai:<model>@<base URL>, e.g. "
                             "openai:nomic-embed-text@http://127.0.0.1:8000/v1")
        refuse_userinfo(url, f"embedder {strip_userinfo(name)!r}",
                        "api_key_env in an endpoints file (embedder openai:<name>)")
        return ServerEmbedder(f"openai:{model}@{url.rstrip('/')}", model, (url.rstrip("/"),))
    if not spec:
        raise InputError(f"embedder {name!r}: expected openai:<model>@<base URL> or "
                         "openai:<name of the endpoints file>")
    eps = load_endpoints(endpoints) if isinstance(endpoints, (str, Path)) else endpoints
    if not eps or spec not in eps:
        where = f"the endpoints file {endpoints}" if isinstance(endpoints, (str, Path)) else (
            "the endpoints file" if eps else "no endpoints file given (--endpoints)")
        raise InputError(f"embedder {name!r}: model {spec!r} not in {where}; name a server "
                         "with openai:<model>@<base URL>")
    ep = eps[spec]
    if ep.backend != "openai":
        raise InputError(f"embedder {name!r}: the endpoints file gives backend "
                         f"{ep.backend!r} (expected 'openai', which serves /v1/embeddings)")
    key = api_key(ep.api_key_env, f"endpoints file, model {spec!r}")
    if key:
        for url in ep.urls:
            note_key_use(str(ep.api_key_env), url, f"embedder {name!r}")
    return ServerEmbedder(f"openai:{spec}", ep.model, ep.urls, key)
