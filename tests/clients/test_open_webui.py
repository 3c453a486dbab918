"""Open WebUI in front of `avengers serve`, driven in headless Chromium as a person would: choose
`avengers`, send a message, see the voted answer, send a second one in the same chat.

Open WebUI (the pip package `open-webui`, in its own venv made by `scripts/setup.sh --test`)
runs offline: OFFLINE_MODE, no login (WEBUI_AUTH=False), its data in a tmp folder, no local
embedding model, no title/tag/follow-up tasks (they would send extra chats to the router),
and every proxy variable pointing at a closed loopback port, so nothing leaves the machine;
the browser aborts any request that is not for loopback. One Open WebUI holds both
connections to serve: the Ollama one (OLLAMA_BASE_URL; the model is `avengers`) and the
OpenAI one (OPENAI_API_BASE_URLS; prefix `oai`, so that model is `oai.avengers`, sent to
serve as `avengers`). Each is tried with Open WebUI's "Stream Chat Response" on and off (a
user setting). What Open WebUI stored (its chat API) is checked beside what the page shows,
and what it sent to serve (tests/clients/recording.py) beside both.
Uses Debian's /usr/bin/chromium (never `playwright install`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.clients.common import (
    OPENWEBUI_VENV,
    QUESTION,
    SAMPLES,
    TRIVIA_QUESTION,
    VOTED_TEXT,
    client_env,
)
from tests.clients.recording import Recorder, recorded_serving
from tests.support.net import free_port, stop, wait_http

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
START_S = 300  # Open WebUI starts in ~30 s on a busy 2-core machine (DB migrations, imports)
REPLY_MS = 120_000
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
CHAT_PATHS = {"ollama": "/api/chat", "openai": "/v1/chat/completions"}
CONNECTIONS = {"ollama": re.compile(r"^Select avengers(:latest)? model$"),
               "openai": re.compile(r"^Select oai\.avengers model$")}
"""The model picker's option for `avengers` through each connection (the Ollama one may list
it with its tag, as Ollama names always have one)."""


@pytest.fixture(scope="module")
def recorded(srv, profile) -> Iterator[tuple[str, Recorder]]:
    """serve (6 samples) with a record of the requests it got."""
    with recorded_serving([str(profile), "--host", srv.url, "--samples", str(SAMPLES),
                           "--early-stop", "off", "--keepalive", "0.2"]) as served:
        yield served


@pytest.fixture(scope="module")
def webui(recorded, tmp_path_factory) -> Iterator[str]:
    """Open WebUI on a free loopback port, both connections pointing at serve."""
    serve_url = recorded[0]
    exe = OPENWEBUI_VENV / "bin" / "open-webui"
    if not exe.exists():
        pytest.fail(f"no Open WebUI at {exe}: bash scripts/setup.sh --test")
    home = tmp_path_factory.mktemp("open-webui")
    port = free_port()
    env = client_env(
        DATA_DIR=str(home / "data"), OFFLINE_MODE="true", HF_HUB_OFFLINE="1",
        WEBUI_AUTH="False", WEBUI_SECRET_KEY="test-only-not-a-secret",
        ENABLE_OLLAMA_API="true", OLLAMA_BASE_URL=serve_url,
        ENABLE_OPENAI_API="true", OPENAI_API_BASE_URLS=f"{serve_url}/v1", OPENAI_API_KEYS="-",
        OPENAI_API_CONFIGS=json.dumps({"0": {"enable": True, "prefix_id": "oai"}}),
        ENABLE_TITLE_GENERATION="False", ENABLE_TAGS_GENERATION="False",
        ENABLE_FOLLOW_UP_GENERATION="False", ENABLE_AUTOCOMPLETE_GENERATION="False",
        RAG_EMBEDDING_MODEL="", BYPASS_EMBEDDING_AND_RETRIEVAL="true",
        SCARF_NO_ANALYTICS="true", DO_NOT_TRACK="true", ANONYMIZED_TELEMETRY="false")
    log = home / "open-webui.log"
    t0 = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(exe), "serve", "--host", "127.0.0.1", "--port", str(port)],
                                cwd=home, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        try:
            wait_http(f"http://127.0.0.1:{port}/health", timeout=START_S)
        except TimeoutError:
            pytest.fail(f"Open WebUI did not start in {START_S} s; its log: {log}")
        print(f"Open WebUI started in {time.monotonic() - t0:.1f} s")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def page(webui):
    """One browser page, logged in (no auth) with the release notes dismissed."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: install Debian's chromium "
                    "(bash scripts/setup.sh --test); the browser test is never skipped")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        outside: list[str] = []

        def loopback_only(route):
            host = re.match(r"^[a-z]+://([^/:]+)", route.request.url)
            if host and host.group(1) not in ("127.0.0.1", "localhost"):
                outside.append(route.request.url)
                return route.abort()
            return route.continue_()

        page.route("**/*", loopback_only)
        page.set_default_timeout(60_000)
        page.goto(webui)
        page.get_by_role("button", name="Okay, Let's Go!").click()  # "What's new", once
        yield page
        browser.close()
        assert not outside, f"the page asked for outside addresses: {outside[:5]}"


