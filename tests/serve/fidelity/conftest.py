"""Fixtures of the fidelity tests (issue 21): the scripted engine with the fidelity scripts
and `avengers serve` in front of it, shared by every module of this folder."""

from __future__ import annotations

import pytest

from tests.support.fake_ollama import FakeOllama
from tests.support.fidelity import scripts, serve
from tests.support.profiles import build_profile


@pytest.fixture(scope="module")
def srv():
    """The scripted engine with the fidelity scripts, for a whole test module."""
    with FakeOllama(scripts()) as s:
        yield s


@pytest.fixture(autouse=True)
def fresh_scripts(srv):
    """Each test starts from the scripts as written (a test may change them)."""
    srv.models.update(scripts())


@pytest.fixture(scope="module")
def profile(srv, tmp_path_factory):
    """The two-cluster profile on the scripted engine's embedder."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AVENGERS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield build_profile(srv.url, tmp_path_factory.mktemp("fidelity") / "profile")


@pytest.fixture(scope="module")
def url(srv, profile, tmp_path_factory):
    """`avengers serve` in front of the scripted engine."""
    with serve(srv, profile, tmp_path_factory.mktemp("ep")) as u:
        yield u


@pytest.fixture(scope="module")
def mixed(srv, profile, tmp_path_factory):
    """The router's models reached over the engine's OpenAI-compatible API."""
    with serve(srv, profile, tmp_path_factory.mktemp("ep2"), mixed=True) as u:
        yield u
