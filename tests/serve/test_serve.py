"""`avengers serve` against the scripted Ollama-protocol server, through the official
`openai` and `ollama` clients (and raw HTTP where the `avengers` field must be read).

The profile (tests/support/profiles.py's `build_profile`) routes math questions to
qwen2.5, whose seeded replies are 42, 42, 41: a 6-sample vote is 4 × 42 to 2 × 41.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import httpx
import ollama
import openai
import pytest

from avengers_core.answers.extract import extract
from avengers_core.cli import main
from tests.support.fake_ollama import FakeOllama, ModelScript
from tests.support.net import free_port, stop, wait_http
from tests.support.profiles import MATH, build_profile
from tests.support.serve_util import clients, openai_reply, serving

QWEN = "qwen2.5:7b-instruct"
LLAMA = "llama3.1:8b"
QUESTION = MATH[0]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def scripts() -> dict[str, ModelScript]:
    return {QWEN: ModelScript(replies=["#### 42", "#### 42", "so 41\n#### 41"]),
            LLAMA: ModelScript(replies=["The answer is 41."]),
            "nomic-embed-text": ModelScript()}


@pytest.fixture(scope="module")
def srv():
    with FakeOllama(scripts()) as s:
        yield s


@pytest.fixture(autouse=True)
def fresh_scripts(srv):
    srv.models.update(scripts())  # a test may make a model slow or failing


@pytest.fixture(scope="module")
def profile(srv, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AVENGERS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield build_profile(srv.url, tmp_path_factory.mktemp("serve") / "profile")


@pytest.fixture(scope="module")
def url(srv, profile):
    with serving([str(profile), "--host", srv.url, "--samples", "6", "--keepalive", "0.2",
                  "--early-stop", "off"]) as u:  # every vote draws all 6 (see below for stops)
        yield u


@pytest.fixture
def oai(url):
    return clients(url, 30)[0]


@pytest.fixture
def oll(url):
    return clients(url, 30)[1]


def user(text: str = QUESTION) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def check_vote_field(field: dict, text: str) -> None:
    """The vote's `avengers` field: 4 × 42 to 2 × 41 on qwen2.5, consistent with `text`."""
    assert field["models"] == [QWEN]
    assert isinstance(field["cluster"], int)
    assert field["votes"] == {"42": 4, "41": 2}
    assert field["answer"] == "42" == extract(text, "number")
    assert field["confidence"] == pytest.approx(4 / 6)
    why = field["explanation"]  # the router's own explanation, compact (issue 19)
    assert why["clusters"][0]["id"] == field["cluster"] and why["reason"]
    assert why["prior"]["kind"] in ("global", "task") and why["scores"]


# -- models ------------------------------------------------------------------------------


def test_model_lists_offer_both_router_names_and_the_served_models(oai, oll, url):
    ids = [m.id for m in oai.models.list()]
    assert ids[:2] == ["avengers", "avengers-route"]
    assert {QWEN, LLAMA} <= set(ids)
    # Ollama lists names with their tag (issue 21): `avengers` is `avengers:latest`
    assert [m.model for m in oll.list().models] == [
        i if ":" in i else f"{i}:latest" for i in ids]
    assert oll.show("avengers").details.family == "avengers"
    assert httpx.get(f"{url}/api/version").json()["version"]
    root = httpx.get(url)
    assert root.status_code == 200 and "running" in root.text


# -- the vote ------------------------------------------------------------------------------


def test_openai_vote_whole(oai):
    res = oai.chat.completions.create(model="avengers", messages=user())
    text = res.choices[0].message.content
    check_vote_field(res.model_extra["avengers"], text)
    assert res.model == "avengers" and res.choices[0].finish_reason == "stop"


def test_openai_vote_streamed(oai):
    chunks = list(oai.chat.completions.create(model="avengers", messages=user(), stream=True))
    check_vote_field(*reversed(openai_reply(iter(chunks), stream=True)))
    assert not any("avengers" in (c.model_extra or {}) for c in chunks[:-1])


