"""Issue 22, busy and warming engines: HTTP 429 (with Retry-After) and 503 (Ollama's full
queue, llama.cpp loading its model) are waited for and retried within the sample's time,
said once in the vote's notes; never a silent loss, never an endless wait. Both protocols
run against the scripted server (tests/fake_ollama.py) over real HTTP."""

from __future__ import annotations

import email.utils
import time

import pytest

from avengers_core.backends import Timeouts
from avengers_core.backends.endpoints import Engines
from avengers_core.backends.openai import OpenAIBackend
from avengers_core.backends.retry import parse_retry_after
from avengers_core.vote.events import SampleStarted
from avengers_core.vote.run import VoteRun
from tests.support.fake_ollama import FakeOllama, ModelScript
from tests.support.serve_util import clients, serving
from tests.test_hardening_ollama import GOOD, GRACE, nothing_left_behind

T = Timeouts(connect=2, first_token=5, total=30)


def engines(url: str, protocol: str, timeouts: Timeouts = T):
    """The engines for `protocol` ("ollama" or "openai") at the fake server's `url`."""
    if protocol == "ollama":
        return url
    return Engines(OpenAIBackend(url + "/v1", timeouts, supports_n=False))


def chats(srv: FakeOllama) -> int:
    return sum(r["path"] in ("/api/chat", "/v1/chat/completions") for r in srv.requests)


@pytest.mark.parametrize("value,seconds", [("7", 7.0), (" 2.5 ", 2.5), ("0", 0.0),
                                           ("-3", 0.0), ("", None), (None, None),
                                           ("soon", None), ("inf", None), ("nan", None)])
def test_retry_after_seconds(value, seconds):
    assert parse_retry_after(value) == seconds


def test_retry_after_http_date():
    now = time.time()
    later = email.utils.formatdate(now + 90, usegmt=True)
    assert parse_retry_after(later, now=now) == pytest.approx(90, abs=1)
    assert parse_retry_after(email.utils.formatdate(now - 90, usegmt=True), now=now) == 0.0


@pytest.mark.parametrize("protocol", ["ollama", "openai"])
@pytest.mark.parametrize("mode,retry_after,status", [("http503", "1", 503),
                                                     ("http429", "1", 429),
                                                     ("http503", None, 503)])
def test_a_busy_engine_is_waited_for_and_every_sample_answers(protocol, mode, retry_after,
                                                              status):
    script = ModelScript(replies=["#### 42"], busy_first=2, busy_mode=mode,
                         retry_after=retry_after)
    with FakeOllama({GOOD: script}) as srv, nothing_left_behind(srv):
        start = time.monotonic()
        result = VoteRun(engines(srv.url, protocol), [GOOD], "q", samples=3, concurrency=1,
                         timeouts=T).run()
        took = time.monotonic() - start
        sent = chats(srv)
    assert [s.error for s in result.samples] == [None] * 3
    assert result.answer == "42" and result.tally.votes == {"42": 3}
    assert sent == 5  # two busy answers, then the three samples
    what = "rate limited" if status == 429 else "busy or loading the model"
    waited = 2.0 if retry_after == "1" else 3.0  # Retry-After 1 s twice; else backoff 1 + 2 s
    busy = [n for n in result.notes if f"HTTP {status}" in n]
    assert busy == [f"{srv.url}{'/v1' if protocol == 'openai' else ''} answered HTTP {status} "
                    f"({what}) 2 times; the samples waited {waited:g} s in all and were sent "
                    "again"]
    assert waited <= took < waited + GRACE


@pytest.mark.parametrize("protocol", ["ollama", "openai"])
def test_an_engine_busy_for_the_whole_sample_time_fails_it_with_the_reason(protocol):
    script = ModelScript(fail="http503", retry_after="1")
    short = Timeouts(connect=2, first_token=5, total=3)
    with FakeOllama({GOOD: script}) as srv, nothing_left_behind(srv):
        start = time.monotonic()
        result = VoteRun(engines(srv.url, protocol, short), [GOOD], "q", samples=2,
                         concurrency=2, timeouts=short).run()
        took = time.monotonic() - start
    for s in result.samples:
        assert s.error.startswith("HTTP 503: "), s.error
        assert "not retried: waiting 1 s would pass the sample's time" in s.error, s.error
        assert "\n" not in s.error and len(s.error) <= 160
    assert 2.0 <= took < short.total + GRACE  # it waited while time was left, then stopped
    assert any("answered HTTP 503" in n for n in result.notes)


@pytest.mark.parametrize("protocol", ["ollama", "openai"])
def test_a_retry_after_past_the_sample_time_fails_at_once(protocol):
    script = ModelScript(fail="http429", retry_after="3600")
    with FakeOllama({GOOD: script}) as srv:
        start = time.monotonic()
        result = VoteRun(engines(srv.url, protocol), [GOOD], "q", samples=1, timeouts=T).run()
        took = time.monotonic() - start
    error = result.samples[0].error
    assert error.startswith("HTTP 429") and "waiting 3600 s would pass" in error, error
    assert took < GRACE and chats(srv) == 1


def test_cancel_ends_a_wait_for_a_busy_engine_within_a_second():
    script = ModelScript(fail="http503", retry_after="120")
    long = Timeouts(connect=2, first_token=5, total=600)
    with FakeOllama({GOOD: script}) as srv, nothing_left_behind(srv):
        run = VoteRun(srv.url, [GOOD], "q", samples=2, concurrency=2, timeouts=long)
        events = run.events()
        started = 0
        for ev in events:
            started += isinstance(ev, SampleStarted)
            if started == 2:
                break
        deadline = time.monotonic() + 60
        while chats(srv) < 2 and time.monotonic() < deadline:  # both are waiting now
            time.sleep(0.02)
        assert chats(srv) == 2
        start = time.monotonic()
        run.cancel()
        for _ in events:
            pass
        took = time.monotonic() - start
    assert run.result.cancelled and took < 1.0 + GRACE / 5
    assert {s.error for s in run.result.samples} == {"cancelled"}


def test_serve_says_in_the_avengers_field_that_it_waited(tmp_path, monkeypatch):
    from tests.support.profiles import MATH, build_profile

    monkeypatch.setenv("AVENGERS_CACHE_DIR", str(tmp_path / "cache"))
    models = {"qwen2.5:7b-instruct": ModelScript(replies=["#### 42"], busy_first=1,
                                                 retry_after="0"),
              "llama3.1:8b": ModelScript(replies=["The answer is 41."]),
              "nomic-embed-text": ModelScript()}
    with FakeOllama(models) as srv:
        profile = build_profile(srv.url, tmp_path / "profile")
        with serving([str(profile), "--host", srv.url, "--samples", "2"]) as url:
            oai = clients(url, 60)[0]
            res = oai.chat.completions.create(  # the vote's samples wait (a relay is faithful)
                model="avengers", messages=[{"role": "user", "content": MATH[0]}])
            field = res.model_extra["avengers"]
    assert res.choices[0].message.content == "#### 42"
    assert len(field["notes"]) == 1, field["notes"]
    assert "answered HTTP 503 (busy or loading the model) once" in field["notes"][0]
