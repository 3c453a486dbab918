"""`avengers serve` through the official `openai` and `ollama` npm packages under Node (their
fetch is undici's), driven by tests/clients/node/drive.mjs; `scripts/setup.sh --test`
installs them from tests/clients/node/package-lock.json.

Streamed and whole, for the vote (`avengers`), `avengers-route` and a passed-through model.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from avengers_core.answers.extract import extract
from tests.clients.common import (
    LLAMA,
    LLAMA_TEXT,
    QUESTION,
    QWEN,
    TRIVIA_QUESTION,
    VOTED_TEXT,
    VOTES,
    ok,
    run_driver,
    two_turns,
    user,
)
from tests.support.fake_ollama import ModelScript
from tests.support.serve_util import serving

NODE_DIR = Path(__file__).resolve().parent / "node"
STREAM = [pytest.param(False, id="whole"), pytest.param(True, id="streamed")]


@pytest.fixture(scope="module", autouse=True)
def node_clients():
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "openai").is_dir() \
            or not (NODE_DIR / "node_modules" / "ollama").is_dir():
        pytest.fail("the npm clients are not installed: bash scripts/setup.sh --test "
                    "(Node from Debian, then npm ci in tests/clients/node)")
    return node


def drive(client: str, url: str, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run `calls` through the npm `client` ("openai" or "ollama") against `url`; one result
    per call (see drive.mjs)."""
    return run_driver(["node", "drive.mjs"], client, url, calls, cwd=NODE_DIR)


def check_vote(res: dict[str, Any], stream: bool) -> None:
    """The vote, as the client read it: the winner's text, `stop`, the `avengers` field."""
    ok(res)
    assert res["text"] == VOTED_TEXT and extract(res["text"], "number") == "42"
    assert res["avengers"]["votes"] == VOTES and res["avengers"]["models"] == [QWEN]
    assert res["avengers"]["answer"] == "42"
    assert (res["chunks"] > 1) is stream


# -- openai -----------------------------------------------------------------------------------


def test_openai_npm_lists_the_router_models(serve_url):
    models = ok(drive("openai", serve_url, [{"op": "models"}])[0])["models"]
    assert models[:2] == ["avengers", "avengers-route"] and {QWEN, LLAMA} <= set(models)


@pytest.mark.parametrize("stream", STREAM)
def test_openai_npm_vote(serve_url, stream):
    res = drive("openai", serve_url, [{"op": "chat", "model": "avengers", "messages": user(),
                                       "stream": stream}])[0]
    check_vote(res, stream)
    assert res["finish"] == "stop" and res["model"] == "avengers"


@pytest.mark.parametrize("stream", STREAM)
def test_openai_npm_route_and_passthrough(serve_url, stream):
    calls = [{"op": "chat", "model": m, "messages": user(), "stream": stream,
              "extra": {"seed": 0}} for m in ("avengers-route", LLAMA)]
    route, passed = drive("openai", serve_url, calls)
    assert ok(route)["text"] == "#### 42" and route["avengers"]["models"] == [QWEN]
    assert route["avengers"]["votes"] == {} and isinstance(route["avengers"]["cluster"], int)
    assert ok(passed)["text"] == LLAMA_TEXT and passed["avengers"]["cluster"] is None
    assert route["finish"] == passed["finish"] == "stop"


@pytest.mark.parametrize("stream", STREAM)
def test_openai_npm_bad_requests_get_the_status(serve_url, stream):
    bad, unknown = drive("openai", serve_url, [
        {"op": "chat", "model": "avengers", "messages": user(), "stream": stream,
         "extra": {"temperature": 5}},
        {"op": "chat", "model": "no-such-model", "messages": user(), "stream": stream}])
    assert not bad["ok"] and bad["error"]["status"] == 400
    assert "temperature" in bad["error"]["message"]
    assert not unknown["ok"] and unknown["error"]["status"] == 404


# -- ollama -----------------------------------------------------------------------------------


def test_ollama_npm_lists_the_router_models(serve_url):
    models = ok(drive("ollama", serve_url, [{"op": "models"}])[0])["models"]
    assert len(models) >= 4
    assert {"avengers", "avengers-route", QWEN, LLAMA} <= {m.removesuffix(":latest")
                                                           for m in models}


@pytest.mark.parametrize("stream", STREAM)
def test_ollama_npm_vote_chat_and_generate(serve_url, stream):
    chat, gen = drive("ollama", serve_url, [
        {"op": "chat", "model": "avengers", "messages": user(), "stream": stream},
        {"op": "generate", "model": "avengers", "prompt": QUESTION, "stream": stream}])
    check_vote(chat, stream)
    check_vote(gen, stream)
    assert chat["done"] is gen["done"] is True
    assert chat["finish"] == gen["finish"] == "stop"


@pytest.mark.parametrize("stream", STREAM)
def test_ollama_npm_route_and_passthrough(serve_url, stream):
    calls = [{"op": op, "model": m, "stream": stream, "extra": {"options": {"seed": 0}},
              **({"messages": user()} if op == "chat" else {"prompt": QUESTION})}
             for m in ("avengers-route", LLAMA) for op in ("chat", "generate")]
    route_chat, route_gen, passed_chat, passed_gen = drive("ollama", serve_url, calls)
    for res in (route_chat, route_gen):
        assert ok(res)["text"] == "#### 42" and res["avengers"]["models"] == [QWEN]
    for res in (passed_chat, passed_gen):
        assert ok(res)["text"] == LLAMA_TEXT and res["done"] is True