def test_vote_headers_say_how_it_was_routed(url):
    r = httpx.post(f"{url}/v1/chat/completions", json={"model": "avengers", "messages": user()},
                   timeout=30)
    assert r.status_code == 200
    assert json.loads(r.headers["x-avengers-models"]) == [QWEN]
    assert json.loads(r.headers["x-avengers-cluster"]) == r.json()["avengers"]["cluster"]
    assert json.loads(r.headers["x-avengers-answer"]) == "42"
    assert json.loads(r.headers["x-avengers-votes"]) == {"42": 4, "41": 2}
    assert json.loads(r.headers["x-avengers-confidence"]) == pytest.approx(4 / 6)


def test_ollama_vote_chat_and_generate_whole(oll, url):
    res = oll.chat(model="avengers", messages=user())
    assert extract(res.message.content, "number") == "42" and res.done
    res = oll.generate(model="avengers", prompt=QUESTION)
    assert extract(res.response, "number") == "42"
    raw = httpx.post(f"{url}/api/chat", json={"model": "avengers", "messages": user(),
                                               "stream": False}, timeout=30).json()
    check_vote_field(raw["avengers"], raw["message"]["content"])


def test_ollama_vote_streamed_starts_at_once_with_keepalives(oll, srv, url):
    parts = list(oll.chat(model="avengers", messages=user(), stream=True))
    assert parts[-1].done and not any(p.done for p in parts[:-1])
    assert extract("".join(p.message.content for p in parts), "number") == "42"
    srv.models[QWEN] = ModelScript(replies=["#### 42"], latency=0.8)
    t0 = time.monotonic()
    with httpx.stream("POST", f"{url}/api/generate",
                      json={"model": "avengers", "prompt": QUESTION}, timeout=30) as r:
        lines = []
        for line in r.iter_lines():
            lines.append((time.monotonic() - t0, json.loads(line)))
    first_at, first = lines[0]
    assert first_at < 0.5 and first["done"] is False  # before any sample finished
    waiting = [obj for at, obj in lines if at < 0.75]
    assert len(waiting) >= 3 and all(o["response"] == "" and not o["done"] for o in waiting)
    final = lines[-1][1]
    assert final["done"] is True
    text = "".join(o["response"] for _, o in lines)
    assert final["avengers"]["answer"] == "42" == extract(text, "number")


def test_openai_stream_sends_sse_keepalive_comments(srv, url):
    srv.models[QWEN] = ModelScript(replies=["#### 42"], latency=0.8)
    with httpx.stream("POST", f"{url}/v1/chat/completions", timeout=30,
                      json={"model": "avengers", "messages": user(), "stream": True}) as r:
        lines = [line for line in r.iter_lines() if line]
    assert ": keep-alive" in lines
    assert lines[-1] == "data: [DONE]"
    final = json.loads(lines[-2].removeprefix("data: "))
    assert final["avengers"]["votes"] == {"42": 6}


# -- route only, and passed through ------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_openai_route_and_passthrough(oai, stream):
    for model, expected, routed in [("avengers-route", "#### 42", QWEN),
                                    (LLAMA, "The answer is 41.", LLAMA)]:
        res = oai.chat.completions.create(model=model, messages=user(), stream=stream, seed=0)
        text, field = openai_reply(res, stream)
        assert text == expected
        assert field["models"] == [routed] and field["votes"] == {}
        if model == "avengers-route":
            assert isinstance(field["cluster"], int) and field["answer"] == "42"
        else:
            assert field["cluster"] is None and field["answer"] is None


@pytest.mark.parametrize("stream", [False, True])
def test_ollama_route_and_passthrough(oll, stream):
    for model, expected in [("avengers-route", "#### 42"), (LLAMA, "The answer is 41.")]:
        res = oll.chat(model=model, messages=user(), stream=stream, options={"seed": 0})
        text = "".join(p.message.content for p in res) if stream else res.message.content
        assert text == expected
        res = oll.generate(model=model, prompt=QUESTION, stream=stream, options={"seed": 0})
        text = "".join(p.response for p in res) if stream else res.response
        assert text == expected


