"""`avengers serve` through LiteLLM's `completion`, whole and streamed, with each provider
prefix that reaches it: `openai/` (OpenAI protocol), `ollama_chat/` (/api/chat) and
`ollama/` (/api/generate); run by tests/clients/py_drive.py in the clients' venv
(`scripts/setup.sh --test`). LiteLLM reads its model-cost map from its own package
(LITELLM_LOCAL_MODEL_COST_MAP), never from the network."""

from __future__ import annotations

from typing import Any

import pytest

from avengers_core.answers.extract import extract
from tests.clients.common import (
    LLAMA_TEXT,
    VOTED_TEXT,
    VOTES,
    chat_calls,
    ok,
    py_drive,
)

CLIENTS = ["litellm-openai", "litellm-ollama-chat", "litellm-ollama"]
STREAM = ["whole", "streamed"]
CALLS = chat_calls()


def drive(client: str, url: str, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run `calls` through `client` against `url` (common.py_drive)."""
    return py_drive(client, url, calls, LITELLM_LOCAL_MODEL_COST_MAP="True")


@pytest.fixture(scope="module")
def replies(serve_url) -> dict[str, dict[str, dict[str, Any]]]:
    """Each client's result of each call in CALLS, by client and call name."""
    return {client: dict(zip(CALLS, drive(client, serve_url, list(CALLS.values()))))
            for client in CLIENTS}


@pytest.mark.parametrize("stream", STREAM)
@pytest.mark.parametrize("client", CLIENTS)
def test_litellm_vote(replies, client, stream):
    res = ok(replies[client][f"vote-{stream}"])
    assert res["text"] == VOTED_TEXT and extract(res["text"], "number") == "42"
    assert res["finish"] == "stop"
    assert (res["chunks"] > 1) is (stream == "streamed")
    if client == "litellm-openai":  # its OpenAI provider keeps the reply's extra fields
        assert res["avengers"]["votes"] == VOTES and res["avengers"]["answer"] == "42"


@pytest.mark.parametrize("stream", STREAM)
@pytest.mark.parametrize("client", CLIENTS)
def test_litellm_route_and_passthrough(replies, client, stream):
    route, passed = (ok(replies[client][f"{name}-{stream}"]) for name in ("route", "passed"))
    assert route["text"] == VOTED_TEXT and passed["text"] == LLAMA_TEXT
    assert route["finish"] == passed["finish"] == "stop"


@pytest.mark.parametrize("client", CLIENTS)
def test_litellm_unknown_model_is_an_error(replies, client):
    res = replies[client]["unknown"]
    assert not res["ok"] and res["error"]["status"] == 404, res


@pytest.mark.parametrize("client", ["litellm-openai", "litellm-ollama-chat"])
def test_litellm_chat_keeps_its_model(replies, client):
    """A chat that began with a math question stays on the math model for a trivia follow-up
    (routed by the first user message: part A of issue 21). Not `ollama/`: LiteLLM joins the
    conversation into one `/api/generate` prompt, which serve sees as one query."""
    assert ok(replies[client]["two-turns"])["text"] == VOTED_TEXT