def set_streaming(page, stream: bool) -> None:
    """Open WebUI's user setting "Stream Chat Response" (Settings > General > Advanced), as
    its own settings page saves it (merged into the user's settings)."""
    page.evaluate("""async (stream) => {
        const h = {Authorization: 'Bearer ' + localStorage.token,
                   'Content-Type': 'application/json'};
        const ui = (await (await fetch('/api/v1/users/user/settings', {headers: h})).json())?.ui
                   ?? {};
        ui.params = {...(ui.params ?? {}), stream_response: stream};
        const r = await fetch('/api/v1/users/user/settings/update',
                              {method: 'POST', headers: h, body: JSON.stringify({ui})});
        if (!r.ok) throw new Error('settings update: ' + r.status);
    }""", stream)


def stored_chat(page) -> dict[str, Any] | None:
    """The open chat as Open WebUI stored it (its own API); None while it is not stored yet."""
    return page.evaluate("""async () => {
        const id = location.pathname.split('/').pop();
        const r = await fetch('/api/v1/chats/' + id,
                              {headers: {Authorization: 'Bearer ' + localStorage.token}});
        return r.ok ? await r.json() : null;
    }""")


def assistant_replies(chat: dict[str, Any]) -> list[dict[str, Any]]:
    """The assistant messages of a stored chat, oldest first."""
    msgs = [m for m in chat["chat"]["history"]["messages"].values() if m["role"] == "assistant"]
    return sorted(msgs, key=lambda m: m["timestamp"])


def send(page, text: str, replies: int) -> dict[str, Any]:
    """Type `text` into the chat box, send it, and wait until the chat holds `replies`
    finished assistant messages; the stored chat."""
    page.locator("#chat-input").click()
    page.keyboard.type(text)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/c/[0-9a-f-]+$"))
    deadline = time.monotonic() + REPLY_MS / 1000
    while True:
        chat = stored_chat(page)
        done = [m for m in assistant_replies(chat) if m.get("done")] if chat else []
        if len(done) >= replies:
            return chat
        assert time.monotonic() < deadline, f"no reply to {text!r} within {REPLY_MS} ms"
        page.wait_for_timeout(250)


def new_chat(page, webui: str, connection: str) -> str:
    """Open a new chat and choose `avengers` through `connection`; the model id chosen."""
    page.goto(webui)
    page.locator("#model-selector-model-button").click()
    page.locator("#model-search-input").fill("avengers")  # typing could race the focus
    option = page.get_by_role("option", name=CONNECTIONS[connection])
    model = option.get_attribute("aria-label").removeprefix("Select ").removesuffix(" model")
    option.click()
    assert page.locator("#model-selector-model-button").get_attribute("aria-label") \
        == f"Selected model: {model}"
    return model


@pytest.mark.parametrize("stream", [pytest.param(True, id="streamed"),
                                    pytest.param(False, id="whole")])
@pytest.mark.parametrize("connection", list(CONNECTIONS))
def test_open_webui_chats_with_avengers(page, webui, recorded, connection, stream):
    recorder = recorded[1]
    set_streaming(page, stream)
    model = new_chat(page, webui, connection)

    before = len(recorder.requests)
    chat = send(page, QUESTION, replies=1)
    sent = [body for path, body in recorder.requests[before:] if path == CHAT_PATHS[connection]]
    assert len(sent) == 1, recorder.requests[before:]  # no title or tag tasks
    assert sent[0]["model"].removesuffix(":latest") == "avengers"  # no `oai.` prefix
    assert sent[0].get("stream", connection == "ollama") is stream  # Ollama streams by default
    sent_model = sent[0]["model"]
    first = assistant_replies(chat)[0]
    assert first["content"] == VOTED_TEXT and first["model"] == model, first
    shown = page.locator(f"#message-{first['id']} #response-content-container")
    assert shown.inner_text().strip() == "42"  # `#### 42` drawn as a heading
    assert page.locator(f"#message-{first['id']} #response-message-model-name").inner_text() \
        == model

    before = len(recorder.requests)
    chat = send(page, TRIVIA_QUESTION, replies=2)  # the same chat keeps its model
    sent = [body for path, body in recorder.requests[before:] if path == CHAT_PATHS[connection]]
    assert len(sent) == 1 and sent[0]["model"] == sent_model
    assert [m["content"] for m in sent[0]["messages"] if m["role"] == "user"] \
        == [QUESTION, TRIVIA_QUESTION]  # the whole conversation goes to serve
    second = assistant_replies(chat)[1]
    assert chat["chat"]["models"] == [model] and second["model"] == model
    assert second["content"].strip() and second.get("error") is None
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / f"open_webui_{connection}_{'streamed' if stream else 'whole'}"
                                 ".png")


@pytest.mark.parametrize("connection", list(CONNECTIONS))
def test_open_webui_second_turn_stays_on_the_routed_model(page, webui, connection):
    """The follow-up (a trivia question) in a chat that began with a math question is answered
    by the math model's vote: serve routes a chat by its first user message (part A of
    issue 21); routed per turn it would be llama3.1's `The answer is 41.`"""
    set_streaming(page, True)
    new_chat(page, webui, connection)
    send(page, QUESTION, replies=1)
    chat = send(page, TRIVIA_QUESTION, replies=2)
    assert assistant_replies(chat)[1]["content"] == VOTED_TEXT
