"""`get_embedder(name)`: the embedder for a name (`minilm`, a sentence-transformers path,
`ollama:<model>`, `openai:<model>[@URL]`)."""

from __future__ import annotations

from pathlib import Path

from avengers_core.embed.base import DEFAULT_EMBEDDER, Embedder
from avengers_core.embed.local import SentenceTransformerEmbedder
from avengers_core.embed.ollama import OllamaEmbedder


def get_embedder(name: str = DEFAULT_EMBEDDER, device: str | None = None,
                 endpoints: str | Path | None = None) -> Embedder:
    """`minilm` (default), `ollama:<model>`, `openai:<model>@<base URL>`, `openai:<name>` (a
    model of the endpoints file `endpoints`), `st:<name>` or any sentence-transformers
    name/path. `device` ("auto", "cpu", "cuda", "cuda:N", "mps"; None = "auto") places a
    local model; servers ignore it. Raises InputError for a bad device or endpoint."""
    if name.startswith("ollama:"):
        return OllamaEmbedder(name.split(":", 1)[1])
    if name.startswith("openai:"):
        from avengers_core.embed.served import server_embedder

        return server_embedder(name, endpoints)
    if name.startswith("st:"):
        name = name[3:]
    return SentenceTransformerEmbedder(name, device)
