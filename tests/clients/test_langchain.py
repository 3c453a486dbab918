"""`avengers serve` through LangChain's `langchain-openai` (ChatOpenAI) and `langchain-ollama`
(ChatOllama), whole (`invoke`) and streamed (`stream`), run by tests/clients/py_drive.py in
the clients' venv (`scripts/setup.sh --test`)."""

from __future__ import annotations

from typing import Any

import pytest

from avengers_core.answers.extract import extract
from tests.clients.common import (
    LLAMA,
    LLAMA_TEXT,
    VOTED_TEXT,
    chat_calls,
    ok,
    py_drive,
)

CLIENTS = ["langchain-openai", "langchain-ollama"]
STREAM = ["whole", "streamed"]
CALLS = chat_calls()


def drive(client: str, url: str, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run `calls` through `client` against `url` (common.py_drive)."""
    return py_drive(client, url, calls)


@pytest.fixture(scope="module")
def replies(serve_url) -> dict[str, dict[str, dict[str, Any]]]:
    """Each client's result of each call in CALLS, by client and call name."""
    return {client: dict(zip(CALLS, drive(client, serve_url, list(CALLS.values()))))
            for client in CLIENTS}


@pytest.mark.parametrize("stream", STREAM)
@pytest.mark.parametrize("client", CLIENTS)
def test_langchain_vote(replies, client, stream):
    res = ok(replies[client][f"vote-{stream}"])
    assert res["text"] == VOTED_TEXT and extract(res["text"], "number") == "42"
    assert res["finish"] == "stop" and res["model"] == "avengers"
    assert (res["chunks"] > 1) is (stream == "streamed")


@pytest.mark.parametrize("stream", STREAM)
@pytest.mark.parametrize("client", CLIENTS)
def test_langchain_route_and_passthrough(replies, client, stream):
    route, passed = (ok(replies[client][f"{name}-{stream}"]) for name in ("route", "passed"))
    assert route["text"] == VOTED_TEXT and route["model"] == "avengers-route"
    assert passed["text"] == LLAMA_TEXT and passed["model"] == LLAMA
    assert route["finish"] == passed["finish"] == "stop"


@pytest.mark.parametrize("client", CLIENTS)
def test_langchain_unknown_model_is_an_error(replies, client):
    res = replies[client]["unknown"]
    assert not res["ok"] and "no-such-model" in res["error"]["message"]
    assert res["error"]["status"] == 404


@pytest.mark.parametrize("client", CLIENTS)
def test_langchain_chat_keeps_its_model(replies, client):
    """A chat that began with a math question stays on the math model for a trivia follow-up
    (routed by the first user message: part A of issue 21)."""
    assert ok(replies[client]["two-turns"])["text"] == VOTED_TEXT
