"""Endpoints files, replicas and mixed backends, through the Python API and the CLI (issue 10)."""

from __future__ import annotations

import json

import pytest

from avengers_core.backends.endpoints import Engines, load_endpoints
from avengers_core.cli import main
from avengers_core.errors import InputError
from avengers_core.vote.run import VoteRun
from tests.support.fake_ollama import FakeOllama, ModelScript
from tests.support.net import free_port
from tests.support.profiles import MATH, build_profile

QWEN, LLAMA = "qwen2.5:7b-instruct", "llama3.1:8b"


def write(tmp_path, text: str, name: str = "endpoints.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_toml_and_json_files_read_alike(tmp_path, monkeypatch):
    monkeypatch.setenv("AVENGERS_KEY_ENVS", "VLLM_KEY")  # the user allows the file's key
    toml = write(tmp_path, """
[models."qwen-big"]
backend = "openai"
urls = ["http://gpu0:8000/v1", "http://gpu1:8000/v1"]
model = "Qwen/Qwen2.5-72B-Instruct"
api_key_env = "VLLM_KEY"
n = true

[models.small]
url = "http://127.0.0.1:11434"
""")
    spec = {"models": {
        "qwen-big": {"backend": "openai", "urls": ["http://gpu0:8000/v1", "http://gpu1:8000/v1"],
                     "model": "Qwen/Qwen2.5-72B-Instruct", "api_key_env": "VLLM_KEY", "n": True},
        "small": {"url": "http://127.0.0.1:11434"}}}
    js = write(tmp_path, json.dumps(spec), "endpoints.json")
    assert load_endpoints(toml) == load_endpoints(js)
    big, small = load_endpoints(toml).values()
    assert big.urls == ("http://gpu0:8000/v1", "http://gpu1:8000/v1") and big.n is True
    assert (small.backend, small.model, small.urls) == ("ollama", "small", ("http://127.0.0.1:11434",))


@pytest.mark.parametrize(("text", "message"), [
    ('[models.a]\nurls = ["http://x"]\napi_key = "sk-123"\n', "model 'a': write the key in an"),
    ('[models.a]\nurls = ["http://x"]\nport = 1\n', "model 'a': unknown key 'port'"),
    ('[models.a]\nbackend = "vllm"\nurls = ["http://x"]\n', "backend 'vllm' (expected one of"),
    ('[models.a]\nbackend = "openai"\n', "model 'a': expected 'urls'"),
    ('[models.a]\nurls = ["http://x"]\nn = "yes"\n', "expected 'n' to be true or false"),
    ('models = 3\n', "expected a 'models' table"),
    ('[models.a\n', "not valid TOML"),
])
def test_bad_endpoints_files_are_one_line_naming_the_model(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(InputError, match=None) as info:
        load_endpoints(path)
    assert message in str(info.value) and str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_replicas_share_the_samples(tmp_path):
    with FakeOllama({QWEN: ModelScript(replies=["#### 42"], honours_n=False)}) as a, \
         FakeOllama({QWEN: ModelScript(replies=["#### 42"], honours_n=False)}) as b:
        path = write(tmp_path, f'[models.qwen]\nbackend = "openai"\nn = false\n'
                               f'urls = ["{a.url}/v1", "{b.url}/v1"]\nmodel = "{QWEN}"\n')
        eng = Engines(None, load_endpoints(path))
        assert eng.list_models() == ["qwen"]
        result = VoteRun(eng, ["qwen"], "q", samples=6, concurrency=2).run()
        on_a = [r for r in a.requests if r["path"] == "/v1/chat/completions"]
        on_b = [r for r in b.requests if r["path"] == "/v1/chat/completions"]
    assert len(on_a) == len(on_b) == 3
    assert {r["model"] for r in on_a + on_b} == {QWEN}  # the engine's own name is sent
    assert {s.endpoint for s in result.samples} == {a.url + "/v1", b.url + "/v1"}
    assert result.tally.votes == {"42": 6}


def test_replicas_that_cannot_serve_are_skipped_with_a_note(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    with FakeOllama({QWEN: ModelScript()}) as good, FakeOllama({LLAMA: ModelScript()}) as other:
        path = write(tmp_path, f'[models.qwen]\nurls = ["{dead}", "{other.url}", "{good.url}"]\n'
                               f'model = "{QWEN}"\n')
        eng = Engines(None, load_endpoints(path))
        assert eng.list_models() == ["qwen"]
        notes = " | ".join(eng.notes)
        VoteRun(eng, ["qwen"], "q", samples=2).run()
        assert len([r for r in good.requests if r["path"] == "/api/chat"]) == 2
    assert f"replica {dead} skipped" in notes and "connection refused" in notes
    assert f"{other.url} does not list '{QWEN}'" in notes


def test_latest_is_the_same_model_as_no_tag(tmp_path):
    with FakeOllama({"llama3.2:latest": ModelScript()}) as srv:
        path = write(tmp_path, f'[models.small]\nurls = ["{srv.url}"]\nmodel = "llama3.2"\n')
        eng = Engines(None, load_endpoints(path))
        assert eng.list_models() == ["small"]
        eng.stream_call("small", "q").run()
        assert next(r for r in srv.requests if r["path"] == "/api/chat")["model"] == \
            "llama3.2:latest"


def test_nothing_answers_is_backend_unavailable(tmp_path):
    from avengers_core.backends import BackendUnavailable

    path = write(tmp_path, f'[models.a]\nurls = ["http://127.0.0.1:{free_port()}"]\n')
    with pytest.raises(BackendUnavailable, match="no endpoint in the endpoints file answers"):
        Engines(None, load_endpoints(path)).list_models()


# -- the command line ---------------------------------------------------------------------


@pytest.fixture
def two_servers(tmp_path, monkeypatch):
    """An Ollama server with qwen (and the profile's embedder), an OpenAI-protocol one with
    llama, and a profile routing math to qwen and trivia to llama."""
    monkeypatch.setenv("AVENGERS_CACHE_DIR", str(tmp_path / "cache"))
    ollama = FakeOllama({QWEN: ModelScript(replies=["#### 42"]),
                         "nomic-embed-text": ModelScript()}).start()
    openai = FakeOllama({"meta-llama/Llama-3.1-8B-Instruct":
                         ModelScript(replies=["#### 41"], honours_n=False)}).start()
    monkeypatch.setenv("OLLAMA_HOST", ollama.url)
    profile = build_profile(ollama.url, tmp_path / "profile")
    yield ollama, openai, profile
    ollama.stop()
    openai.stop()


def test_vote_with_endpoints_mixes_backends(two_servers, tmp_path, capsys):
    ollama, openai, profile = two_servers
    path = write(tmp_path, f"""
[models."qwen2.5:7b-instruct"]
urls = ["{ollama.url}"]

[models."llama3.1:8b"]
backend = "openai"
urls = ["{openai.url}/v1"]
model = "meta-llama/Llama-3.1-8B-Instruct"
""")
    code = main(["vote", str(profile), MATH[1], "--endpoints", str(path), "--samples", "4",
                 "--top-n", "2", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = json.loads(captured.out)
    assert set(out) >= {"answer", "votes", "confidence", "voters", "kind", "models", "samples"}
    by_model = {s["model"]: s["endpoint"] for s in out["samples"]}
    assert by_model == {QWEN: ollama.url, "llama3.1:8b": openai.url + "/v1"}
    assert out["votes"] == {"42": 2, "41": 2}


def test_vote_with_openai_backend_and_calibrate(two_servers, tmp_path, capsys):
    _, openai, profile = two_servers
    map_ = json.dumps({"qwen2.5-7b-instruct": "meta-llama/Llama-3.1-8B-Instruct"})
    code = main(["vote", str(profile), MATH[1], "--backend", "openai", "--host", openai.url,
                 "--samples", "3", "--model-map", map_, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["answer"] == "41"
    assert {s["endpoint"] for s in out["samples"]} == {openai.url + "/v1"}
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps({"question": f"What is 40+{i}?", "answer": "41"})
                                 + "\n" for i in (1, 2)))
    table = tmp_path / "t.jsonl"
    code = main(["calibrate", str(questions), "--models", "meta-llama/Llama-3.1-8B-Instruct",
                 "--backend", "openai", "--host", openai.url, "--out", str(table)])
    assert code == 0
    rows = [json.loads(line) for line in table.read_text().splitlines()]
    assert [r["scores"] for r in rows] == [{"meta-llama/Llama-3.1-8B-Instruct": 1.0}] * 2
    assert {r["host"] for r in rows} == {openai.url + "/v1"}


def test_unset_api_key_variable_is_exit_2(two_servers, capsys, monkeypatch):
    _, openai, profile = two_servers
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    code = main(["vote", str(profile), "q", "--backend", "openai", "--host", openai.url,
                 "--api-key-env", "NO_SUCH_KEY_VAR"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == "error: --api-key-env: environment variable NO_SUCH_KEY_VAR is not set"


def test_v1_pasted_as_ollama_host_says_so(two_servers, capsys):
    _, openai, profile = two_servers
    code = main(["vote", str(profile), "q", "--host", openai.url + "/v1"])
    err = capsys.readouterr().err
    assert code == 2 and "is an OpenAI-compatible path" in err and "--backend openai" in err
    assert "ollama serve" not in err


def test_with_the_default_down_the_error_says_why_the_endpoints_failed_too(tmp_path):
    from avengers_core.backends import BackendUnavailable, get_backend

    with FakeOllama({QWEN: ModelScript()}) as srv:
        path = write(tmp_path, f'[models.q]\nbackend = "openai"\nurls = ["{srv.url}/v1"]\n'
                               'model = "qwen-typo"\n')
        dead = get_backend("ollama", f"http://127.0.0.1:{free_port()}")
        with pytest.raises(BackendUnavailable) as info:
            Engines(dead, load_endpoints(path)).list_models()
    assert "cannot reach Ollama" in str(info.value)
    assert f"does not list 'qwen-typo' (it lists {QWEN})" in str(info.value)


def test_a_server_that_is_not_ollama_says_use_backend_openai():
    from avengers_core.backends import BackendUnavailable, get_backend

    with FakeOllama({QWEN: ModelScript()}) as srv:  # under /nope it answers 404, as vLLM does
        with pytest.raises(BackendUnavailable, match="answers, but not as Ollama") as info:
            get_backend("ollama", srv.url + "/nope").list_models()
    assert "--backend openai" in str(info.value) and "ollama serve" not in str(info.value)
