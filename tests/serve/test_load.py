"""`avengers serve` under load: 50 concurrent clients × 2 requests each (half through the
`openai` client, half through the `ollama` client, streamed and not) against a scripted
backend that takes 0.5 s per reply. Bounded in time; it stops by itself."""

from __future__ import annotations

import threading
import time

import ollama
import openai
import pytest

from avengers_core.answers.extract import extract
from tests.support.fake_ollama import FakeOllama, ModelScript
from tests.support.profiles import MATH, build_profile
from tests.support.serve_util import clients, openai_reply, serving

CLIENTS = 50
REQUESTS = 2
LATENCY = 0.5
BOUND_S = 90  # every client must be done by then (ideal: 100 × 3 samples / 4 slots ≈ 40 s)


def one_request(url: str, i: int, k: int) -> str:
    """One request; 'ok' for a well-formed vote, 'busy' for a clean 429/503, else why not."""
    messages = [{"role": "user", "content": MATH[i % len(MATH)]}]
    stream = (i + k) % 2 == 1
    try:
        oai, oll = clients(url, BOUND_S)
        if i % 2 == 0:
            res = oai.chat.completions.create(model="avengers", messages=messages, stream=stream)
            text, field = openai_reply(res, stream)
            ok = field["answer"] == "42" == extract(text, "number") and field["votes"] == {"42": 3}
        else:
            res = oll.chat(model="avengers", messages=messages, stream=stream)
            parts = list(res) if stream else [res]
            text = "".join(p.message.content for p in parts)
            ok = parts[-1].done and extract(text, "number") == "42"
        return "ok" if ok else f"malformed: {text!r}"
    except openai.RateLimitError as e:
        return "busy" if e.status_code == 429 and e.body["code"] == "server_busy" else repr(e)
    except ollama.ResponseError as e:
        return "busy" if e.status_code == 503 and "busy" in e.error else repr(e)
    except Exception as e:  # noqa: BLE001 - reported below as what went wrong
        return repr(e)


@pytest.mark.slow
def test_fifty_clients_get_an_answer_or_a_clean_busy(tmp_path, monkeypatch):
    monkeypatch.setenv("AVENGERS_CACHE_DIR", str(tmp_path / "cache"))
    models = {"qwen2.5:7b-instruct": ModelScript(replies=["#### 42"], latency=LATENCY),
              "llama3.1:8b": ModelScript(replies=["#### 42"], latency=LATENCY),
              "nomic-embed-text": ModelScript()}
    with FakeOllama(models) as srv:
        profile = build_profile(srv.url, tmp_path / "profile")
        argv = [str(profile), "--host", srv.url, "--samples", "3", "--early-stop", "off",
                "--max-concurrent", "4", "--max-queue", "20"]  # every sample drawn: 3 votes
        with serving(argv) as url:
            results: dict[tuple[int, int], str] = {}

            def client(i: int) -> None:
                for k in range(REQUESTS):
                    results[(i, k)] = one_request(url, i, k)

            threads = [threading.Thread(target=client, args=(i,), daemon=True)
                       for i in range(CLIENTS)]
            t0 = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join(max(0.0, BOUND_S - (time.monotonic() - t0)))
            hung = [t for t in threads if t.is_alive()]
            assert not hung, f"{len(hung)} clients still waiting after {BOUND_S} s"
            outcomes = list(results.values())
            assert len(outcomes) == CLIENTS * REQUESTS
            wrong = [o for o in outcomes if o not in ("ok", "busy")]
            assert not wrong, wrong[:3]
            assert outcomes.count("ok") >= 24  # the 4 slots and 20 places were all used
            assert outcomes.count("busy") > 0  # and the rest were turned away cleanly
            assert srv.max_in_flight <= 4 * 3  # 4 votes at once, 3 samples each
        assert srv.in_flight == 0
