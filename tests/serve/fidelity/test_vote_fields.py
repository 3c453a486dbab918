"""Issue 21: what the voting model `avengers` does with each request field, one test per
row of `serve.fields.VOTE_FIELDS` (docs/SERVE.md has the same table), and its honest reply
metadata (the winner's finish reason, usage summed over the samples, the usage chunk).

The scripted engine records every sample's request; `mixed` reaches the routed model over
the engine's OpenAI-compatible API, the other server over Ollama's.
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from avengers_core.serve.fields import VOTE_FIELDS
from tests.support.fake_ollama import FakeOllama, ModelScript
from tests.support.fidelity import QWEN, sent, user
from tests.support.profiles import MATH
from tests.support.serve_util import clients

QUESTION = MATH[0]
SAMPLES = 6
TOOL = {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}













def samples_sent(srv: FakeOllama, before: int) -> list[dict]:
    """The vote's sample requests, either protocol (an OpenAI one may ask for n)."""
    return sent(srv, before, "/api/chat") + sent(srv, before, "/v1/chat/completions")


def drawn(requests: list[dict]) -> int:
    """Samples drawn by these requests."""
    return sum(r.get("n", 1) for r in requests)


def vote(base: str, **fields) -> dict:
    r = httpx.post(f"{base}/v1/chat/completions", timeout=30,
                   json={"model": "avengers", "messages": user(), **fields})
    assert r.status_code == 200, r.text
    return r.json()


def test_the_table_has_a_test_per_row():
    assert len(VOTE_FIELDS) == 15  # add a test below for a new row


@pytest.mark.parametrize("server", ["url", "mixed"])
def test_temperature_zero_becomes_the_default_per_sample(srv, server, request):
    before = len(srv.requests)
    vote(request.getfixturevalue(server), temperature=0)
    got = samples_sent(srv, before)
    assert drawn(got) == SAMPLES
    assert all((r.get("options") or r).get("temperature") == pytest.approx(0.7) for r in got)


@pytest.mark.parametrize("server", ["url", "mixed"])
def test_top_p_stop_and_max_tokens_go_to_every_sample(srv, server, request):
    srv.models[QWEN] = ModelScript(replies=["#### 42 STOP and more", "#### 42 STOP", "#### 41"])
    before = len(srv.requests)
    res = vote(request.getfixturevalue(server), top_p=0.5, stop=["STOP"], max_tokens=20)
    got = samples_sent(srv, before)
    assert drawn(got) == SAMPLES
    for r in got:
        opts = r.get("options") or r
        assert opts["top_p"] == 0.5 and opts["stop"] == ["STOP"]
        assert opts.get("num_predict", opts.get("max_tokens")) == 20
    assert "STOP" not in res["choices"][0]["message"]["content"]
    assert res["avengers"]["votes"] == {"42": 4, "41": 2}


def test_seed_is_the_base_of_the_sample_seeds(srv, url):
    before = len(srv.requests)
    vote(url, seed=100)
    assert sorted(r["options"]["seed"] for r in samples_sent(srv, before)) == list(
        range(100, 100 + SAMPLES))


def test_think_goes_to_every_sample(srv, url):
    before = len(srv.requests)
    vote(url, reasoning_effort="low")
    assert {r["think"] for r in samples_sent(srv, before)} == {"low"}


@pytest.mark.parametrize("server", ["url", "mixed"])
def test_structured_output_votes_over_the_parsed_json(srv, server, request):
    srv.models[QWEN] = ModelScript(replies=['{"a": 1, "b": 2}', '{"b":2,"a":1}', '{"a": 3}'])
    before = len(srv.requests)
    res = vote(request.getfixturevalue(server), response_format={"type": "json_object"})
    for r in samples_sent(srv, before):
        assert r.get("format") == "json" or r.get("response_format") == {"type": "json_object"}
    assert res["avengers"]["votes"] == {'{"a":1,"b":2}': 4, '{"a":3}': 2}
    assert json.loads(res["choices"][0]["message"]["content"]) == {"a": 1, "b": 2}
    # Ollama's format, with a schema, and the query is sent without the answer instruction
    schema = {"type": "object", "properties": {"a": {"type": "number"}}}
    before = len(srv.requests)
    r = httpx.post(f"{request.getfixturevalue(server)}/api/chat", timeout=30, json={
        "model": "avengers", "messages": user(), "format": schema, "stream": False})
    assert r.json()["avengers"]["answer"] == '{"a":1,"b":2}'
    got = samples_sent(srv, before)
    assert got and all(r.get("format") == schema or r.get("response_format", {}).get(
        "json_schema", {}).get("schema") == schema for r in got)
    assert all("####" not in json.dumps(r.get("messages")) for r in got)


