"""Repeated sampling and majority vote, driving the real `ollama` client over loopback HTTP."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from avengers_core.answers.prompts import make_prompt
from avengers_core.backends.base import TIMER_PREFIX, Timeouts
from avengers_core.backends.model_names import pick_local_models
from avengers_core.vote.events import (
    AnswerExtracted,
    ModelStarted,
    RunFinished,
    SampleFinished,
    SampleStarted,
    TallyChanged,
    Token,
)
from avengers_core.vote.run import THREAD_PREFIX, VoteRun
from avengers_core.vote.tally import Sample, count_votes
from tests.support.fake_ollama import FakeOllama, ModelScript

TOP, NEXT = "qwen2.5:7b-instruct", "llama3.1:8b"


def our_threads() -> list[threading.Thread]:
    return [
        t for t in threading.enumerate()
        if t.name.startswith(THREAD_PREFIX) or t.name.startswith(TIMER_PREFIX)
    ]


@pytest.fixture
def srv():
    models = {
        TOP: ModelScript(replies=["So 6*7.\n#### 42", "#### 42", "I get 41.\n#### 41"], chunk=3),
        NEXT: ModelScript(replies=["The answer is 41."]),
        "hang": ModelScript(fail="hang"),
    }
    with FakeOllama(models) as s:
        yield s


def test_majority_found_with_events_in_order(srv):
    run = VoteRun(srv.url, [TOP], "What is 6*7?", samples=10, concurrency=4)
    events = list(run.events())
    assert isinstance(events[0], ModelStarted) and events[0].samples == 10
    assert isinstance(events[-1], RunFinished)
    result = events[-1].result
    # seeds 0..9 -> replies[seed % 3]: 42, 42, 41, 42, 42, 41, 42, 42, 41, 42
    assert result.answer == "42"
    assert result.tally.votes == {"42": 7, "41": 3}
    assert result.confidence == pytest.approx(0.7)
    assert sorted(result.tally.voters["41"]) == [2, 5, 8]
    started = [e.sample for e in events if isinstance(e, SampleStarted)]
    finished = [e.sample.index for e in events if isinstance(e, SampleFinished)]
    assert sorted(started) == sorted(finished) == list(range(10))
    for e in events:
        if isinstance(e, SampleFinished):
            assert started.index(e.sample.index) >= 0
    streamed: dict[int, str] = {}
    for e in events:
        if isinstance(e, Token):
            streamed[e.sample] = streamed.get(e.sample, "") + e.text
    assert all(streamed[s.index] == s.text for s in result.samples)
    assert sum(isinstance(e, AnswerExtracted) for e in events) == 10
    assert [e for e in events if isinstance(e, TallyChanged)][-1].tally == result.tally
    assert our_threads() == []


def test_distinct_seeds_and_default_temperature(srv):
    VoteRun(srv.url, [TOP], "q", samples=6).run()
    chats = [r for r in srv.requests if r["path"] == "/api/chat"]
    assert sorted(r["options"]["seed"] for r in chats) == list(range(6))
    assert {r["options"]["temperature"] for r in chats} == {0.7}
    assert all(r["model"] == TOP for r in chats)


def test_concurrency_is_bounded(srv):
    srv.models[TOP].latency = 0.05
    VoteRun(srv.url, [TOP], "q", samples=8, concurrency=2).run()
    assert 1 <= srv.max_in_flight <= 2


def test_failed_samples_are_reported_and_vote_goes_on(srv):
    srv.models[TOP].fail_seeds = {0: "http500", 3: "cut", 4: "badline"}
    result = VoteRun(srv.url, [TOP], "q", samples=10).run()
    errors = {s.seed: s.error for s in result.samples if s.error}
    assert set(errors) == {0, 3, 4}
    assert "HTTP 500" in errors[0]
    assert "done" in errors[3]
    assert "JSON" in errors[4]
    assert result.tally.failed == 3
    assert result.tally.votes == {"42": 4, "41": 3}  # seeds 1,6,7,9 -> 42; 2,5,8 -> 41
    assert result.answer == "42"


def test_timeouts_are_honoured(srv):
    run = VoteRun(
        srv.url, ["hang"], "q", samples=3, timeouts=Timeouts(connect=2, first_token=0.3, total=30)
    )
    result = run.run()
    assert [s.error for s in result.samples] == ["no first token within 0.3 s"] * 3
    assert result.answer is None and result.confidence == 0.0


def test_missing_model_fails_every_sample(srv):
    result = VoteRun(srv.url, ["missing:1b"], "q", samples=3).run()
    assert all("not found" in s.error for s in result.samples)
    assert result.answer is None


def test_cancel_stops_everything(srv):
    run = VoteRun(
        srv.url, ["hang"], "q", samples=10, concurrency=3, timeouts=Timeouts(first_token=300)
    )
    seen: list[object] = []
    for ev in run.events():
        seen.append(ev)
        if sum(isinstance(e, SampleStarted) for e in seen) == 3 and not run.cancelled:
            threading.Thread(target=run.cancel).start()  # as a stop button would, elsewhere
    result = run.result
    assert result is not None and result.cancelled
    assert len(result.samples) == 3  # the other seven never started
    assert all(s.error == "cancelled" for s in result.samples)
    assert our_threads() == []


def test_closing_the_event_stream_cancels(srv):
    run = VoteRun(srv.url, ["hang"], "q", samples=4, concurrency=4,
                  timeouts=Timeouts(first_token=300))
    events = run.events()
    for ev in events:
        if isinstance(ev, SampleStarted):
            break
    events.close()  # e.g. Streamlit stopped the script mid-loop
    assert run.cancelled
    assert our_threads() == []


def test_context_manager_cancels(srv):
    with VoteRun(srv.url, ["hang"], "q", samples=2, timeouts=Timeouts(first_token=300)) as run:
        events = run.events()
        next(events)  # ModelStarted: workers are running
    assert run.cancelled
    assert our_threads() == []


def test_spread_over_top_models(srv):
    result = VoteRun(srv.url, [TOP, NEXT], "q", samples=5, strategy="spread").run()
    assert Counter(s.model for s in result.samples) == {TOP: 3, NEXT: 2}
    # TOP seeds 0,1,2 -> 42,42,41; NEXT seeds 3,4 -> 41,41
    assert result.tally.votes == {"41": 3, "42": 2}
    assert result.models == [TOP, NEXT]


def test_tie_goes_to_the_better_ranked_model(srv):
    srv.models[TOP].replies = ["#### 42"]
    result = VoteRun(srv.url, [TOP, NEXT], "q", samples=4, strategy="spread").run()
    assert result.tally.votes == {"42": 2, "41": 2}
    assert result.answer == "42"
    assert result.confidence == pytest.approx(0.5)


def test_model_switch_stops_when_confident(srv):
    srv.models[TOP].replies = ["#### 42"]
    result = VoteRun(srv.url, [TOP, NEXT], "q", samples=3, strategy="switch",
                     threshold=0.8).run()
    assert result.models == [TOP]
    assert result.answer == "42"


def test_model_switch_samples_next_model_when_unsure(srv):
    result = VoteRun(srv.url, [TOP, NEXT], "q", samples=3, strategy="switch",
                     threshold=0.8).run()
    assert result.models == [TOP, NEXT]
    # TOP: 42, 42, 41 (share 0.67 < 0.8); NEXT: 41 x3 -> vote over all six
    assert result.tally.votes == {"41": 4, "42": 2}


def test_free_text_vote_picks_largest_group(srv):
    srv.models[TOP].replies = [
        "def add(a, b):\n    return a + b",
        "def add(a, b):\n    return a+b",
        "add = lambda: None",
    ]
    result = VoteRun(srv.url, [TOP], "write add", samples=3, kind="free").run()
    assert result.answer in {"def add(a, b):\n    return a + b", "def add(a, b):\n    return a+b"}
    assert result.tally.votes[result.answer] == 2


def test_choice_prompt_lists_options():
    prompt = make_prompt("Which city?", "choice", ["Paris", "Rome"])
    assert "A. Paris" in prompt and "B. Rome" in prompt and "Answer: <letter>" in prompt


def test_pick_local_models_offers_next_in_ranking():
    ranking = ["llama-3.3-nemotron-super-49b-v1", "qwen2.5-7b-instruct", "gemma-2-9b-it"]
    local = ["qwen2.5:7b-instruct", "gemma2:9b"]
    chosen, notes = pick_local_models(ranking, local, top_n=1)
    assert chosen == ["qwen2.5:7b-instruct"]
    assert "llama-3.3-nemotron-super-49b-v1" in notes[0] and "qwen2.5:7b-instruct" in notes[0]
    chosen, _ = pick_local_models(ranking, local, top_n=2, mapping={"gemma-2-9b-it": "nope"})
    assert chosen == ["qwen2.5:7b-instruct"]
    same = {"llama-3.3-nemotron-super-49b-v1": "qwen2.5:7b-instruct"}
    chosen, notes = pick_local_models(ranking, local, top_n=2, mapping=same)
    assert chosen == ["qwen2.5:7b-instruct", "gemma2:9b"] and notes == []


def test_vote_run_validates_arguments():
    with pytest.raises(ValueError):
        VoteRun("http://127.0.0.1:1", [], "q")
    with pytest.raises(ValueError):
        VoteRun("http://127.0.0.1:1", ["m"], "q", strategy="magic")


# -- counting properties -----------------------------------------------------------------

sample_st = st.tuples(
    st.sampled_from(["1", "2", "3", None]), st.integers(0, 2), st.booleans()
)


@given(st.lists(sample_st, max_size=30))
def test_count_votes_properties(rows):
    samples = [
        Sample(index=i, model=f"m{rank}", rank=rank, seed=i, answer=ans,
               error="boom" if failed else None, arrival=i)
        for i, (ans, rank, failed) in enumerate(rows)
    ]
    tally = count_votes(samples, "number")
    voting = [s for s in samples if s.error is None and s.answer is not None]
    assert tally.counted == len(voting) == sum(tally.votes.values())
    assert tally.failed == sum(1 for s in samples if s.error)
    assert Counter(s.answer for s in voting) == Counter(tally.votes)
    assert sorted(i for v in tally.voters.values() for i in v) == [s.index for s in voting]
    if voting:
        best = max(tally.votes.values())
        assert tally.votes[tally.winner] == best
        assert tally.confidence == pytest.approx(best / len(voting))
        tied = [a for a, n in tally.votes.items() if n == best]
        best_rank = min(s.rank for s in voting if s.answer in tied)
        assert min(s.rank for s in voting if s.answer == tally.winner) == best_rank
    else:
        assert tally.winner is None and tally.confidence == 0.0


@given(st.permutations(["1", "2", "3"]))
def test_equal_votes_same_rank_first_arrival_wins(order):
    samples = [Sample(i, "m", 0, i, answer=a, arrival=i) for i, a in enumerate(order)]
    assert count_votes(samples).winner == order[0]


def test_ctrl_c_on_a_worker_thread_still_stops_the_consumer(srv):
    """The kernel may deliver SIGINT to any thread; the event loop must still wake up and
    raise KeyboardInterrupt while every request hangs (it once slept until the next event)."""
    import signal
    import time

    run = VoteRun(srv.url, ["hang"], "q", samples=2, concurrency=2)
    events = run.events()

    def interrupt_from_a_worker() -> None:
        deadline = time.monotonic() + 60  # generous: ends once both requests are in flight
        while srv.in_flight < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)  # both SampleStarted events consumed: the consumer waits for more
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)  # lands on this thread

    # Python's own Ctrl-C handler, even where the test runner started with SIGINT ignored
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    threading.Thread(target=interrupt_from_a_worker, daemon=True).start()
    start = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            for _ in events:
                pass
    finally:
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - start < 10  # requests hang far longer; the wake-up is ~0.1 s
    assert run.cancelled
    assert not our_threads()
