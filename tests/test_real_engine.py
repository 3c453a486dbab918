"""A real engine and a real model (issue 10): llama-cpp-python's server with SmolLM2-135M.

These run in CI by default. They assert structure and behaviour (tokens stream, every
sample has its text, seed and endpoint, cancel and a dying engine are handled), never the
tiny model's answers.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from avengers_core.backends.endpoints import Engines
from avengers_core.backends.openai import OpenAIBackend
from avengers_core.cli import main
from avengers_core.vote.events import SampleStarted, Token
from avengers_core.vote.run import SETTLED, VoteRun
from tests.support.engine import MODEL, llama_server

pytestmark = pytest.mark.engine
QUERY = "Tom has 3 apples and buys 4 more. How many apples does he have?"


@pytest.fixture(scope="module")
def engine():
    with llama_server() as (url, _):
        yield url


def test_five_sample_vote_streams_real_tokens(engine):
    run = VoteRun(Engines(OpenAIBackend(engine, supports_n=False)), [MODEL], QUERY,
                  samples=5, concurrency=1, seed=100, options={"max_tokens": 48})
    tokens: dict[int, int] = {}
    for ev in run.events():
        if isinstance(ev, Token):
            tokens[ev.sample] = tokens.get(ev.sample, 0) + 1
    result = run.result
    assert len(result.samples) == 5 and not result.cancelled
    assert sorted(tokens) == [0, 1, 2, 3, 4]  # every sample streamed
    for s in result.samples:
        assert s.error is None and s.text.strip()
        assert s.endpoint == engine
    assert sorted(s.seed for s in result.samples) == [100, 101, 102, 103, 104]


def test_n_from_an_engine_that_ignores_it_still_yields_every_sample(engine):
    result = VoteRun(Engines(OpenAIBackend(engine)), [MODEL], QUERY, samples=5, concurrency=1,
                     options={"max_tokens": 24}).run()
    assert len(result.samples) == 5
    assert all(s.error is None and s.text.strip() for s in result.samples)
    assert any("ignores n" in note for note in result.notes)


def test_cancel_during_generation_stops_within_a_second(engine):
    run = VoteRun(Engines(OpenAIBackend(engine, supports_n=False)), [MODEL],
                  "Write a long story about a dragon.", samples=2, concurrency=2,
                  options={"max_tokens": 600})
    events = run.events()
    for ev in events:
        if isinstance(ev, Token):
            break
    t0 = time.monotonic()
    run.cancel()
    rest = list(events)
    assert time.monotonic() - t0 < 1.0
    assert rest[-1].result.cancelled
    # the engine still answers afterwards
    text = OpenAIBackend(engine).stream_call(MODEL, "Say hi.", options={"max_tokens": 8}).run()
    assert isinstance(text, str)


def test_a_decided_vote_reports_what_it_drew_and_its_samples_are_whole(engine):
    """Issue 23: the default rule on the real engine (structure only, not the answers)."""
    result = VoteRun(Engines(OpenAIBackend(engine, supports_n=False)), [MODEL], QUERY,
                     samples=5, concurrency=2, early_stop="decided",
                     options={"max_tokens": 24}).run()
    assert result.drawn == len(result.samples) <= result.asked == 5
    assert result.stopped in ("decided", "complete") and not result.cancelled
    # whole: no sample in the result is one the stop cut short; every one ran to its end
    assert all(s.error != SETTLED for s in result.samples)
    assert [s for s in result.samples if s.error is None and s.text.strip()]
    for s in result.samples:
        assert s.endpoint == engine and (s.error is None or "\n" not in s.error)
    assert result.to_dict()["drawn"] == result.drawn


def test_an_engine_that_interrupts_streams_loses_no_sample():
    """Issue 22: llama-cpp-python's server started as its documentation shows (no
    `--interrupt_requests false`) ends the stream in progress when another request
    arrives; the vote finds it out, runs it one request at a time and draws the cut
    samples again."""
    with llama_server(interrupts=True) as (url, _):
        result = VoteRun(Engines(OpenAIBackend(url, supports_n=False)), [MODEL], QUERY,
                         samples=5, concurrency=4, early_stop="off",
                         options={"max_tokens": 16}).run()
    assert result.drawn == 5 and not result.cancelled
    assert all(s.error is None and s.text.strip() for s in result.samples), [
        s.error for s in result.samples]
    notes = [n for n in result.notes if "one request at a time" in n]
    assert len(notes) == 1 and url in notes[0]


def test_killing_the_engine_mid_stream_gives_each_open_sample_a_reason():
    with llama_server() as (url, proc):
        run = VoteRun(Engines(OpenAIBackend(url, supports_n=False)), [MODEL],
                      "Write a long story about a dragon.", samples=2, concurrency=2,
                      options={"max_tokens": 600})
        events = run.events()
        started = 0
        for ev in events:
            started += isinstance(ev, SampleStarted)
            if isinstance(ev, Token):
                proc.kill()
                break
        done = threading.Event()
        rest = list(events)
        done.set()
    result = rest[-1].result
    failed = [s for s in result.samples if s.error]
    assert started == 2 and failed  # the one streaming at least
    for s in failed:
        assert "\n" not in s.error and len(s.error) <= 160
        assert ("closed the connection" in s.error or "cannot connect" in s.error
                or "stream" in s.error), s.error


def test_the_whole_recipe_on_a_real_local_model(engine, tmp_path, capsys):
    """calibrate on 20 GSM8K questions -> a routing table; fit, route and vote on it."""
    table, profile = tmp_path / "smol.jsonl", tmp_path / "profile"
    code = main(["calibrate", "gsm8k", "--limit", "20", "--models", MODEL, "--backend",
                 "openai", "--host", engine, "--max-tokens", "64", "--out", str(table)])
    assert code == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in table.read_text().splitlines()]
    assert len(rows) == 20 and all(set(r["scores"]) == {MODEL} for r in rows)
    assert all(r["scores"][MODEL] in (0.0, 1.0) and r["host"] == engine for r in rows)
    assert main(["fit", str(table), "--k", "2", "--out", str(profile)]) == 0
    capsys.readouterr()
    assert main(["route", str(profile), QUERY, "--json"]) == 0
    routed = json.loads(capsys.readouterr().out)
    assert routed["models"] == [MODEL]
    code = main(["vote", str(profile), QUERY, "--backend", "openai", "--host", engine,
                 "--samples", "3", "--max-tokens", "48", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code in (0, 1)  # 1: the tiny model gave no number; the vote still completed
    assert len(out["samples"]) == out["drawn"] <= out["asked"] == 3  # it may settle early
    assert out["models"] == [MODEL]
    assert all(s["endpoint"] == engine and s["error"] is None for s in out["samples"])