@pytest.mark.parametrize("server", ["url", "mixed"])
def test_usage_is_summed_over_the_samples_with_the_usage_chunk(srv, server, request):
    base = request.getfixturevalue(server)
    oai = clients(base, 30)[0]
    before = len(srv.requests)
    res = oai.chat.completions.create(model="avengers", messages=user())
    got = samples_sent(srv, before)
    prompt = sum(len(" ".join(m["content"] for m in r["messages"]).split()) for r in got)
    assert res.usage.prompt_tokens == prompt  # the engine counts a request's prompt once
    assert res.usage.completion_tokens == 4 * 2 + 2 * 4  # "#### 42" ×4, "so 41\n#### 41" ×2
    chunks = list(oai.chat.completions.create(model="avengers", messages=user(), stream=True,
                                              stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 16
    assert chunks[-2].choices[0].finish_reason == "stop"
    r = httpx.post(f"{base}/api/chat", timeout=30, json={
        "model": "avengers", "messages": user(), "stream": False})
    assert r.json()["eval_count"] == 16 and r.json()["prompt_eval_count"] == prompt


@pytest.mark.parametrize("server", ["url", "mixed"])
def test_the_winners_finish_reason_is_reported(srv, server, request):
    srv.models[QWEN] = ModelScript(replies=["#### 42"], truncated=True)
    base = request.getfixturevalue(server)
    res = clients(base, 30)[0].chat.completions.create(model="avengers", messages=user())
    assert res.choices[0].finish_reason == "length"
    parts = list(clients(base, 30)[1].chat(model="avengers", messages=user(), stream=True))
    assert parts[-1].done_reason == "length"


@pytest.mark.parametrize("fields", [
    {"tools": [TOOL]}, {"tools": [TOOL], "tool_choice": "auto"},
    {"tools": [TOOL], "tool_choice": "none"}])
def test_tools_merely_offered_are_voted_on_text_and_noted(srv, url, fields):
    """Open WebUI offers its built-in tools with every chat: a vote still answers (in
    text, as `auto` allows), the samples are sent without the tools, and a note says so."""
    before = len(srv.requests)
    res = vote(url, **fields)
    drawn = samples_sent(srv, before)
    assert len(drawn) == 6 and not any(s.get("tools") for s in drawn)
    field = res["avengers"]
    assert field["votes"] and "single" not in field
    assert any("tools were offered but not required" in n for n in field["notes"])


def test_required_tools_get_one_routed_sample(srv, mixed):
    """tool_choice "required" (here relayed to an OpenAI-compatible engine, which has it):
    one routed sample, which may call the tool."""
    before = len(srv.requests)
    res = vote(mixed, tools=[TOOL], tool_choice="required")
    assert len(samples_sent(srv, before)) == 1
    assert res["avengers"]["votes"] == {} and "tools" in res["avengers"]["single"]


@pytest.mark.parametrize("fields", [{"logprobs": True}, {"logprobs": True, "top_logprobs": 2}])
def test_logprobs_get_one_routed_sample(srv, url, fields):
    before = len(srv.requests)
    res = vote(url, **fields)
    assert len(samples_sent(srv, before)) == 1
    field = res["avengers"]
    assert field["votes"] == {} and field["models"] == [QWEN]
    assert "one routed sample" in field["single"] and next(iter(fields)) in field["single"]


def test_a_tool_conversation_gets_one_routed_sample(srv, url):
    messages = [*user(), {"role": "assistant", "content": None, "tool_calls": [{
        "id": "c1", "type": "function", "function": {"name": "add", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "42"}]
    before = len(srv.requests)
    r = httpx.post(f"{url}/v1/chat/completions", timeout=30, json={
        "model": "avengers", "messages": messages, "tools": [TOOL]})
    assert r.status_code == 200 and "tool" in r.json()["avengers"]["single"]
    assert len(samples_sent(srv, before)) == 1


def test_images_get_one_routed_sample(srv, url):
    before = len(srv.requests)
    r = httpx.post(f"{url}/api/chat", timeout=30, json={"model": "avengers", "stream": False,
        "messages": [{"role": "user", "content": QUESTION, "images": ["iVBORw0KGgo="]}]})
    assert r.status_code == 200 and "images" in r.json()["avengers"]["single"]
    assert sent(srv, before, "/api/chat")[0]["messages"][0]["images"] == ["iVBORw0KGgo="]


def test_more_than_one_choice_is_refused(url):
    oai = clients(url, 30)[0]
    with pytest.raises(openai.BadRequestError, match="n: only 1"):
        oai.chat.completions.create(model="avengers", messages=user(), n=2)
    with pytest.raises(openai.BadRequestError, match="best_of"):
        oai.completions.create(model="avengers", prompt=QUESTION, best_of=3)


def test_echo_is_refused(url):
    with pytest.raises(openai.BadRequestError, match="echo"):
        clients(url, 30)[0].completions.create(model="avengers", prompt=QUESTION, echo=True)


@pytest.mark.parametrize("fields", [{"frequency_penalty": 0.5}, {"logit_bias": {"1": 2}},
                                    {"presence_penalty": 1.0}])
def test_other_openai_sampling_fields_are_refused(url, fields):
    with pytest.raises(openai.BadRequestError, match=f"{next(iter(fields))}: not honoured"):
        clients(url, 30)[0].chat.completions.create(model="avengers", messages=user(),
                                                    **fields)


def test_other_ollama_options_are_refused(url):
    r = httpx.post(f"{url}/api/chat", timeout=30, json={
        "model": "avengers", "messages": user(), "options": {"top_k": 5}})
    assert r.status_code == 400 and "options.top_k: not honoured" in r.json()["error"]
    # fields that never change a reply are accepted
    r = httpx.post(f"{url}/api/chat", timeout=30, json={
        "model": "avengers", "messages": user(), "stream": False, "keep_alive": "5m"})
    assert r.status_code == 200
