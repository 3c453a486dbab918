"""Issue 21: the Ollama and OpenAI API conventions `avengers serve` keeps (tagged names,
preload and unload, /api/ps, /api/show, /api/embed, /v1/models/{id}, /v1/completions,
/v1/embeddings), small `x-avengers-*` headers, and conversations that keep their model.

Against the scripted engine, through the official `openai` and `ollama` clients.
"""

from __future__ import annotations

import base64
import json
import math
import struct

import httpx
import ollama
import openai
import pytest

from avengers_core.serve.replies import HEADER_BYTES, avengers_headers
from avengers_core.serve.service import Reply, Routing
from tests.support.fake_ollama import fake_embedding
from tests.support.fidelity import LLAMA, OA_LLAMA, QWEN, sent, serve, user
from tests.support.profiles import MATH, TRIVIA
from tests.support.serve_util import clients

QUESTION = MATH[0]










@pytest.fixture
def oai(url):
    return clients(url, 30)[0]


@pytest.fixture
def oll(url):
    return clients(url, 30)[1]



# -- Ollama names, preload and unload, ps, show ------------------------------------------


def test_tags_list_tagged_names_with_details(oll):
    models = oll.list().models
    names = [m.model for m in models]
    assert names[:2] == ["avengers:latest", "avengers-route:latest"]
    assert {QWEN, f"{OA_LLAMA}:latest"} <= set(names)
    assert all(":" in n for n in names)
    assert models[0].details.family == "avengers"


@pytest.mark.parametrize("stream", [False, True])
def test_tagged_names_are_served(oll, stream):
    for name in ("avengers:latest", "avengers-route:latest", f"{OA_LLAMA}:latest"):
        res = oll.chat(model=name, messages=user(), stream=stream)
        parts = list(res) if stream else [res]
        assert parts[-1].done and "".join(p.message.content for p in parts)
        assert parts[-1].model == name


@pytest.mark.parametrize("model", ["avengers", "avengers-route:latest", OA_LLAMA])
def test_preload_and_unload_are_answered_as_ollama_does(srv, url, model):
    before = len(srv.requests)
    for path, body in [("/api/chat", {"messages": []}), ("/api/generate", {}),
                       ("/api/chat", {})]:
        r = httpx.post(f"{url}{path}", json={"model": model, **body}, timeout=30)
        assert r.status_code == 200 and r.json()["done"] is True, r.text
        assert r.json()["done_reason"] == "load" and r.json()["model"] == model
        r = httpx.post(f"{url}{path}", json={"model": model, **body, "keep_alive": 0},
                       timeout=30)
        assert r.json()["done_reason"] == "unload"
    assert srv.requests[before:] == []  # nothing to load on an OpenAI engine or the router


def test_preload_of_an_ollama_engines_model_is_relayed(srv, url, oll):
    before = len(srv.requests)
    r = httpx.post(f"{url}/api/generate", json={"model": LLAMA, "keep_alive": "10m"},
                   timeout=30)
    assert r.status_code == 200
    assert sent(srv, before, "/api/generate") == [{"model": LLAMA, "keep_alive": "10m"}]
    assert oll.generate(model="avengers").done_reason == "load"  # the client's own preload


def test_ps_show_and_version(oll, url):
    oll.chat(model=LLAMA, messages=user())  # the engine loads llama
    running = [m.model for m in oll.ps().models]
    assert running[:2] == ["avengers:latest", "avengers-route:latest"]
    assert LLAMA in running[2:]  # what the Ollama engine has loaded
    for name in ("avengers", "avengers:latest", "avengers-route", QWEN, f"{OA_LLAMA}:latest"):
        shown = oll.show(name)
        assert "completion" in shown.capabilities
    with pytest.raises(ollama.ResponseError) as e:
        oll.show("no-such-model")
    assert e.value.status_code == 404
    assert httpx.get(f"{url}/api/version").json()["version"]


# -- embeddings ---------------------------------------------------------------------------


def test_ollama_embed_relays_or_uses_the_profiles_embedder(oll, srv):
    res = oll.embed(model="nomic-embed-text", input=["one", "two words"])
    assert [list(v) for v in res.embeddings] == [fake_embedding("one"),
                                                 fake_embedding("two words")]
    routed = oll.embed(model="avengers", input="two words")  # the profile's embedder
    assert routed.embeddings[0] == pytest.approx(fake_embedding("two words"), abs=1e-6)
    assert math.isclose(sum(x * x for x in routed.embeddings[0]), 1, rel_tol=1e-5)
    with pytest.raises(ollama.ResponseError) as e:
        oll.embed(model="no-such-model", input="x")
    assert e.value.status_code == 404 and "the profile's embedder" in e.value.error


