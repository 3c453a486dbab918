"""A two-cluster profile on the scripted server's Ollama embedder, shared by the CLI, serve
and engine tests: qwen2.5 wins the math questions, llama-3.1 the trivia ones."""

from __future__ import annotations

from pathlib import Path

MATH = [f"How many apples are left if you have {i} apples and eat {i % 3}?" for i in range(12)]
TRIVIA = [f"Which river flows through capital city number {i} of the old kingdom?"
          for i in range(12)]


def build_profile(host: str, out: Path) -> Path:
    """A 2-cluster profile in `out`, embedded by `nomic-embed-text` on `host`: qwen2.5 wins
    the math questions, llama-3.1 the trivia ones."""
    from avengers_core.data.table import from_rows
    from avengers_core.embed.cache import embed_texts
    from avengers_core.embed.ollama import OllamaEmbedder
    from avengers_core.routing.profile import save_profile
    from avengers_core.routing.routers.avengers import AvengersRouter
    from avengers_core.routing.routers.base import RouterConfig

    rows = [
        {"query": q, "task": "gsm8k",
         "scores": {"qwen2.5-7b-instruct": 1.0, "llama-3.1-8b-instruct": 0.0}}
        for q in MATH
    ] + [
        {"query": q, "task": "trivia_qa",
         "scores": {"qwen2.5-7b-instruct": 0.0, "llama-3.1-8b-instruct": 1.0}}
        for q in TRIVIA
    ]
    table = from_rows(rows, "toy")
    emb = OllamaEmbedder("nomic-embed-text", host=host)
    x = embed_texts(table.queries, emb)
    router = AvengersRouter.fit(table, x, RouterConfig(k=2, shrinkage=0.0), embedder_id=emb.id)
    save_profile(router, out)
    return out
