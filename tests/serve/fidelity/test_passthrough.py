"""Issue 21: a passed-through model and `avengers-route` relay the client's request as sent
(only `model` renamed, nothing added) and the engine's reply as it was (finish or done
reason, usage and the usage chunk, tool calls, log-probabilities, structured output), and
map fields across protocols with a clear 400 where a field has no counterpart.

Against the scripted engine (tests/fake_ollama.py), which records what it was sent, through
the official `openai` and `ollama` clients and raw HTTP.
"""

from __future__ import annotations

import json

import httpx
import ollama
import openai
import pytest

from tests.support.fake_ollama import ModelScript
from tests.support.fidelity import LLAMA, OA_LLAMA, QWEN, ndjson, sent, sse, user
from tests.support.profiles import MATH
from tests.support.serve_util import clients

QUESTION = MATH[0]
TOOL = {"type": "function", "function": {
    "name": "add", "description": "add two numbers",
    "parameters": {"type": "object", "properties": {"a": {"type": "number"},
                                                    "b": {"type": "number"}}}}}
CALL = {"name": "add", "arguments": {"a": 40, "b": 2}}













def tool_conversation() -> list[dict]:
    """A tool-using chat: the assistant's call (content null), the tool's result."""
    return [{"role": "user", "content": QUESTION},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "add", "arguments": '{"a": 40, "b": 2}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "42"}]


# -- same protocol: the request as sent --------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_openai_request_reaches_an_openai_engine_unchanged_but_the_model(srv, url, stream):
    body = {"model": OA_LLAMA, "messages": user(), "stream": stream, "top_p": 0.5,
            "stop": ["zzz"], "max_tokens": 7, "seed": 3, "logprobs": True, "top_logprobs": 2,
            "response_format": {"type": "json_object"}, "frequency_penalty": 0.1,
            "logit_bias": {"50256": -100}, "user": "u1"}
    if stream:
        body["stream_options"] = {"include_usage": True}
    before = len(srv.requests)
    r = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)
    assert r.status_code == 200, r.text
    assert sent(srv, before, "/v1/chat/completions") == [{**body, "model": LLAMA}]


@pytest.mark.parametrize("stream", [False, True])
def test_ollama_request_reaches_an_ollama_engine_unchanged_but_the_model(srv, url, stream):
    body = {"model": f"{LLAMA}", "prompt": QUESTION, "stream": stream, "raw": True,
            "format": "json", "keep_alive": "5m", "options": {
                "top_p": 0.9, "num_ctx": 4096, "stop": ["zzz"], "top_k": 20}}
    before = len(srv.requests)
    r = httpx.post(f"{url}/api/generate", json=body, timeout=30)
    assert r.status_code == 200, r.text
    got = sent(srv, before, "/api/generate")
    assert got == [body]  # nothing added: no temperature when the client sent none
    assert "temperature" not in got[0]["options"]


def test_routed_relay_sends_the_request_as_sent(srv, url):
    body = {"model": "avengers-route", "messages": user(), "stream": False,
            "options": {"num_ctx": 2048, "top_p": 0.3}, "think": False}
    before = len(srv.requests)
    r = httpx.post(f"{url}/api/chat", json=body, timeout=30)
    assert r.status_code == 200 and r.json()["avengers"]["models"] == [QWEN]
    assert sent(srv, before, "/api/chat") == [{**body, "model": QWEN}]


# -- the reply as it was -------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", [OA_LLAMA, LLAMA, "avengers-route"])
def test_truncation_is_relayed_to_openai_clients(srv, url, mixed, model, stream):
    for name in (QWEN, LLAMA):
        srv.models[name] = ModelScript(replies=["The answer is 41."], truncated=True)
    base = mixed if model == "avengers-route" else url
    oai = clients(base, 30)[0]
    res = oai.chat.completions.create(model=model, messages=user(), stream=stream,
                                      max_tokens=3)
    if stream:
        chunks = list(res)
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
        assert finishes[-1] == "length" and set(finishes[:-1]) == {None}
    else:
        assert res.choices[0].finish_reason == "length"
        assert res.usage.completion_tokens == 4  # the engine's count, relayed


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", [LLAMA, OA_LLAMA, "avengers-route"])
def test_truncation_is_relayed_to_ollama_clients(srv, url, mixed, model, stream):
    for name in (QWEN, LLAMA):
        srv.models[name] = ModelScript(replies=["The answer is 41."], truncated=True)
    oll = clients(mixed if model == "avengers-route" else url, 30)[1]
    res = oll.chat(model=model, messages=user(), stream=stream, options={"num_predict": 3})
    last = list(res)[-1] if stream else res
    assert last.done and last.done_reason == "length"
    assert last.eval_count == 4 and last.prompt_eval_count == len(QUESTION.split())


