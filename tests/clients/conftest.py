"""Shared by the real-client tests: the scripted engine, a 2-cluster profile and `avengers
serve` in front of them, as in tests/test_serve.py (see tests/clients/common.py)."""

from __future__ import annotations

import pytest

from tests.clients.common import SAMPLES, scripts
from tests.support.fake_ollama import FakeOllama
from tests.support.profiles import build_profile
from tests.support.serve_util import serving


@pytest.fixture(scope="session")
def srv():
    """The scripted engine (a real HTTP server on loopback)."""
    with FakeOllama(scripts()) as s:
        yield s


@pytest.fixture(autouse=True)
def fresh_scripts(srv):
    srv.models.update(scripts())  # a test may change a model's replies


@pytest.fixture(scope="session")
def profile(srv, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AVENGERS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield build_profile(srv.url, tmp_path_factory.mktemp("clients") / "profile")


@pytest.fixture(scope="session")
def serve_url(srv, profile):
    """`avengers serve` (6 samples, all drawn: the tests check the whole tally) in front of
    the scripted engine."""
    with serving([str(profile), "--host", srv.url, "--samples", str(SAMPLES),
                  "--early-stop", "off", "--keepalive", "0.2"]) as url:
        yield url
