"""An Ollama embedding model (`ollama:<model>`) through the official `ollama` client."""

from __future__ import annotations

import numpy as np

from avengers_core import config
from avengers_core.embed.base import ServedEmbedder
from avengers_core.errors import InputError


class OllamaEmbedder(ServedEmbedder):
    """An embedding model served by Ollama's `/api/embed` (e.g. nomic-embed-text)."""

    def __init__(self, model: str, host: str | None = None):
        import ollama

        self.model = model
        self.id = f"ollama:{model}"
        self._client = ollama.Client(host=host or config.ollama_host(), timeout=120)

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
