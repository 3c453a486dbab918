"""Votes that stop when decided (issue 23), and engines that interrupt streams (issue 22).

The scripted server answers seed i with reply i (`ModelScript.replies`), so a vote drawn
one sample at a time sees the replies in a fixed order.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from avengers_core.backends.base import TIMER_PREFIX, Timeouts
from avengers_core.backends.endpoints import Engines
from avengers_core.backends.openai import OpenAIBackend
from avengers_core.pipeline import VotePlan, start_vote
from avengers_core.vote.events import SampleStarted, Settled
from avengers_core.vote.run import THREAD_PREFIX, VoteRun
from avengers_core.vote.stopping import (
    EARLY_STOPS,
    check_early_stop,
    expected_draws,
    is_decided,
    leader_probability,
    should_stop,
)
from avengers_core.vote.tally import Sample, count_votes
from tests.support.fake_ollama import FakeOllama, ModelScript

TOP, NEXT = "qwen2.5:7b-instruct", "llama3.1:8b"
SIX_THEN_FOUR = ["#### 42"] * 6 + ["#### 41"] * 4
ALTERNATING = ["#### 42", "#### 41"] * 5


def our_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate()
            if t.name.startswith(THREAD_PREFIX) or t.name.startswith(TIMER_PREFIX)]


def chats(srv: FakeOllama) -> list[dict]:
    return [r for r in srv.requests if r["path"] in ("/api/chat", "/v1/chat/completions")]


# -- the rules --------------------------------------------------------------------------


def test_decided_needs_the_leader_out_of_reach():
    assert not is_decided([5], 5)  # a new answer could still tie 5–5
    assert is_decided([6], 4)
    assert not is_decided([6, 2], 4)  # 2 + 4 = 6 ties
    assert is_decided([7, 2], 4)
    assert is_decided([], 0) and not is_decided([], 3)


@pytest.mark.parametrize("k", range(0, 8))
def test_leader_probability_matches_the_beta_closed_form(k):
    # one answer seen k times: Dirichlet(k + 1, 1) is Beta(k + 1, 1), and
    # P(p > 1/2) = 1 - 2^-(k+1)
    assert leader_probability([k]) == pytest.approx(1 - 0.5 ** (k + 1), abs=1e-6)


def test_leader_probability_of_a_tie_is_below_a_half():
    assert leader_probability([3, 3]) < 0.5
    assert leader_probability([6, 1]) > leader_probability([6, 3]) > leader_probability([4, 3])
    with pytest.raises(ValueError):
        leader_probability([-1])


def test_confident_waits_for_three_samples():
    assert should_stop("confident", [2], 8, 0.5) is None  # P = 0.875, but only 2 samples
    assert should_stop("confident", [3], 7, 0.9) == "confident"
    assert should_stop("off", [9], 1) is None
    with pytest.raises(ValueError, match="unknown early stop"):
        check_early_stop("sometimes", 0.9)
    with pytest.raises(ValueError, match="between 0 and 1"):
        check_early_stop("confident", 1.0)


def test_expected_draws_of_a_perfect_model():
    assert expected_draws(1.0, 10, "off") == 10
    assert expected_draws(1.0, 10, "decided") == pytest.approx(6)  # 6 > 0 + 4
    assert expected_draws(1.0, 10, "confident") == pytest.approx(4)  # 1 - 2^-5 ≥ 0.95
    assert expected_draws(0.5, 10, "confident") <= expected_draws(0.5, 10, "decided") < 10


def _replay(answers: list[str], rule: str) -> tuple[str | None, int]:
    drawn: list[Sample] = []
    for i, a in enumerate(answers):
        drawn.append(Sample(i, "m", 0, i, answer=a, arrival=i))
        votes = list(count_votes(drawn).votes.values())
        if should_stop(rule, votes, len(answers) - len(drawn)):
            break
    return count_votes(drawn).winner, len(drawn)


@given(st.lists(st.sampled_from("abc"), min_size=1, max_size=12))
def test_decided_gives_the_answer_of_all_samples(answers):
    full = count_votes([Sample(i, "m", 0, i, answer=a, arrival=i)
                        for i, a in enumerate(answers)]).winner
    winner, drawn = _replay(answers, "decided")
    assert winner == full and drawn <= len(answers)


# -- the vote, against the scripted server ---------------------------------------------


@pytest.fixture
def srv():
    with FakeOllama({TOP: ModelScript(replies=SIX_THEN_FOUR),
                     NEXT: ModelScript(replies=["#### 41"]),
                     "alt": ModelScript(replies=ALTERNATING)}) as s:
        yield s


def test_decided_stops_after_six_of_ten(srv):
    run = VoteRun(srv.url, [TOP], "q", samples=10, concurrency=1, early_stop="decided")
    events = list(run.events())
    result = run.result
    assert result.answer == "42"
    assert (result.drawn, result.asked, result.stopped) == (6, 10, "decided")
    assert len(chats(srv)) == 6
    settled = [e for e in events if isinstance(e, Settled)]
    assert settled == [Settled("decided", 6, 10, ())]
    d = result.to_dict()
    assert (d["drawn"], d["asked"], d["stopped"]) == (6, 10, "decided")


def test_off_draws_all_ten(srv):
    result = VoteRun(srv.url, [TOP], "q", samples=10, concurrency=1, early_stop="off").run()
    assert (result.answer, result.drawn, result.stopped) == ("42", 10, "complete")
    assert result.tally.votes == {"42": 6, "41": 4}


def test_alternating_answers_draw_all_ten(srv):
    result = VoteRun(srv.url, ["alt"], "q", samples=10, concurrency=1,
                     early_stop="decided").run()
    assert (result.drawn, result.stopped) == (10, "complete")
    assert result.answer == "42"  # the 5–5 tie goes to the first arrival, as before


def test_confident_stops_by_the_sixth(srv):
    result = VoteRun(srv.url, [TOP], "q", samples=10, concurrency=1,
                     early_stop="confident").run()
    assert result.answer == "42" and result.stopped == "confident"
    assert 3 <= result.drawn <= 6


def test_settling_cancels_samples_in_flight_and_leaves_no_request_open():
    # seeds 0-5 answer at once, 6-9 never: the vote is decided after six, while the wave's
    # other samples hang on the server
    script = ModelScript(replies=SIX_THEN_FOUR,
                         fail_seeds={6: "hang", 7: "hang", 8: "hang", 9: "hang"})
    with FakeOllama({TOP: script}) as srv:
        run = VoteRun(srv.url, [TOP], "q", samples=10, concurrency=4, early_stop="decided",
                      timeouts=Timeouts(first_token=300))
        t0 = time.monotonic()
        events = list(run.events())
        took = time.monotonic() - t0
        result = run.result
        assert result.answer == "42" and result.drawn == 6 and result.stopped == "decided"
        assert not result.cancelled and all(s.error is None for s in result.samples)
        settled = next(e for e in events if isinstance(e, Settled))
        started = {e.sample for e in events if isinstance(e, SampleStarted)}
        assert settled.dropped and set(settled.dropped) == started - set(range(6))
        assert took < 60  # the hanging samples were aborted, not awaited
        assert srv.wait_closed(timeout=30), f"{srv.open_connections} connections left open"
        assert srv.in_flight == 0
    assert our_threads() == []


def test_an_n_request_asks_for_the_wave_not_for_n():
    with FakeOllama({TOP: ModelScript(replies=SIX_THEN_FOUR)}) as srv:
        engines = Engines(OpenAIBackend(srv.url + "/v1", supports_n=True))
        result = VoteRun(engines, [TOP], "q", samples=10, concurrency=4,
                         early_stop="decided").run()
        asked = [r.get("n", 1) for r in chats(srv)]
    # waves of 4: seeds 0-3 (4 × 42) are not decided (4 ≤ 0 + 6); seeds 4 and 5 of the
    # second wave are (6 > 0 + 4). A third wave may have started meanwhile: it is aborted.
    assert asked[:2] == [4, 4] and len(asked) <= 3 and max(asked) <= 4
    assert (result.answer, result.drawn, result.stopped) == ("42", 6, "decided")


def test_model_switch_honours_the_rule(srv):
    # decided after six 42s: 6 > 0 + 4, and the share stays ≥ 0.6 whatever the last 4 say,
    # so the full run would not have asked the next model either
    result = VoteRun(srv.url, [TOP, NEXT], "q", samples=10, concurrency=1, strategy="switch",
                     threshold=0.6, early_stop="decided").run()
    assert (result.answer, result.drawn, result.stopped) == ("42", 6, "decided")
    assert {r["model"] for r in chats(srv)} == {TOP}


def test_model_switch_goes_on_when_the_share_could_still_fall(srv):
    # threshold 0.7: after six 42s, four 41s would leave 60 % < 70 %; the next model may
    # be needed, so this model's samples are all drawn
    result = VoteRun(srv.url, [TOP, NEXT], "q", samples=10, concurrency=1, strategy="switch",
                     threshold=0.7, early_stop="decided").run()
    assert Counter(s.model for s in result.samples)[TOP] == 10
    assert result.asked == 20 and NEXT in result.models


def test_pipeline_default_is_decided(srv):
    result = start_vote(srv.url, VotePlan([TOP], "number"), "q", samples=10,
                        concurrency=1).run()
    assert (result.drawn, result.stopped) == (6, "decided")


@pytest.mark.parametrize("rule", EARLY_STOPS)
def test_every_rule_returns_whole_samples(srv, rule):
    result = VoteRun(srv.url, [TOP], "q", samples=10, concurrency=3, early_stop=rule).run()
    assert result.answer == "42" and result.drawn <= result.asked == 10
    assert all(s.error is None and s.text for s in result.samples)


# -- engines that interrupt streams, and n ignored -------------------------------------


def test_streams_cut_by_other_requests_are_drawn_again_one_at_a_time():
    script = ModelScript(replies=["The answer is 42.\n#### 42"], honours_n=False,
                         interrupts=True, token_delay=0.02, chunk=2)
    with FakeOllama({TOP: script}) as srv:
        engines = Engines(OpenAIBackend(srv.url + "/v1", supports_n=False))
        result = VoteRun(engines, [TOP], "q", samples=5, concurrency=4,
                         early_stop="off").run()
        assert result.drawn == 5 and result.answer == "42"
        assert all(s.error is None and s.text.endswith("#### 42") for s in result.samples)
        notes = [n for n in result.notes if "one request at a time" in n]
        assert len(notes) == 1 and srv.url in notes[0]
        assert engines.serial_gate(srv.url + "/v1") is not None
        # once found out, the engine gets one request at a time: a second vote loses nothing
        again = VoteRun(engines, [TOP], "q", samples=4, concurrency=4, early_stop="off").run()
        assert all(s.error is None for s in again.samples) and again.drawn == 4
        assert not any("one request at a time" in n for n in again.notes)


def test_a_cut_stream_with_nothing_else_in_flight_stays_a_failure():
    with FakeOllama({TOP: ModelScript(fail="cut", honours_n=False)}) as srv:
        engines = Engines(OpenAIBackend(srv.url + "/v1", supports_n=False))
        result = VoteRun(engines, [TOP], "q", samples=2, concurrency=1).run()
    assert [s.error for s in result.samples] == [
        "stream ended before the choice finished (no [DONE])"] * 2
    assert engines.serial_gate(srv.url + "/v1") is None


def test_n_ignored_is_noted_once_per_endpoint():
    with FakeOllama({TOP: ModelScript(honours_n=False)}) as srv:
        engines = Engines(OpenAIBackend(srv.url + "/v1"))
        result = VoteRun(engines, [TOP], "q", samples=6, concurrency=3,
                         early_stop="off").run()
    assert result.drawn == 6 and all(s.error is None for s in result.samples)
    assert [n for n in result.notes if "ignores n" in n] == [
        f"{srv.url}/v1 returned 1 of 2 choices asked (it ignores n); "
        "drew the rest one request each"]


def test_a_reply_the_engine_ended_itself_is_whole_without_a_full_stop():
    """`7 + 3 = 10` is SmolLM2's usual answer: finished by the engine, it states 10; cut by
    the token limit, it states nothing (its last number may be a step)."""
    with FakeOllama({TOP: ModelScript(replies=["7 + 3 = 10"]),
                     NEXT: ModelScript(replies=["7 + 3 = 10"], truncated=True)}) as srv:
        whole = VoteRun(srv.url, [TOP], "What is 7 + 3?", samples=1).run()
        cut = VoteRun(srv.url, [NEXT], "What is 7 + 3?", samples=1).run()
    assert whole.answer == "10" and whole.samples[0].no_answer is None
    assert cut.answer is None and cut.samples[0].no_answer.startswith("reply cut off")
