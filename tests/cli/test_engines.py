"""`avengers vote` and `avengers calibrate` end to end: a real profile, the fake Ollama server.

The profile is fitted with the Ollama embedder served by the fake server, so these tests
need no model download and stay fast.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from avengers_core.cli import main
from tests.support.fake_ollama import FakeOllama, ModelScript
from tests.support.net import free_port
from tests.support.profiles import MATH, build_profile


@pytest.fixture
def srv():
    models = {
        "qwen2.5:7b-instruct": ModelScript(replies=["#### 42", "#### 42", "so 41\n#### 41"]),
        "llama3.1:8b": ModelScript(replies=["The answer is 41."]),
        "nomic-embed-text": ModelScript(),
    }
    with FakeOllama(models) as s:
        yield s


@pytest.fixture
def profile(srv, tmp_path, monkeypatch):
    monkeypatch.setenv("AVENGERS_CACHE_DIR", str(tmp_path / "cache"))
    return build_profile(srv.url, tmp_path / "profile")


def test_vote_json(srv, profile, capsys):
    code = main(["vote", str(profile), MATH[0], "--host", srv.url, "--samples", "6", "--json",
                 "--early-stop", "off"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["answer"] == "42"
    assert out["votes"] == {"42": 4, "41": 2}
    assert out["confidence"] == pytest.approx(4 / 6)
    assert len(out["samples"]) == 6
    assert (out["drawn"], out["asked"], out["stopped"]) == (6, 6, "complete")
    assert set(out["samples"][0]) >= {"model", "seed", "text", "answer", "error"}
    assert {s["model"] for s in out["samples"]} == {"qwen2.5:7b-instruct"}


def test_vote_names_the_profile_when_the_embedder_dimension_differs(srv, tmp_path, capsys):
    import numpy as np

    from avengers_core.data.table import from_rows
    from avengers_core.routing.profile import save_profile
    from avengers_core.routing.routers.avengers import AvengersRouter
    from avengers_core.routing.routers.base import RouterConfig

    table = from_rows([{"query": q, "scores": {"qwen2.5-7b-instruct": 1.0}} for q in MATH], "t")
    x = np.random.default_rng(0).normal(size=(len(MATH), 8)).astype(np.float32)
    router = AvengersRouter.fit(table, x / np.linalg.norm(x, axis=1, keepdims=True),
                                RouterConfig(k=2), embedder_id="ollama:nomic-embed-text")
    folder = save_profile(router, tmp_path / "p8")
    code = main(["vote", str(folder), MATH[0], "--host", srv.url])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith(f"error: {folder}: centroids have dimension 8")
    assert "gives 32" in err[-1]
    assert not [r for r in srv.requests if r["path"].endswith(("/generate", "/chat"))]


def test_vote_streams_progress_and_uses_the_model_map(srv, profile, capsys):
    mapping = json.dumps({"qwen2.5-7b-instruct": "llama3.1:8b"})
    code = main(["vote", str(profile), MATH[1], "--host", srv.url, "--samples", "3",
                 "--model-map", mapping])
    captured = capsys.readouterr()
    assert code == 0
    assert "[2/3] llama3.1:8b" in captured.err  # 41 twice: the third cannot change it
    assert "settled (decided) after 2 of 3 samples" in captured.err
    assert captured.out.startswith("answer: 41")
    assert captured.out.splitlines()[0].endswith("settled after 2 of 3 (decided)")


def test_vote_early_stop_flags(srv, profile, capsys):
    code = main(["vote", str(profile), MATH[1], "--host", srv.url, "--samples", "10",
                 "--model-map", json.dumps({"qwen2.5-7b-instruct": "llama3.1:8b"}),
                 "--early-stop", "confident", "--confidence", "0.9", "--concurrency", "1",
                 "--json"])
    out = json.loads(capsys.readouterr().out)
    # one answer three times: P(leader is the majority) = 1 - 2^-4 ≥ 0.9 after 3 samples
    assert code == 0 and (out["drawn"], out["asked"], out["stopped"]) == (3, 10, "confident")
    code = main(["vote", str(profile), MATH[1], "--host", srv.url, "--confidence", "1.5"])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: --confidence must lie strictly between 0 and 1, got 1.5")


def test_vote_top_n_spreads_over_models(srv, profile, capsys):
    code = main(["vote", str(profile), MATH[2], "--host", srv.url, "--samples", "4",
                 "--top-n", "2", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert {s["model"] for s in out["samples"]} == {"qwen2.5:7b-instruct", "llama3.1:8b"}


def test_vote_unreachable_host_is_exit_2_naming_host(profile, capsys):
    host = f"http://127.0.0.1:{free_port()}"
    code = main(["vote", str(profile), "q", "--host", host])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: ") and host in err[0]


def test_vote_bad_model_map_is_input_error(srv, profile, capsys):
    code = main(["vote", str(profile), "q", "--host", srv.url, "--model-map", "[1, 2]"])
    assert code == 2
    assert "--model-map" in capsys.readouterr().err


def test_calibrate_writes_a_table(srv, tmp_path, capsys):
    questions = tmp_path / "qs.jsonl"
    questions.write_text(
        '{"question": "6*7?", "answer": "#### 42"}\n{"question": "40+1?", "answer": "41"}\n'
    )
    out = tmp_path / "table.jsonl"
    code = main(["calibrate", str(questions), "--models", "qwen2.5:7b-instruct,llama3.1:8b",
                 "--out", str(out), "--host", srv.url, "--limit", "2"])
    assert code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["scores"] for r in rows] == [
        {"qwen2.5:7b-instruct": 1.0, "llama3.1:8b": 0.0},
        {"qwen2.5:7b-instruct": 0.0, "llama3.1:8b": 1.0},
    ]
    assert "50.0%  qwen2.5:7b-instruct" in capsys.readouterr().out


def test_calibrate_unreachable_host(tmp_path, capsys):
    questions = tmp_path / "qs.jsonl"
    questions.write_text('{"question": "6*7?", "answer": "42"}\n')
    host = f"http://127.0.0.1:{free_port()}"
    code = main(["calibrate", str(questions), "--models", "m", "--out",
                 str(tmp_path / "t.jsonl"), "--host", host])
    assert code == 2
    assert host in capsys.readouterr().err


def test_calibrate_bad_questions_file(tmp_path, capsys):
    questions = tmp_path / "qs.jsonl"
    questions.write_text('{"question": "6*7?"}\n')
    code = main(["calibrate", str(questions), "--models", "m", "--out", str(tmp_path / "t")])
    assert code == 2
    assert "qs.jsonl, line 1: expected a non-empty 'answer'" in capsys.readouterr().err


def test_fake_server_demo_entry_point():
    """`python -m tests.support.fake_ollama --demo` serves demo models (the browser test)."""
    import ollama

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fake_ollama", "--port", str(port), "--demo"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == f"http://127.0.0.1:{port}"
        client = ollama.Client(host=f"http://127.0.0.1:{port}")
        names = [m.model for m in client.list().models]
        assert "qwen2.5:7b-instruct" in names
    finally:
        proc.terminate()
        proc.wait(10)


def test_help_imports_no_heavy_library():
    proc = subprocess.run([sys.executable, "-m", "avengers_core.cli", "vote", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--model-map" in proc.stdout
    assert "ollama" not in proc.stderr
    check = subprocess.run(
        [sys.executable, "-c",
         "import sys, avengers_core.cli.commands as c; c.build_parser();"
         "print(sorted(m for m in ('ollama', 'httpx', 'torch') if m in sys.modules))"],
        capture_output=True, text=True, timeout=60,
    )
    assert check.stdout.strip() == "[]"


def test_vote_switch_progress_counts_every_planned_sample(srv, profile, capsys):
    # qwen's 4 samples split 2–2 (42, 42, 41, 42 → 3/4 = 0.75 < 0.9): switch to llama.
    code = main(["vote", str(profile), MATH[3], "--host", srv.url, "--samples", "4",
                 "--switch", "0.9"])
    err = capsys.readouterr().err
    assert code == 0
    assert "[8/≤8] llama3.1:8b" in err  # Model-Switch: at most 4 per routed model
    assert "[5/4]" not in err


def test_vote_spread_progress_total_never_changes(srv, profile, capsys):
    # issue 14: `--top-n 2` printed [1/3] ... then [4/6] as the second model started
    code = main(["vote", str(profile), MATH[3], "--host", srv.url, "--samples", "6",
                 "--top-n", "2"])
    err = capsys.readouterr().err
    assert code == 0
    totals = re.findall(r"^\[\d+/(\S+)\]", err, re.M)
    assert totals == ["6"] * 6


def test_vote_no_answer_is_exit_1_with_reason(srv, profile, capsys):
    code = main(["vote", str(profile), MATH[4], "--host", srv.url, "--samples", "2",
                 "--kind", "choice"])
    assert code == 1
    err = capsys.readouterr().err
    assert "no answer: none of the 2 samples gave an answer of kind choice" in err


def test_unknown_host_name_is_reported_as_such(profile, capsys):
    code = main(["vote", str(profile), "q", "--host", "http://nonexistent.invalid:11434"])
    assert code == 2
    assert "host name not found" in capsys.readouterr().err
