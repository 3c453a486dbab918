"""The embedder interface: `Embedder` (an id naming the model, a dimension, `embed(texts)`),
`ServedEmbedder` for embedders behind a server, and `normalise` (rows to unit length)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np

Progress = Callable[[int, int, str], None]

DEFAULT_EMBEDDER = "minilm"


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


class ServedEmbedder(Embedder):
    """An embedder behind a server: its width is learnt from one request, on first use."""

    _dim: int | None = None

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self._encode(["dimension probe"]).shape[1])
        return self._dim
