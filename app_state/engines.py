"""LLM engines for the Vote and Calibrate pages: the Ollama host, its models, what to start."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import streamlit as st

from app_state.fmt import code, slug

#: Ollama library tags for the demo table's models (for `ollama pull` hints).
PULL_TAGS = {
    "qwen2.5-7b-instruct": "qwen2.5:7b-instruct",
    "llama-3.1-8b-instruct": "llama3.1:8b",
    "gemma-2-9b-it": "gemma2:9b",
    "mistral-7b-instruct-v0.3": "mistral:7b-instruct-v0.3",
    "codegemma-7b": "codegemma:7b",
    "llama3-chatqa-1.5-8b": "llama3-chatqa:8b",
    "llama3-chatqa-1.5-70b": "llama3-chatqa:70b",
}


def ollama_host() -> str:
    """The session's Ollama host (default: `OLLAMA_HOST`, else 127.0.0.1:11434)."""
    from avengers_core.backends.ollama import resolve_host

    st.session_state.setdefault("ollama_host", resolve_host())
    return st.session_state["ollama_host"]


def calibration_path(source: str, host: str) -> Path:
    """Default calibration table for a question set on a host: grades are never shared
    between hosts. Folder: `AVENGERS_CALIBRATION_DIR`, else `calibration/` in the cache."""
    from avengers_core.embed import cache_dir

    folder = os.environ.get("AVENGERS_CALIBRATION_DIR") or cache_dir() / "calibration"
    return Path(folder) / f"{slug(source)}-{slug(host.split('://')[-1])}.jsonl"


@st.cache_data(ttl=10, show_spinner="Asking Ollama for its models…")
def local_models(host: str) -> list[str]:
    """Models available on `host`; raises OllamaUnavailable (not cached) when unreachable."""
    from avengers_core.backends.ollama import OllamaBackend

    return OllamaBackend(host).list_models()


def ollama_missing(host: str, wanted: list[str], running: bool = False) -> None:
    """Say exactly what to start (or pull) when Ollama cannot be used at `host`."""
    pulls = [PULL_TAGS[m] for m in wanted if m in PULL_TAGS] or ["qwen2.5:7b-instruct"]
    if running:
        st.warning(f"Ollama at {code(host)} answers but has no model yet.")
        st.markdown("Pull a model, then press **Check again**:")
    else:
        st.warning(f"Ollama is not reachable at {code(host)}.")
        st.markdown("Start it with `ollama serve` and pull the models the router picks, "
                    "then press **Check again**:")
    lines = [] if running else ["ollama serve"]
    st.code("\n".join(lines + [f"ollama pull {tag}" for tag in pulls[:3]]), language="bash")
    st.caption("Ollama on another machine or port? Change the host above.")


def check_again(where: Any = None) -> None:
    """A *Check again* button: forget the cached model list so Ollama is asked anew."""
    if (where or st).button("Check again"):
        local_models.clear()
