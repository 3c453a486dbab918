"""Serving: what `avengers serve` adds, and how `avengers` holds up under concurrent clients.

Both against the project's scripted Ollama-protocol server (`tests/support/fake_ollama.py`), with
the server in-process (uvicorn on a loopback port) and the official `ollama` client:
- overhead: one streamed reply through `avengers-route` (embed, route, relay) against the
  same request sent to the engine directly, as a ratio of medians (target ≤ 1.2×);
- load: throughput and p50/p95 latency of `avengers` (a 5-sample vote, every reply 0.5 s)
  under 1, 10 and 50 concurrent clients, with enough slots that nobody is turned away.
Part of `python -m bench` (`--only serve`).
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import ollama

from bench.common import fmt, repeat, spread
from tests.support.fake_ollama import FakeOllama, ModelScript
from tests.support.profiles import MATH, build_profile
from tests.support.serve_util import serving

MODEL = "qwen2.5:7b-instruct"
REPLY = "Let me think. Six times seven is forty-two, so the answer is 42.\n#### 42"
DIRECT_LATENCY = 0.2  # first token
TOKEN_DELAY = 0.01  # between 4-character chunks: a ~0.4 s reply, like a small local model
VOTE_LATENCY = 0.5
SAMPLES = 5
CLIENTS = (1, 10, 50)


def _chat(client: ollama.Client, model: str, question: str) -> str:
    parts = list(client.chat(model=model, stream=True, options={"seed": 0},
                             messages=[{"role": "user", "content": question}]))
    if not parts[-1].done:
        raise RuntimeError(f"{model}: the stream did not finish")
    return "".join(p.message.content for p in parts)


def _overhead(repeats: int) -> dict[str, Any]:
    script = ModelScript(replies=[REPLY], latency=DIRECT_LATENCY, token_delay=TOKEN_DELAY)
    with FakeOllama({MODEL: script, "nomic-embed-text": ModelScript()}) as srv, \
            tempfile.TemporaryDirectory() as tmp:
        profile = build_profile(srv.url, Path(tmp) / "profile")
        # the profile's embedder is the scripted engine's: trusted by name (issue 20)
        with serving([str(profile), "--host", srv.url, "--trust-profile-embedder"]) as url:
            direct, routed = ollama.Client(host=srv.url), ollama.Client(host=url)
            question = MATH[0]
            for client, model in ((direct, MODEL), (routed, "avengers-route")):  # warm-up
                if _chat(client, model, question) != REPLY:
                    raise RuntimeError(f"{model}: unexpected reply")
            t_direct, t_routed = [], []
            for _ in range(repeats):  # interleaved, so load on the machine hits both alike
                t_direct.append(repeat(lambda: _chat(direct, MODEL, question), 1)["median"])
                t_routed.append(repeat(lambda: _chat(routed, "avengers-route", question),
                                       1)["median"])
    return {"direct_s": spread(t_direct), "route_s": spread(t_routed),
            "ratio": statistics.median(t_routed) / statistics.median(t_direct)}


def _load(url: str, clients: int, per_client: int) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        c = ollama.Client(host=url, timeout=300)
        for k in range(per_client):
            t = time.perf_counter()
            try:
                res = c.chat(model="avengers", messages=[
                    {"role": "user", "content": MATH[(i + k) % len(MATH)]}])
                ok = "42" in res.message.content
            except Exception as e:  # noqa: BLE001 - counted and reported
                ok, res = False, e
            with lock:
                if ok:
                    latencies.append(time.perf_counter() - t)
                else:
                    errors.append(repr(res)[:120])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, e.g. {errors[0]}")
    q = statistics.quantiles(latencies, n=20, method="inclusive")
    return {"clients": clients, "requests": len(latencies), "wall_s": wall,
            "throughput": len(latencies) / wall, "p50_s": statistics.median(latencies),
            "p95_s": q[18]}


def run(repeats: int, quick: bool) -> dict[str, Any]:
    """The overhead ratio (`repeats` × 5 pairs) and one load run per client count."""
    overhead = _overhead(3 if quick else repeats * 5)
    script = ModelScript(replies=[REPLY], latency=VOTE_LATENCY)
    rows = []
    with FakeOllama({MODEL: script, "nomic-embed-text": ModelScript()}) as srv, \
            tempfile.TemporaryDirectory() as tmp:
        profile = build_profile(srv.url, Path(tmp) / "profile")
        argv = [str(profile), "--host", srv.url, "--samples", str(SAMPLES), "--concurrency",
                str(SAMPLES), "--max-concurrent", "50", "--max-queue", "100",
                "--trust-profile-embedder"]
        with serving(argv) as url:
            _load(url, 1, 2)  # warm-up
            for clients in (1, 10) if quick else CLIENTS:
                rows.append(_load(url, clients, 2 if quick else max(2, 10 // clients)))
    return {"overhead": overhead, "load": rows, "samples": SAMPLES,
            "vote_latency_s": VOTE_LATENCY, "direct_latency_s": DIRECT_LATENCY}


def section(res: dict[str, Any]) -> str:
    """The serving part of BENCHMARKS.md."""
    o = res["overhead"]
    lines = [
        "## Serving: `avengers serve`\n",
        "The server runs in-process (uvicorn on a loopback port) in front of the project's "
        "scripted Ollama-protocol server; the official `ollama` client sends every request.\n",
        "**Overhead of `avengers-route`** (embed the query, route, relay the routed model's "
        "stream) against sending the same streamed request to the engine directly; each "
        f"reply takes about {res['direct_latency_s']} s to its first token and streams "
        f"{len(REPLY)} characters in 4-character chunks {TOKEN_DELAY * 1000:.0f} ms apart. "
        "Pairs are interleaved.\n",
        "| path | time per reply | ratio (target ≤ 1.2×) |",
        "|---|---:|---:|",
        f"| engine directly | {fmt(o['direct_s'], 'ms', 1000, 0)} | 1.00× |",
        f"| through `avengers-route` | {fmt(o['route_s'], 'ms', 1000, 0)} | "
        f"{o['ratio']:.2f}× |",
        "",
        f"**`avengers` under load:** a {res['samples']}-sample vote per request, every sample "
        f"reply {res['vote_latency_s']} s, all samples of a vote drawn at once, up to 50 "
        "votes at a time (nobody is queued or turned away at these sizes). Latency is per "
        "request, from send to the whole reply.\n",
        "| concurrent clients | requests | wall time | throughput | p50 latency | p95 latency |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["load"]:
        lines.append(f"| {r['clients']} | {r['requests']} | {r['wall_s']:.2f} s | "
                     f"{r['throughput']:.1f} req/s | {r['p50_s']:.2f} s | {r['p95_s']:.2f} s |")
    lines.append(
        f"\nReading: the floor is one sample's {res['vote_latency_s']} s; what is above it at "
        "one client is routing, the vote's threads and the extra hop. With more clients the "
        "samples of all votes (5 per vote) share the scripted server's threads and this "
        "machine's two cores, so throughput levels off and latency grows; with a real engine "
        "its own batching sets that limit.")
    return "\n".join(lines)
