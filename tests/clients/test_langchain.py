"""`avengers serve` through LangChain's `langchain-openai` (ChatOpenAI) and `langchain-ollama`
(ChatOllama), whole (`invoke`) and streamed (`stream`), run by tests/clients/py_drive.py in
the clients' venv (`scripts/setup.sh --test`)."""

from __future__ import annotations

from typing import Any

import pytest

from avengers_core.extract import extract
from tests.clients.common import (
    CLIENTS_DIR,
    CLIENTS_VENV,
    LLAMA,
    LLAMA_TEXT,
    VOTED_TEXT,
    ok,
    run_driver,
    two_turns,
    user,
)

CLIENTS = ["langchain-openai", "langchain-ollama"]
STREAM = [pytest.param(False, id="whole"), pytest.param(True, id="streamed")]


@pytest.fixture(scope="module", autouse=True)
def venv_python():
    python = CLIENTS_VENV / "bin" / "python"
    if not python.exists():
        pytest.fail(f"no clients venv at {CLIENTS_VENV}: bash scripts/setup.sh --test")
    return python


def drive(client: str, url: str, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run `calls` through LangChain's `client` against `url` (see py_drive.py)."""
    return run_driver([str(CLIENTS_VENV / "bin" / "python"), str(CLIENTS_DIR / "py_drive.py")],
                      client, url, calls)


@pytest.mark.parametrize("stream", STREAM)
@pytest.mark.parametrize("client", CLIENTS)
def test_langchain_vote(serve_url, client, stream):
    res = ok(drive(client, serve_url, [{"model": "avengers", "messages": user(),
                                        "stream": stream}])[0])
    assert res["text"] == VOTED_TEXT and extract(res["text"], "number") == "42"
    assert res["finish"] == "stop" and res["model"] == "avengers"
    assert (res["chunks"] > 1) is stream


@pytest.mark.parametrize("stream", STREAM)
@pytest.mark.parametrize("client", CLIENTS)
def test_langchain_route_and_passthrough(serve_url, client, stream):
    calls = [{"model": m, "messages": user(), "stream": stream, "extra": {"seed": 0}}
             for m in ("avengers-route", LLAMA)]  # seed 0: qwen2.5's reply is `#### 42`
    route, passed = drive(client, serve_url, calls)
    assert extract(ok(route)["text"], "number") == "42"
    assert ok(passed)["text"] == LLAMA_TEXT and passed["model"] == LLAMA
    assert route["finish"] == passed["finish"] == "stop"


@pytest.mark.parametrize("client", CLIENTS)
def test_langchain_unknown_model_is_an_error(serve_url, client):
    res = drive(client, serve_url, [{"model": "no-such-model", "messages": user()}])[0]
    assert not res["ok"] and "no-such-model" in res["error"]["message"]
    assert res["error"]["status"] in (404, None)  # ChatOllama's error carries no status


@pytest.mark.parametrize("client", CLIENTS)
def test_langchain_chat_keeps_its_model(serve_url, client):
    """A chat that began with a math question stays on the math model for a trivia follow-up
    (routed by the first user message: part A of issue 21)."""
    res = ok(drive(client, serve_url, [{"model": "avengers", "messages": two_turns()}])[0])
    assert res["text"] == VOTED_TEXT