def test_ollama_npm_unknown_model_is_404(serve_url):
    res = drive("ollama", serve_url, [{"op": "chat", "model": "no-such-model",
                                       "messages": user()}])[0]
    assert not res["ok"] and res["error"]["status"] == 404


# -- issue 21's server side (part A) ----------------------------------------------------------


def test_ollama_npm_tagged_names(serve_url):
    """Ollama names carry a tag: `/api/tags` lists `avengers:latest` with details, and the
    tagged name is served as the bare one (part A of issue 21)."""
    listed, shown, chat = drive("ollama", serve_url, [
        {"op": "models"}, {"op": "show", "model": "avengers:latest"},
        {"op": "chat", "model": "avengers:latest", "messages": user()}])
    assert all(":" in name for name in ok(listed)["models"]), listed["models"]
    assert "avengers:latest" in listed["models"] and all(listed["details"])
    assert ok(shown)["details"]["family"] == "avengers"
    check_vote(chat, stream=False)


@pytest.mark.parametrize("client", ["openai", "ollama"])
def test_a_chat_keeps_its_model(serve_url, client):
    """The second turn (a trivia question) of a chat that began with a math question stays on
    the math model: routed by the first user message (part A of issue 21)."""
    res = drive(client, serve_url, [{"op": "chat", "model": "avengers",
                                     "messages": two_turns()}])[0]
    assert ok(res)["avengers"]["models"] == [QWEN]
    assert res["text"] == VOTED_TEXT


def test_a_big_vote_fits_undicis_header_limit(srv, profile):
    """40 samples with long non-ASCII answers, all different: Node's fetch (undici) refuses
    response headers over 16 KiB, so all `x-avengers-*` headers together must stay under
    8 KiB (part A of issue 21); the full tally is in the body."""
    srv.models[LLAMA] = ModelScript(replies=[f"The answer is {i} " + "日本語の長い答え" * 40
                                             for i in range(40)])
    with serving([str(profile), "--host", srv.url, "--samples", "40",
                  "--early-stop", "off"]) as url:
        calls = [{"op": "chat", "model": "avengers", "messages": user(TRIVIA_QUESTION)}]
        for client in ("openai", "ollama"):
            res = ok(drive(client, url, calls)[0])
            assert res["avengers"]["models"] == [LLAMA]
            assert sum(res["avengers"]["votes"].values()) == 40
            assert len(res["avengers"]["votes"]) > 1


@pytest.mark.parametrize("stream", STREAM)
def test_truncation_reaches_the_client(srv, serve_url, stream):
    """An engine reply cut by the token limit says so: finish/done reason `length` (part A of
    issue 21; it was always `stop`)."""
    srv.models[LLAMA] = ModelScript(replies=[LLAMA_TEXT], truncated=True)
    call = {"op": "chat", "model": LLAMA, "messages": user(), "stream": stream}
    for client in ("openai", "ollama"):
        assert ok(drive(client, serve_url, [call])[0])["finish"] == "length", client


@pytest.mark.parametrize("stream", STREAM)
def test_openai_npm_usage(serve_url, stream):
    """`usage` on a whole vote, and the `include_usage` chunk of a streamed one, counting the
    samples drawn (part A of issue 21)."""
    res = ok(drive("openai", serve_url, [
        {"op": "chat", "model": "avengers", "messages": user(), "stream": stream,
         "extra": {"stream_options": {"include_usage": True}} if stream else {}}])[0])
    usage = res["usage"]
    assert usage and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@pytest.mark.parametrize("stream", STREAM)
def test_ollama_npm_eval_count(serve_url, stream):
    """The vote's final line has Ollama's eval count over the samples (part A of issue 21)."""
    res = ok(drive("ollama", serve_url, [{"op": "chat", "model": "avengers", "messages": user(),
                                          "stream": stream}])[0])
    assert res["eval_count"] and res["eval_count"] > 0


def test_openai_npm_retrieves_one_model(serve_url):
    """`/v1/models/{id}` (part A of issue 21)."""
    res = ok(drive("openai", serve_url, [{"op": "model", "model": "avengers"}])[0])
    assert res == {"ok": True, "id": "avengers", "object": "model"}


def test_ollama_npm_preload_and_unload(serve_url):
    """How `ollama run` starts and stops a model: a chat with no messages or a generate with no
    prompt loads it, with `keep_alive: 0` unloads it; Ollama answers `done` at once with
    `done_reason` `load` / `unload` (part A of issue 21; it was a 400)."""
    results = drive("ollama", serve_url, [
        {"op": "chat", "model": "avengers", "messages": []},
        {"op": "chat", "model": "avengers", "messages": [], "extra": {"keep_alive": 0}},
        {"op": "generate", "model": "avengers"},
        {"op": "generate", "model": "avengers", "extra": {"keep_alive": 0}}])
    assert [ok(r)["finish"] for r in results] == ["load", "unload", "load", "unload"]
    assert all(r["done"] is True and r["text"] == "" for r in results)