def test_request_options_reach_the_engine(oai, srv):
    before = len(srv.requests)
    oai.chat.completions.create(model=LLAMA, messages=user(), seed=7, temperature=0.3,
                                max_tokens=12)
    sent = [r for r in srv.requests[before:] if r["path"] == "/api/chat"][-1]
    assert sent["options"]["seed"] == 7
    assert sent["options"]["temperature"] == pytest.approx(0.3)
    assert sent["options"]["num_predict"] == 12


# -- bad requests, failures ---------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_openai_bad_requests_get_400(oai, stream):
    with pytest.raises(openai.BadRequestError) as e:
        oai.chat.completions.create(model="avengers", messages=[], stream=stream)
    assert "messages" in e.value.message
    with pytest.raises(openai.BadRequestError, match="temperature"):
        oai.chat.completions.create(model="avengers", messages=user(), stream=stream,
                                    temperature=5)
    with pytest.raises(openai.BadRequestError, match="n:"):
        oai.chat.completions.create(model="avengers", messages=user(), stream=stream, n=3)
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.create(model="no-such-model", messages=user(), stream=stream)


@pytest.mark.parametrize("stream", [False, True])
def test_ollama_bad_requests_get_400(oll, stream):
    def send(res):  # a streamed reply is read when iterated
        return list(res) if stream else res

    with pytest.raises(ollama.ResponseError) as e:
        send(oll.chat(model="avengers", messages=[{"role": "assistant", "content": "hi"}],
                      stream=stream))
    assert e.value.status_code == 400 and "user message" in e.value.error
    with pytest.raises(ollama.ResponseError) as e:  # "" is a preload (issue 21); blank is not
        send(oll.generate(model="avengers", prompt="  ", stream=stream))
    assert e.value.status_code == 400 and "prompt" in e.value.error
    with pytest.raises(ollama.ResponseError) as e:
        send(oll.chat(model="no-such-model", messages=user(), stream=stream))
    assert e.value.status_code == 404


def test_malformed_bodies_get_400_or_413_in_each_protocols_shape(url):
    r = httpx.post(f"{url}/v1/chat/completions", content=b"{not json")
    assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]
    r = httpx.post(f"{url}/api/chat", content=b"[1, 2]")
    assert r.status_code == 400 and r.json()["error"] == "request body must be a JSON object"
    big = json.dumps({"model": "avengers", "messages": user("x" * (2 << 20))})
    r = httpx.post(f"{url}/api/chat", content=big)
    assert r.status_code == 413 and "limit" in r.json()["error"]
    r = httpx.get(f"{url}/v1/nowhere")
    assert r.status_code == 404 and r.json()["error"]["message"]


def test_failing_backend_gives_a_clean_error(oai, oll, srv):
    srv.models[QWEN] = ModelScript(fail="http500")
    with pytest.raises(openai.APIStatusError) as e:
        oai.chat.completions.create(model="avengers", messages=user())
    assert e.value.status_code == 502 and "all 6 samples failed" in e.value.message
    with pytest.raises(openai.APIError, match="500"):
        list(oai.chat.completions.create(model="avengers-route", messages=user(), stream=True))
    with pytest.raises(ollama.ResponseError, match="samples failed"):
        list(oll.chat(model="avengers", messages=user(), stream=True))
    assert srv.in_flight == 0


