"""The Ollama client wrapper against a real loopback server speaking the Ollama protocol."""

from __future__ import annotations

import threading

import pytest

from avengers_core.backends.base import TIMER_PREFIX, Timeouts
from avengers_core.backends.errors import SampleError
from avengers_core.backends.model_names import map_models, suggest_tag
from avengers_core.backends.ollama import (
    DEFAULT_HOST,
    OllamaBackend,
    OllamaUnavailable,
    resolve_host,
)
from tests.support.fake_ollama import FakeOllama, ModelScript
from tests.support.net import free_port

MODEL = "qwen2.5:7b-instruct"
FAST = Timeouts(connect=2, first_token=1, total=30)


@pytest.fixture
def srv():
    script = ModelScript(
        replies=["Six times seven.\n#### 42"],
        chunk=3,
        fail_seeds={1: "http500", 2: "cut", 3: "badline", 4: "stall", 5: "hang"},
    )
    with FakeOllama({MODEL: script, "nomic-embed-text": ModelScript()}) as s:
        yield s


def test_list_models(srv):
    assert OllamaBackend(srv.url).list_models() == ["nomic-embed-text", MODEL]


def test_unreachable_host_names_the_host():
    host = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(OllamaUnavailable) as err:
        OllamaBackend(host).list_models()
    assert host in str(err.value)
    assert "ollama serve" in str(err.value)
    assert err.value.host == host


def test_resolve_host(monkeypatch):
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    assert resolve_host(None) == DEFAULT_HOST
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:9999")
    assert resolve_host(None) == "http://127.0.0.1:9999"
    assert resolve_host("http://127.0.0.1:1234") == "http://127.0.0.1:1234"


def test_chat_streams_tokens_and_sends_seed_and_temperature(srv):
    tokens: list[str] = []
    text = OllamaBackend(srv.url, FAST).chat(MODEL, "q", seed=7, temperature=0.3,
                                             on_token=tokens.append)
    assert text == "Six times seven.\n#### 42"
    assert len(tokens) > 1 and "".join(tokens) == text
    req = [r for r in srv.requests if r["path"] == "/api/chat"][-1]
    assert req["options"]["seed"] == 7
    assert req["options"]["temperature"] == 0.3
    assert req["stream"] is True


@pytest.mark.parametrize(
    ("seed", "reason"),
    [
        (1, "HTTP 500"),
        (2, "without done: true"),
        (3, "not JSON"),
        (4, "no token for 1 s"),
        (5, "no first token within 1 s"),
    ],
)
def test_failures_become_reasons(srv, seed, reason):
    with pytest.raises(SampleError) as err:
        OllamaBackend(srv.url, FAST).chat(MODEL, "q", seed=seed)
    assert reason in err.value.reason


def test_missing_model_is_404_reason(srv):
    with pytest.raises(SampleError) as err:
        OllamaBackend(srv.url, FAST).chat("nope:1b", "q")
    assert "not found" in err.value.reason and "ollama pull nope:1b" in err.value.reason


def test_total_timeout_stops_a_trickling_reply(srv):
    srv.models["slow"] = ModelScript(replies=["x" * 200], chunk=1, token_delay=0.05)
    client = OllamaBackend(srv.url, Timeouts(connect=2, first_token=5, total=0.5))
    with pytest.raises(SampleError) as err:
        client.chat("slow", "q")
    assert "no complete reply within 0.5 s" in err.value.reason


def test_abort_unblocks_a_hanging_request(srv):
    call = OllamaBackend(srv.url, Timeouts(first_token=300, total=300)).stream_call(
        MODEL, "q", seed=5
    )
    out: dict[str, str] = {}

    def work() -> None:
        try:
            call.run()
        except SampleError as e:
            out["reason"] = e.reason

    t = threading.Thread(target=work)
    t.start()
    while srv.in_flight == 0 and t.is_alive():
        t.join(0.01)
    call.abort("stopped by user")
    t.join(10)  # generous upper bound: without abort it would hang for 300 s
    assert not t.is_alive()
    assert out["reason"] == "stopped by user"
    assert not [x for x in threading.enumerate() if x.name.startswith(TIMER_PREFIX)]


def test_embed(srv):
    vecs = OllamaBackend(srv.url).embed("nomic-embed-text", ["a b", "c"])
    assert len(vecs) == 2 and len(vecs[0]) == 32


@pytest.mark.parametrize(
    ("name", "local", "want"),
    [
        ("qwen2.5-7b-instruct", ["qwen2.5:7b-instruct", "qwen2.5:latest"], "qwen2.5:7b-instruct"),
        ("gemma-2-9b-it", ["gemma2:27b", "gemma2:9b"], "gemma2:9b"),
        ("llama-3.1-8b-instruct", ["llama3.1:70b", "llama3.1:8b"], "llama3.1:8b"),
        ("mistral-7b-instruct-v0.3", ["mistral:7b-instruct-v0.3"], "mistral:7b-instruct-v0.3"),
        ("llama3-chatqa-1.5-70b", ["llama3.1:70b"], None),
        ("qwen2.5-7b-instruct", ["qwen2.5:14b"], None),
        ("exact:tag", ["exact:tag"], "exact:tag"),
    ],
)
def test_suggest_tag(name, local, want):
    assert suggest_tag(name, local) == want


def test_map_models_prefers_user_mapping():
    local = ["qwen2.5:7b-instruct", "my-llama"]
    got = map_models(["qwen2.5-7b-instruct", "llama-3.1-8b-instruct", "gpqa-model"], local,
                     {"llama-3.1-8b-instruct": "my-llama"})
    assert got == {
        "qwen2.5-7b-instruct": "qwen2.5:7b-instruct",
        "llama-3.1-8b-instruct": "my-llama",
        "gpqa-model": None,
    }


def test_fake_server_speaks_generate_and_non_streaming(srv):
    """The test server itself: `/api/generate` and `stream: false`, as the real client uses."""
    import ollama

    with ollama.Client(host=srv.url) as client:  # closed: no socket outlives the test
        assert client.generate(model=MODEL, prompt="q", options={"seed": 0}).response == (
            "Six times seven.\n#### 42"
        )
        parts = list(client.generate(model=MODEL, prompt="q", stream=True, options={"seed": 0}))
        assert parts[-1].done and "".join(p.response for p in parts) == "Six times seven.\n#### 42"
        reply = client.chat(model=MODEL, messages=[{"role": "user", "content": "q"}],
                            options={"seed": 0})
        assert reply.message.content == "Six times seven.\n#### 42" and reply.done
        with pytest.raises(ollama.ResponseError) as err:
            client.generate(model="nope", prompt="q")
        assert err.value.status_code == 404
        with pytest.raises(ollama.ResponseError) as err:
            client.embed(model="nope", input="q")
        assert err.value.status_code == 404
