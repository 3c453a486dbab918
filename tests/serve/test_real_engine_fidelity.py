"""Issue 21 against the real engine (llama-cpp-python's server with SmolLM2-135M, see
tests/engine.py): a relayed reply is the engine's own, and truncation, usage,
log-probabilities and structured output come through, to the official `openai` and
`ollama` clients, streamed and not.

Structure only, never what the tiny model says: at temperature 0 the engine is greedy, so
a relayed reply is compared with the engine's own reply to the same request.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support.engine import MODEL, llama_server
from tests.support.fake_ollama import FakeOllama, ModelScript
from tests.support.profiles import MATH, build_profile
from tests.support.serve_util import clients, serving

VOLATILE = ("id", "created", "model", "avengers", "system_fingerprint")


@pytest.fixture(scope="module")
def engine():
    with llama_server() as (url, _proc):
        yield url


@pytest.fixture(scope="module")
def url(engine, tmp_path_factory):
    with FakeOllama({"nomic-embed-text": ModelScript()}) as emb, \
            pytest.MonkeyPatch.context() as mp:
        mp.setenv("AVENGERS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        mp.setenv("OLLAMA_HOST", emb.url)  # the profile's embedder
        profile = build_profile(emb.url, tmp_path_factory.mktemp("fid") / "profile")
        mapping = json.dumps({"qwen2.5-7b-instruct": MODEL, "llama-3.1-8b-instruct": MODEL})
        with serving([str(profile), "--backend", "openai", "--host", engine, "--model-map",
                      mapping, "--samples", "2", "--max-tokens", "16"]) as u:
            yield u


def user() -> list[dict[str, str]]:
    return [{"role": "user", "content": MATH[0]}]


def same_reply(direct: dict, relayed: dict) -> None:
    """The relayed reply is the engine's own, but for per-reply ids and the model name."""
    strip = lambda d: {k: v for k, v in d.items() if k not in VOLATILE}  # noqa: E731
    assert strip(relayed) == strip(direct)
    assert relayed["model"] == MODEL


@pytest.mark.parametrize("extra", [
    {"max_tokens": 3},
    {"max_tokens": 3, "logprobs": True, "top_logprobs": 2},
    {"max_tokens": 12, "response_format": {"type": "json_object"}},
    {"max_tokens": 4, "stop": ["\n"], "top_p": 0.5},
])
def test_relayed_reply_is_the_engines_own(engine, url, extra):
    body = {"model": MODEL, "messages": user(), "temperature": 0, "seed": 1, **extra}
    direct = httpx.post(f"{engine}/chat/completions", json=body, timeout=120).json()
    relayed = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120).json()
    same_reply(direct, relayed)
    if "logprobs" in extra:
        assert relayed["choices"][0]["logprobs"]["content"]
    if "response_format" in extra and relayed["choices"][0]["finish_reason"] == "stop":
        json.loads(relayed["choices"][0]["message"]["content"])


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", [MODEL, "avengers-route", "avengers"])
def test_truncation_reaches_the_openai_client(url, model, stream):
    oai = clients(url, 120)[0]
    res = oai.chat.completions.create(model=model, messages=user(), max_tokens=3,
                                      stream=stream)
    if stream:
        finishes = [c.choices[0].finish_reason for c in res if c.choices]
        assert finishes[-1] == "length"
    else:
        assert res.choices[0].finish_reason == "length"
        if model == "avengers":
            # the vote streams its samples, and llama-cpp-python's server sends no usage in
            # a stream (it ignores stream_options): no usage rather than a made-up one
            assert res.usage is None or res.usage.completion_tokens == 3 * 2
        else:
            assert res.usage.completion_tokens == 3


@pytest.mark.parametrize("stream", [False, True])
def test_truncation_reaches_the_ollama_client_in_front_of_an_openai_engine(url, stream):
    oll = clients(url, 120)[1]
    res = oll.chat(model=MODEL, messages=user(), options={"num_predict": 3}, stream=stream)
    last = list(res)[-1] if stream else res
    assert last.done and last.done_reason == "length"
    if not stream:  # the engine's usage, as Ollama's counts
        assert last.eval_count == 3 and last.prompt_eval_count > 0


@pytest.mark.parametrize("stream", [False, True])
def test_legacy_completion_is_relayed(engine, url, stream):
    oai = clients(url, 120)[0]
    res = oai.completions.create(model=MODEL, prompt="2 + 3 =", max_tokens=3, stream=stream,
                                 temperature=0)
    if stream:
        chunks = list(res)
        text = "".join(c.choices[0].text for c in chunks if c.choices)
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    else:
        text = res.choices[0].text
        assert res.choices[0].finish_reason == "length" and res.usage.completion_tokens == 3
    direct = httpx.post(f"{engine}/completions", timeout=120, json={
        "model": MODEL, "prompt": "2 + 3 =", "max_tokens": 3, "temperature": 0}).json()
    assert text == direct["choices"][0]["text"]
