"""Issue 20 in a real headless Chromium: a web page on another origin cannot make
`avengers serve` run anything, and a page on an allowed origin (localhost) gets real CORS.

The server runs in-process (tests/serve_util.py) in front of the scripted engine; two
tiny page servers serve the pages: one on 127.0.0.2 (another loopback address, so another
origin, as a site the user visits would be) and one reached as `http://localhost:PORT`.
Uses Debian's /usr/bin/chromium (never `playwright install`).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.app.test_browser import ARGS, CHROMIUM
from tests.support.fake_ollama import FakeOllama, ModelScript
from tests.support.profiles import MATH, build_profile
from tests.support.serve_util import serving

pytestmark = [pytest.mark.browser]

QWEN = "qwen2.5:7b-instruct"
CHAT_PATHS = ("/api/chat", "/api/generate", "/v1/chat/completions", "/api/embed")

ATTACK = """<!doctype html><title>a site the user visits</title><script>
const body = JSON.stringify({model: "avengers", stream: false,
                             messages: [{role: "user", content: %(question)s}]});
async function attempt(path, init) {
  try { const r = await fetch("%(api)s" + path, init); return r.type + " " + r.status; }
  catch (e) { return "blocked: " + e.name; }
}
window.result = (async () => [
  // "simple" requests: no preflight; the browser sends them and hides the answer
  await attempt("/api/chat", {method: "POST", mode: "no-cors", body,
                              headers: {"Content-Type": "text/plain"}}),
  await attempt("/v1/chat/completions", {method: "POST", mode: "no-cors", body}),
  await attempt("/api/generate", {method: "POST", mode: "no-cors",
      body: JSON.stringify({model: "avengers", prompt: %(question)s, stream: false})}),
  // a CORS request with JSON: preflighted, refused
  await attempt("/api/chat", {method: "POST", body,
                              headers: {"Content-Type": "application/json"}}),
  await attempt("/api/tags", {}),
])();
</script>"""

CLIENT = """<!doctype html><title>a local chat client</title><script>
window.result = (async () => {
  const r = await fetch("%(api)s/v1/chat/completions", {method: "POST",
      headers: {"Content-Type": "application/json", "Authorization": "Bearer unused"},
      body: JSON.stringify({model: "avengers",
                            messages: [{role: "user", content: %(question)s}]})});
  const reply = await r.json();
  return {status: r.status, text: reply.choices[0].message.content, field: reply.avengers,
          models: r.headers.get("x-avengers-models")};
})();
</script>"""


@contextlib.contextmanager
def page_server(bind: str, html: str) -> Iterator[int]:
    """Serve `html` at / on `bind` (a free port) until the block ends; yields the port."""
    data = html.encode()

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((bind, 0), Page)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def engine_calls(srv: FakeOllama) -> int:
    return sum(r["path"] in CHAT_PATHS for r in srv.requests)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: install Debian's chromium "
                    "(bash scripts/setup.sh --test); the browser test is never skipped")
    with FakeOllama({QWEN: ModelScript(replies=["#### 42"]),
                     "nomic-embed-text": ModelScript()}) as srv, \
            pytest.MonkeyPatch.context() as mp:
        mp.setenv("AVENGERS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        profile = build_profile(srv.url, tmp_path_factory.mktemp("browser") / "profile")
        with serving([str(profile), "--host", srv.url, "--samples", "2"]) as url:
            yield srv, url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def test_a_page_of_another_origin_runs_nothing(served, browser):
    srv, api = served
    before = engine_calls(srv)
    with page_server("127.0.0.2", ATTACK % {"api": api, "question": json.dumps(MATH[0])}) as port:
        page = browser.new_page()
        try:
            page.goto(f"http://127.0.0.2:{port}/", timeout=60_000)
            outcomes = page.evaluate("() => window.result")
        finally:
            page.close()
    assert engine_calls(srv) == before  # no sample, no embedding: nothing ran
    # the no-cors requests went out (opaque answers) but were refused before any work
    assert outcomes[:3] == ["opaque 0"] * 3, outcomes
    assert outcomes[3].startswith("blocked") and outcomes[4].startswith("blocked"), outcomes


def test_a_page_on_localhost_calls_the_api_with_cors(served, browser):
    srv, api = served
    before = engine_calls(srv)
    with page_server("127.0.0.1", CLIENT % {"api": api, "question": json.dumps(MATH[0])}) as port:
        page = browser.new_page()
        try:
            page.goto(f"http://localhost:{port}/", timeout=60_000)
            reply = page.evaluate("() => window.result")
        finally:
            page.close()
    assert reply["status"] == 200 and "42" in reply["text"]
    assert reply["field"]["answer"] == "42" and reply["field"]["votes"] == {"42": 2}
    assert reply["models"] == f'["{QWEN}"]'  # an exposed x-avengers header
    assert engine_calls(srv) > before