# -- disconnects -------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["avengers", "avengers-route", QWEN])
@pytest.mark.parametrize("stream", [False, True])
def test_client_disconnect_leaves_no_upstream_request_open(srv, url, model, stream):
    httpx.get(f"{url}/api/version")
    baseline = srv.open_connections  # the embedder's kept-alive connection
    srv.models[QWEN] = ModelScript(fail="hang")  # only a cancel ends these requests
    body = {"model": model, "messages": user(), "stream": stream}
    if stream:
        with httpx.stream("POST", f"{url}/api/chat", json=body, timeout=10) as r:
            lines = r.iter_lines()  # kept: dropping it would close the connection now
            next(lines)
            deadline = time.monotonic() + 30  # generous: ends once it holds
            while srv.in_flight == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert srv.in_flight > 0
    else:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}/v1/chat/completions", json=body, timeout=0.6)
    deadline = time.monotonic() + 30  # generous: ends once it holds
    while srv.in_flight and time.monotonic() < deadline:
        time.sleep(0.02)
    assert srv.in_flight == 0
    assert srv.wait_closed(30, still_open=baseline)


# -- keys and binding --------------------------------------------------------------------


def test_api_key_is_required_on_every_request(srv, profile, monkeypatch):
    monkeypatch.setenv("SERVE_TEST_KEY", "s3cret")
    with serving([str(profile), "--host", srv.url, "--samples", "2",
                  "--api-key-env", "SERVE_TEST_KEY"]) as url:
        good = openai.OpenAI(base_url=f"{url}/v1", api_key="s3cret", max_retries=0)
        assert good.chat.completions.create(model=LLAMA, messages=user()).choices
        bad = openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
        with pytest.raises(ollama.ResponseError) as e:
            ollama.Client(host=url).list()
        assert e.value.status_code == 401
        auth = {"Authorization": "Bearer s3cret"}
        assert ollama.Client(host=url, headers=auth).list().models


def test_binding_beyond_loopback_needs_a_key(profile, srv, capsys):
    code = main(["serve", str(profile), "--host", srv.url, "--bind", "0.0.0.0"])
    assert code == 2
    assert "--api-key-env" in capsys.readouterr().err


def test_samples_are_capped(profile, srv, capsys):
    assert main(["serve", str(profile), "--host", srv.url, "--samples", "1000"]) == 2
    assert "--samples must be from 1 to" in capsys.readouterr().err


def test_the_command_serves_until_stopped(srv, profile, tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": ROOT, "AVENGERS_CACHE_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "avengers_core.cli", "serve", str(profile),
                             "--host", srv.url, "--port", str(port), "--samples", "3",
                             "--early-stop", "off"],
                            cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/api/version", timeout=60)
        res = openai.OpenAI(base_url=f"{url}/v1", api_key="-").chat.completions.create(
            model="avengers", messages=user())
        assert res.model_extra["avengers"]["votes"] == {"42": 2, "41": 1}
    finally:
        stop(proc)
        err = proc.stderr.read()
    assert f"http://127.0.0.1:{port}" in err


def test_threads_do_not_outlive_requests(url, oai):
    oai.chat.completions.create(model="avengers", messages=user())
    deadline = time.monotonic() + 30  # generous: ends once it holds
    while time.monotonic() < deadline:
        if not [t for t in threading.enumerate() if t.name.startswith("avengers-serve")
                and t.name != "avengers-serve-test"]:
            break
        time.sleep(0.05)
    assert not [t.name for t in threading.enumerate() if t.name == "avengers-serve"]


def test_a_vote_that_settles_says_so_in_the_avengers_field(srv, profile):
    """Issue 23: serve's default stops a vote once decided; the field says how far it got."""
    srv.models[QWEN] = ModelScript(replies=["#### 42"])
    with serving([str(profile), "--host", srv.url, "--samples", "6"]) as u:
        res = openai.OpenAI(base_url=f"{u}/v1", api_key="-").chat.completions.create(
            model="avengers", messages=user())
    field = res.model_extra["avengers"]
    # one answer: after 4 votes the last 2 cannot catch it (4 > 0 + 2); samples in flight
    # then are cancelled and left out
    assert (field["drawn"], field["asked"], field["stopped"]) == (4, 6, "decided")
    assert field["votes"] == {"42": 4}
