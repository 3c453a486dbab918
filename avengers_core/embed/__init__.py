"""Step 1 of the recipe, embedding: one base (`base.Embedder`), one file per implementation.

`local` (sentence-transformers, MiniLM by default, offline), `ollama` (an Ollama embedding
model), `served` (OpenAI-compatible `/v1/embeddings` servers), `cache` (the on-disk cache and
`embed_texts`), `load` (`get_embedder(name)`, which picks the implementation by name).

To add an embedder: subclass `Embedder` in a new module here (an `id` that names the model,
`dim`, `embed(texts) -> (n, d) float32`), and teach `load.get_embedder` its name prefix.
"""

from avengers_core.embed.base import DEFAULT_EMBEDDER, Embedder, ServedEmbedder, normalise
from avengers_core.embed.cache import EmbeddingCache, embed_texts
from avengers_core.embed.load import get_embedder

__all__ = [
    "DEFAULT_EMBEDDER",
    "Embedder",
    "EmbeddingCache",
    "ServedEmbedder",
    "embed_texts",
    "get_embedder",
    "normalise",
]
