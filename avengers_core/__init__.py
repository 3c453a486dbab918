"""Avengers Lab core: the Avengers routing recipe (Zhang et al., 2025, arXiv 2505.19797).

Embed each query, cluster a labeled set with K-means, score each model per cluster (the
K × M capability profile), route a new query to the best model(s) of its nearest clusters,
sample them several times and vote. Pure Python, no Streamlit.

The stable API below is importable from here and loaded on first use (PEP 562), so
`import avengers_core` stays fast; each name also lives in its own module (see
docs/ARCHITECTURE.md)::

    from avengers_core import load_table, get_embedder, embed_texts, AvengersRouter

Layout: ``data`` → ``embed`` → ``routing`` (cluster, score, routers, profile, evaluate), the
LLM side ``backends``, ``answers``, ``vote``, ``calibrate``; ``pipeline`` (route, then vote:
the one controller), and the interfaces ``cli`` and ``serve``; ``present`` draws figures.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "RoutingTable": "avengers_core.data.table",
    "load_table": "avengers_core.data.load",
    "read_table": "avengers_core.data.readers",
    "Embedder": "avengers_core.embed.base",
    "get_embedder": "avengers_core.embed.load",
    "embed_texts": "avengers_core.embed.cache",
    "kmeans": "avengers_core.routing.cluster",
    "CapabilityProfile": "avengers_core.routing.score",
    "AvengersRouter": "avengers_core.routing.routers.avengers",
    "RouterConfig": "avengers_core.routing.routers.base",
    "RouteResult": "avengers_core.routing.routers.base",
    "ROUTERS": "avengers_core.routing.routers",
    "save_profile": "avengers_core.routing.profile",
    "load_profile": "avengers_core.routing.profile",
    "evaluate": "avengers_core.routing.evaluate",
    "get_backend": "avengers_core.backends",
    "load_endpoints": "avengers_core.backends.endpoints",
    "VoteRun": "avengers_core.vote.run",
    "VoteResult": "avengers_core.vote.tally",
    "Pipeline": "avengers_core.pipeline",
    "InputError": "avengers_core.errors",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    """Load a name of the stable API from its module on first use (PEP 562)."""
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'avengers_core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