@pytest.mark.parametrize("model", [OA_LLAMA, LLAMA])
def test_usage_chunk_is_relayed_when_asked(url, model):
    oai = clients(url, 30)[0]
    chunks = list(oai.chat.completions.create(
        model=model, messages=user(), stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4
    assert chunks[-1].usage.prompt_tokens == len(QUESTION.split())
    assert chunks[-1].model_extra["avengers"]["models"]  # the last chunk carries the field
    no_usage = list(oai.chat.completions.create(model=model, messages=user(), stream=True))
    assert all(c.usage is None for c in no_usage)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", [OA_LLAMA, LLAMA])
def test_openai_tool_calls_and_tool_conversations(srv, url, model, stream):
    srv.models[LLAMA] = ModelScript(replies=["The sum is 42."], tool_call=CALL)
    oai = clients(url, 30)[0]
    res = oai.chat.completions.create(model=model, messages=user(), tools=[TOOL],
                                      stream=stream)
    if stream:
        chunks = list(res)
        calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or ()]
        name = "".join(tc.function.name or "" for tc in calls)
        args = "".join(tc.function.arguments or "" for tc in calls)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices][-1]
    else:
        call = res.choices[0].message.tool_calls[0]
        name, args, finish = call.function.name, call.function.arguments, \
            res.choices[0].finish_reason
    assert (name, json.loads(args), finish) == ("add", CALL["arguments"], "tool_calls")
    # the follow-up turn: an assistant turn with content null and a tool message
    srv.models[LLAMA] = ModelScript(replies=["The sum is 42."])
    res = oai.chat.completions.create(model=model, messages=tool_conversation(),
                                      tools=[TOOL], stream=stream)
    text = "".join(c.choices[0].delta.content or "" for c in res if c.choices) if stream \
        else res.choices[0].message.content
    assert text == "The sum is 42."


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", [LLAMA, OA_LLAMA])
def test_ollama_tool_calls(srv, url, model, stream):
    srv.models[LLAMA] = ModelScript(replies=["unused"], tool_call=CALL)
    oll = clients(url, 30)[1]
    res = oll.chat(model=model, messages=user(), tools=[TOOL], stream=stream)
    parts = list(res) if stream else [res]
    calls = [c for p in parts for c in p.message.tool_calls or ()]
    assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [
        ("add", CALL["arguments"])]
    assert parts[-1].done


@pytest.mark.parametrize("model", [OA_LLAMA, LLAMA])
def test_logprobs_are_relayed(url, model):
    oai = clients(url, 30)[0]
    res = oai.chat.completions.create(model=model, messages=user(), logprobs=True)
    tokens = res.choices[0].logprobs.content
    assert "".join(t.token for t in tokens) == res.choices[0].message.content
    assert all(t.logprob == -0.5 for t in tokens)


def test_structured_output_is_relayed(srv, url):
    srv.models[LLAMA] = ModelScript(replies=['{"answer": 42}'])
    oai = clients(url, 30)[0]
    schema = {"type": "object", "properties": {"answer": {"type": "number"}}}
    before = len(srv.requests)
    res = oai.chat.completions.create(model=LLAMA, messages=user(), response_format={
        "type": "json_schema", "json_schema": {"name": "a", "schema": schema}})
    assert json.loads(res.choices[0].message.content) == {"answer": 42}
    assert sent(srv, before, "/api/chat")[0]["format"] == schema  # OpenAI → Ollama mapped


# -- across protocols ----------------------------------------------------------------------


