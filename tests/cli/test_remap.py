"""Issue 19, item 4: when none of the routed models is served, `avengers vote` prints the
exact command that maps them to what the engine serves, and that command works."""

from __future__ import annotations

import json
import shlex

import pytest

from avengers_core.cli import main
from tests.support.fake_ollama import FakeOllama, ModelScript
from tests.support.profiles import MATH, build_profile


@pytest.fixture
def small_engine():
    """An engine serving one chat model that no table names (as the tests' SmolLM2)."""
    models = {"smollm2": ModelScript(replies=["#### 42"]), "nomic-embed-text": ModelScript()}
    with FakeOllama(models) as s:
        yield s


def test_vote_prints_the_command_that_maps_the_routed_models(small_engine, tmp_path,
                                                            monkeypatch, capsys):
    monkeypatch.setenv("AVENGERS_CACHE_DIR", str(tmp_path / "cache"))
    profile = build_profile(small_engine.url, tmp_path / "profile")
    argv = ["vote", str(profile), MATH[0], "--host", small_engine.url, "--samples", "3"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: none of the routed models") and "smollm2" in err
    command = err.split("to use what it serves: ", 1)[1]
    words = shlex.split(command)
    assert words[:len(argv) + 1] == ["avengers", *argv]
    mapping = json.loads(words[words.index("--model-map") + 1])
    assert mapping == {"qwen2.5-7b-instruct": "smollm2", "llama-3.1-8b-instruct": "smollm2"}
    assert main(words[1:]) == 0  # the printed command votes
    out = capsys.readouterr()
    assert out.out.startswith("answer: 42") and "smollm2" in out.err


def test_serve_checks_its_sample_cap_before_the_engines(tmp_path, capsys):
    """Issue 19, item 9: `serve --samples 100` names the cap, not an unreachable engine."""
    from tests.support.net import free_port

    code = main(["serve", str(tmp_path / "no-profile"), "--samples", "100",
                 "--host", f"http://127.0.0.1:{free_port()}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("error: --samples must be from 1 to") and "got 100" in err[0]


def test_a_misspelt_command_gets_the_closest_one(capsys):
    """Issue 19, item 9: `avengers rout` -> did you mean route?"""
    with pytest.raises(SystemExit) as stop:
        main(["rout", "x", "y"])
    assert stop.value.code == 2
    assert "(did you mean route?)" in capsys.readouterr().err


def test_route_and_evaluate_arguments_have_help():
    from avengers_core.cli.commands import build_parser

    sub = build_parser()._subparsers_by_name()
    helps = {(cmd, a.dest): a.help for cmd in ("route", "evaluate")
             for a in sub[cmd]._actions}
    for key in (("route", "query"), ("route", "top_n"), ("evaluate", "test_size"),
                ("evaluate", "seed"), ("evaluate", "table")):
        assert helps[key], key


def test_n_ignored_is_noted_once_per_endpoint():
    """Issue 19, item 7: several workers finding out that a server ignores `n` give one
    note for that endpoint, not one each."""
    from avengers_core.vote.run import VoteRun
    from tests.backends.test_openai import GOOD, engines

    with FakeOllama({GOOD: ModelScript(replies=["#### 7"], honours_n=False)}) as srv:
        result = VoteRun(engines(srv.url), [GOOD], "q", samples=9, concurrency=3).run()
    assert len(result.samples) == 9 and result.tally.votes == {"7": 9}
    assert len([n for n in result.notes if "ignores n" in n]) == 1


def test_calibrate_hints_follow_the_backend(tmp_path):
    """Issue 19, item 5: a misspelt model on an OpenAI-compatible server gets a did-you-mean
    from the server's own list and no `ollama pull`; on Ollama an unknown one still gets
    the pull hint."""
    from avengers_core.backends import get_backend
    from avengers_core.backends.endpoints import Engines
    from avengers_core.calibrate.run import calibrate
    from avengers_core.errors import InputError

    with FakeOllama({"smollm2": ModelScript()}) as srv:
        oai = Engines(get_backend("openai", srv.url + "/v1"))
        with pytest.raises(InputError) as err:
            calibrate([], ["smolm2"], tmp_path / "out.jsonl", client=oai)
        assert "did you mean smollm2?" in str(err.value) and "ollama pull" not in str(err.value)
        oll = Engines(get_backend("ollama", srv.url))
        with pytest.raises(InputError, match="try `ollama pull qwen9`"):
            calibrate([], ["qwen9"], tmp_path / "out.jsonl", client=oll)
