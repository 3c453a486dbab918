"""What the real-client tests share: the scripted models and the conversations they send.

The profile routes math questions to qwen2.5, whose seeded replies are 42, 42, 41: a 6-sample
vote is 4 × 42 to 2 × 41, and its text is the winning sample's, `#### 42`. Trivia questions
go to llama3.1, which always says `The answer is 41.`
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.fake_ollama import ModelScript
from tests.support.profiles import MATH, TRIVIA

QWEN = "qwen2.5:7b-instruct"
LLAMA = "llama3.1:8b"
QUESTION = MATH[0]
TRIVIA_QUESTION = TRIVIA[0]
VOTED_TEXT = "#### 42"
VOTES = {"42": 4, "41": 2}
LLAMA_TEXT = "The answer is 41."
SAMPLES = 6


def scripts() -> dict[str, ModelScript]:
    """The scripted models (see the module docstring)."""
    return {QWEN: ModelScript(replies=["#### 42", "#### 42", "so 41\n#### 41"]),
            LLAMA: ModelScript(replies=[LLAMA_TEXT]),
            "nomic-embed-text": ModelScript()}


def user(text: str = QUESTION) -> list[dict[str, str]]:
    """A one-turn conversation."""
    return [{"role": "user", "content": text}]


def two_turns() -> list[dict[str, str]]:
    """A math question, the vote's answer, then a trivia question: a chat that keeps its model
    (issue 21: routed by its first user message) stays on qwen2.5 and answers `#### 42`;
    routed per turn it would go to llama3.1."""
    return [*user(QUESTION), {"role": "assistant", "content": VOTED_TEXT},
            *user(TRIVIA_QUESTION)]




CLIENTS_DIR = Path(__file__).resolve().parent
CACHE = Path.home() / ".cache" / "avengers"
CLIENTS_VENV = Path(os.environ.get("AVENGERS_CLIENTS_VENV", CACHE / "clients-venv"))
"""The venv of LangChain and LiteLLM (tests/clients/requirements.txt), made by setup.sh."""
OPENWEBUI_VENV = Path(os.environ.get("AVENGERS_OPENWEBUI_VENV", CACHE / "openwebui-venv"))
"""Open WebUI's own venv, made by setup.sh."""
DEAD_PROXY = "http://127.0.0.1:9"
LOOPBACK_ONLY = {"HTTP_PROXY": DEAD_PROXY, "HTTPS_PROXY": DEAD_PROXY, "ALL_PROXY": DEAD_PROXY,
                 "http_proxy": DEAD_PROXY, "https_proxy": DEAD_PROXY, "all_proxy": DEAD_PROXY,
                 "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
"""Environment for a client under test: a request to anything but loopback goes to a closed
loopback port and fails at once (the tests never reach beyond this machine)."""


def client_env(**extra: str) -> dict[str, str]:
    """This process's environment less any OpenAI/Ollama settings, plus LOOPBACK_ONLY and
    `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith(("OPENAI_", "OLLAMA_", "LITELLM_"))}
    return {**env, **LOOPBACK_ONLY, **extra}


def run_driver(argv: list[str], client: str, url: str, calls: list[dict[str, Any]],
               cwd: Path = CLIENTS_DIR, timeout: float = 180, **env: str
               ) -> list[dict[str, Any]]:
    """Run a client driver (`argv` + the JSON job) and return its results, one per call.

    The drivers (node/drive.mjs, py_drive.py) print a JSON array; a driver that crashes fails
    the test with its stderr."""
    job = json.dumps({"client": client, "url": url, "calls": calls})
    done = subprocess.run([*argv, job], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=client_env(**env))
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(results) == len(calls)
    return results


def ok(result: dict[str, Any]) -> dict[str, Any]:
    """`result`, once it is known to be a success (else the client's error is the message)."""
    assert result["ok"], result.get("error")
    return result


def chat_calls(stream_key: str = "stream") -> dict[str, dict[str, Any]]:
    """The chats every Python client makes, by name: the vote, `avengers-route` and a
    passed-through model (seed 0: qwen2.5 answers `#### 42`), each whole and streamed, an
    unknown model, and the two-turn chat; one driver run makes them all (a client's import
    takes seconds)."""
    calls: dict[str, dict[str, Any]] = {}
    for stream in (False, True):
        how = "streamed" if stream else "whole"
        calls[f"vote-{how}"] = {"model": "avengers", "messages": user(), stream_key: stream}
        for name, model in (("route", "avengers-route"), ("passed", LLAMA)):
            calls[f"{name}-{how}"] = {"model": model, "messages": user(), stream_key: stream,
                                      "extra": {"seed": 0}}
    calls["unknown"] = {"model": "no-such-model", "messages": user()}
    calls["two-turns"] = {"model": "avengers", "messages": two_turns()}
    return calls


def py_drive(client: str, url: str, calls: list[dict[str, Any]],
             **env: str) -> list[dict[str, Any]]:
    """Run `calls` through the Python client `client` (LangChain or LiteLLM, in the clients'
    venv; see py_drive.py) against `url`. Fails the test when the venv is missing."""
    python = CLIENTS_VENV / "bin" / "python"
    if not python.exists():
        pytest.fail(f"no clients venv at {CLIENTS_VENV}: bash scripts/setup.sh --test")
    return run_driver([str(python), str(CLIENTS_DIR / "py_drive.py")], client, url, calls,
                      **env)