def test_openai_fields_are_mapped_for_an_ollama_engine(srv, url):
    before = len(srv.requests)
    clients(url, 30)[0].chat.completions.create(
        model=LLAMA, messages=user(), stop="zzz", max_tokens=9, top_p=0.4, seed=2,
        temperature=0.2, response_format={"type": "json_object"}, reasoning_effort="low",
        presence_penalty=0.5, user="someone")
    assert sent(srv, before, "/api/chat") == [{
        "model": LLAMA, "stream": False, "messages": user(), "format": "json", "think": "low",
        "options": {"stop": ["zzz"], "num_predict": 9, "top_p": 0.4, "seed": 2,
                    "temperature": 0.2, "presence_penalty": 0.5}}]


def test_ollama_fields_are_mapped_for_an_openai_engine(srv, url):
    before = len(srv.requests)
    res = clients(url, 30)[1].chat(
        model=OA_LLAMA, messages=user(), format="json", think="high",
        options={"num_predict": 9, "stop": ["zzz"], "top_k": 5, "seed": 1, "temperature": 0})
    assert res.message.content == "The answer is 41." and res.done_reason == "stop"
    assert sent(srv, before, "/v1/chat/completions") == [{
        "model": LLAMA, "stream": False, "messages": user(),
        "response_format": {"type": "json_object"},
        "reasoning_effort": "high", "max_tokens": 9, "stop": ["zzz"], "top_k": 5, "seed": 1,
        "temperature": 0}]


@pytest.mark.parametrize("stream", [False, True])
def test_ollama_generate_in_front_of_an_openai_engine(url, stream):
    oll = clients(url, 30)[1]
    res = oll.generate(model=OA_LLAMA, prompt=QUESTION, system="Be brief.", stream=stream)
    parts = list(res) if stream else [res]
    assert "".join(p.response for p in parts) == "The answer is 41."
    assert parts[-1].done and parts[-1].done_reason == "stop" and parts[-1].eval_count == 4