def test_openai_embeddings(oai):
    res = oai.embeddings.create(model="avengers", input=["alpha beta"])
    assert res.data[0].embedding == pytest.approx(fake_embedding("alpha beta"), abs=1e-6)
    res = oai.embeddings.create(model="nomic-embed-text", input="alpha")  # Ollama engine
    assert res.data[0].embedding == pytest.approx(fake_embedding("alpha"))
    r = httpx.post(f"{oai.base_url}embeddings", json={
        "model": "avengers", "input": "alpha", "encoding_format": "base64"}, timeout=30)
    raw = base64.b64decode(r.json()["data"][0]["embedding"])
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == pytest.approx(
        fake_embedding("alpha"), abs=1e-6)
    with pytest.raises(openai.NotFoundError):
        oai.embeddings.create(model="no-such-model", input="x")


# -- OpenAI: models/{id}, completions -------------------------------------------------------


def test_models_retrieve(oai):
    assert oai.models.retrieve("avengers").id == "avengers"
    assert oai.models.retrieve(QWEN).id == QWEN
    with pytest.raises(openai.NotFoundError):
        oai.models.retrieve("no-such-model")


@pytest.mark.parametrize("stream", [False, True])
def test_legacy_completions(oai, srv, stream):
    def text_of(res):
        if not stream:
            return res.choices[0].text, res.model_extra["avengers"], res.choices[0].finish_reason
        chunks = list(res)
        return ("".join(c.choices[0].text for c in chunks if c.choices),
                chunks[-1].model_extra["avengers"],
                [c.choices[0].finish_reason for c in chunks if c.choices][-1])

    text, field, finish = text_of(oai.completions.create(model="avengers", prompt=QUESTION,
                                                         stream=stream))
    assert field["votes"] == {"42": 4, "41": 2} and "42" in text and finish == "stop"
    before = len(srv.requests)
    text, field, finish = text_of(oai.completions.create(model="avengers-route",
                                                         prompt=QUESTION, stream=stream))
    assert field["models"] == [QWEN] and field["answer"] in ("42", "41") and finish == "stop"
    assert sent(srv, before, "/api/generate")[0]["raw"] is True  # a completion: no template
    text, field, _ = text_of(oai.completions.create(model=OA_LLAMA, prompt=QUESTION,
                                                    stream=stream, max_tokens=5))
    assert text == "The answer is 41." and field["cluster"] is None


# -- headers -----------------------------------------------------------------------------


def test_headers_stay_under_8_kib_with_a_big_tally():
    votes = {f"Ответ номер {i}: " + "длинный ответ " * 40: 1 for i in range(40)}
    reply = Reply("x", Routing(3, ["m"] * 40), answer=next(iter(votes)), votes=votes,
                  confidence=1 / 40)
    headers = avengers_headers(reply.routing, reply)
    assert sum(len(k) + len(v) + 4 for k, v in headers.items()) < HEADER_BYTES
    shown = json.loads(headers["x-avengers-votes"])
    assert sum(shown.values()) == 40 and shown["…"] == 40 - (len(shown) - 1)
    assert all(v.isascii() for v in headers.values())


def test_reply_headers_summarise_and_the_body_has_all(url):
    r = httpx.post(f"{url}/v1/chat/completions", json={"model": "avengers",
                                                       "messages": user()}, timeout=30)
    assert json.loads(r.headers["x-avengers-votes"]) == r.json()["avengers"]["votes"]


# -- conversations keep their model ------------------------------------------------------------


def conversation() -> list[dict[str, str]]:
    """A math question first, then a trivia one: routed apart, they go to two models."""
    return [*user(MATH[1]), {"role": "assistant", "content": "#### 42"},
            {"role": "user", "content": TRIVIA[1]}]


@pytest.mark.parametrize("model", ["avengers-route", "avengers"])
def test_a_conversation_keeps_the_model_of_its_first_message(url, model):
    for _ in range(2):  # stateless: the same messages give the same route
        r = httpx.post(f"{url}/v1/chat/completions", timeout=30, json={
            "model": model, "messages": conversation()})
        field = r.json()["avengers"]
        assert field["models"] == [QWEN] and field["rule"] == "first user message"
    r = httpx.post(f"{url}/v1/chat/completions", timeout=30, json={
        "model": model, "messages": user(TRIVIA[1])})
    assert r.json()["avengers"]["models"] == [LLAMA]


def test_route_each_turn_routes_the_last_message(srv, profile, tmp_path):
    with serve(srv, profile, tmp_path, "--route-each-turn") as url:
        r = httpx.post(f"{url}/api/chat", timeout=30, json={
            "model": "avengers-route", "messages": conversation(), "stream": False})
        field = r.json()["avengers"]
        assert field["models"] == [LLAMA] and field["rule"] == "each turn"