def test_images_are_mapped_both_ways(srv, url):
    png = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9aw"
           "AAAABJRU5ErkJggg==")
    before = len(srv.requests)
    clients(url, 30)[1].chat(model=OA_LLAMA, messages=[
        {"role": "user", "content": "What is this?", "images": [png]}])
    parts = sent(srv, before, "/v1/chat/completions")[0]["messages"][0]["content"]
    assert parts[1] == {"type": "image_url",
                        "image_url": {"url": f"data:image/png;base64,{png}"}}
    before = len(srv.requests)
    clients(url, 30)[0].chat.completions.create(model=LLAMA, messages=[{
        "role": "user", "content": [{"type": "text", "text": "What is this?"}, {
            "type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}]}])
    assert sent(srv, before, "/api/chat")[0]["messages"][0]["images"] == [png]


@pytest.mark.parametrize("stream", [False, True])
def test_a_field_without_counterpart_is_a_clear_400(url, stream):
    oai, oll = clients(url, 30)
    with pytest.raises(openai.BadRequestError, match="logit_bias: no counterpart"):
        oai.chat.completions.create(model=LLAMA, messages=user(), stream=stream,
                                    logit_bias={"1": 5})
    with pytest.raises(openai.BadRequestError, match="tool_choice"):
        oai.chat.completions.create(model=LLAMA, messages=user(), stream=stream,
                                    tools=[TOOL], tool_choice="required")
    with pytest.raises(ollama.ResponseError) as e:
        res = oll.chat(model=OA_LLAMA, messages=user(), stream=stream,
                       options={"num_ctx": 4096})
        list(res) if stream else res
    assert e.value.status_code == 400 and "options.num_ctx" in e.value.error


def test_an_engine_failure_is_a_502_naming_its_status(srv, url):
    srv.models[LLAMA] = ModelScript(fail="http500")
    r = httpx.post(f"{url}/v1/chat/completions", timeout=30, json={
        "model": OA_LLAMA, "messages": user()})
    assert r.status_code == 502 and "HTTP 500" in r.json()["error"]["message"]
    r = httpx.post(f"{url}/api/chat", timeout=30, json={
        "model": LLAMA, "messages": user(), "stream": False})
    assert r.status_code == 502 and "HTTP 500" in r.json()["error"]


def test_streamed_relay_has_no_added_chunk(url):
    r = httpx.post(f"{url}/v1/chat/completions", timeout=30, json={
        "model": OA_LLAMA, "messages": user(), "stream": True})
    events = sse(r.text)
    # the fake sends 5 content chunks and the finish chunk: relayed one for one
    assert [e["choices"][0]["delta"].get("content") for e in events] == [
        "The ", "answ", "er i", "s 41", ".", None]
    assert all(e["model"] == OA_LLAMA for e in events)
    assert "avengers" in events[-1] and not any("avengers" in e for e in events[:-1])
    r = httpx.post(f"{url}/api/chat", timeout=30, json={"model": LLAMA, "messages": user()})
    lines = ndjson(r.text)
    assert "".join(x["message"]["content"] for x in lines) == "The answer is 41."
    assert lines[-1]["done"] and lines[-1]["avengers"]["cluster"] is None


def test_ollama_tool_conversation_is_mapped_for_an_openai_engine(srv, url):
    before = len(srv.requests)
    res = clients(url, 30)[1].chat(model=OA_LLAMA, tools=[TOOL], messages=[
        *user(), {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "add", "arguments": {"a": 40, "b": 2}}}]},
        {"role": "tool", "content": "42", "tool_name": "add"}])
    assert res.message.content == "The answer is 41."
    got = sent(srv, before, "/v1/chat/completions")[0]["messages"]
    call = got[1]["tool_calls"][0]
    assert got[1]["content"] is None and call["type"] == "function"
    assert json.loads(call["function"]["arguments"]) == {"a": 40, "b": 2}
    assert got[2] == {"role": "tool", "content": "42", "tool_call_id": call["id"]}


def test_a_chats_top_level_system_prompt_is_mapped(srv, url):
    before = len(srv.requests)  # Open WebUI sends one to its Ollama connections
    r = httpx.post(f"{url}/api/chat", timeout=30, json={
        "model": OA_LLAMA, "messages": user(), "system": "Be brief.", "stream": False})
    assert r.status_code == 200, r.text
    assert sent(srv, before, "/v1/chat/completions")[0]["messages"] == [
        {"role": "system", "content": "Be brief."}, *user()]


def test_a_remote_image_url_cannot_reach_an_ollama_engine(url):
    with pytest.raises(openai.BadRequestError, match="data:image"):
        clients(url, 30)[0].chat.completions.create(model=LLAMA, messages=[{
            "role": "user", "content": [{"type": "image_url", "image_url": {
                "url": "https://example.com/cat.png"}}]}])


JUNK = [
    ("/v1/chat/completions", {"model": LLAMA, "messages": "hi"}),
    ("/v1/chat/completions", {"model": LLAMA, "messages": [{"role": "assistant",
                                                            "tool_calls": 5}]}),
    ("/v1/chat/completions", {"model": OA_LLAMA, "messages": [{"role": "user",
                                                               "content": [1, 2]}]}),
    ("/v1/chat/completions", {"model": "avengers", "messages": [{"role": "user",
                                                                 "content": "x"}],
                              "response_format": "json", "stop": 5}),
    ("/v1/chat/completions", {"model": LLAMA, "messages": [{"role": "user", "content": "x"}],
                              "response_format": {"type": "json_schema"}}),
    ("/v1/completions", {"model": "avengers", "prompt": [1, 2]}),
    ("/v1/embeddings", {"model": "avengers", "input": 5}),
    ("/api/chat", {"model": OA_LLAMA, "messages": [{"role": "user", "content": "x",
                                                    "images": "abc"}]}),
    ("/api/chat", {"model": OA_LLAMA, "messages": [{"role": "assistant", "content": "",
                                                    "tool_calls": {"a": 1}}]}),
    ("/api/chat", {"model": OA_LLAMA, "messages": [{"role": "tool", "content": "1"}]}),
    ("/api/chat", {"model": "avengers", "messages": [{"role": "user", "content": "x"}],
                   "format": 5}),
    ("/api/generate", {"model": OA_LLAMA, "prompt": "x", "images": ["%%%"], "stream": False}),
    ("/api/generate", {"model": OA_LLAMA, "prompt": "x", "suffix": "y"}),
    ("/api/embed", {"model": "avengers", "input": []}),
    ("/api/show", {"model": 5}),
]


@pytest.mark.parametrize(("path", "body"), JUNK)
def test_malformed_fields_never_give_a_500(url, path, body):
    r = httpx.post(f"{url}{path}", json=body, timeout=30)
    assert r.status_code in (200, 400), r.text
    if r.status_code == 400:
        error = r.json()["error"]
        message = error["message"] if isinstance(error, dict) else error
        assert ":" in message and "\n" not in message  # one line naming the field
