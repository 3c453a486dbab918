"""Issue 20: `avengers serve` on a user's machine lets no web page, rebinding host, shared
profile or error message past it. One test (or more) per finding of the issue, against the
scripted engine (tests/fake_ollama.py), counting on it that refused requests reached no
engine. The browser's side is tests/test_serve_browser.py.
"""

from __future__ import annotations

import io
import json
import socket
import time
import tracemalloc
import zipfile
from pathlib import Path

import httpx
import pytest

from avengers_core.cli import main
from avengers_core.errors import InputError
from avengers_core.routing.profile import load_profile
from avengers_core.serve.limits import Limits
from tests.support.fake_ollama import FakeOllama, ModelScript
from tests.support.profiles import MATH, build_profile
from tests.support.serve_util import serving

QWEN = "qwen2.5:7b-instruct"
LLAMA = "llama3.1:8b"
CHAT_PATHS = ("/api/chat", "/api/generate", "/v1/chat/completions", "/v1/embeddings")
EVIL = "https://evil.example"


def scripts() -> dict[str, ModelScript]:
    return {QWEN: ModelScript(replies=["#### 42"]), LLAMA: ModelScript(replies=["#### 41"]),
            "nomic-embed-text": ModelScript(), "minilm": ModelScript()}


@pytest.fixture(scope="module")
def srv():
    with FakeOllama(scripts()) as s:
        yield s


@pytest.fixture(autouse=True)
def fresh_scripts(srv, tmp_path, monkeypatch):
    srv.models.update(scripts())
    monkeypatch.setenv("AVENGERS_CACHE_DIR", str(tmp_path / "cache"))  # never the user's


@pytest.fixture(scope="module")
def profile(srv, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AVENGERS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield build_profile(srv.url, tmp_path_factory.mktemp("sec") / "profile")


@pytest.fixture(scope="module")
def url(srv, profile):
    with serving([str(profile), "--host", srv.url, "--samples", "3"]) as u:
        yield u


def engine_calls(srv: FakeOllama) -> int:
    """Requests that reached the engine for a reply or an embedding."""
    return sum(r["path"] in CHAT_PATHS or r["path"] == "/api/embed" for r in srv.requests)


def chat_body(path: str, content: str = MATH[0], model: str = "avengers") -> dict:
    if path == "/api/generate":
        return {"model": model, "prompt": content, "stream": False}
    return {"model": model, "stream": False, "messages": [{"role": "user", "content": content}]}


def error_text(path: str, res: httpx.Response) -> str:
    """The error message of a reply in its protocol's shape (and checks that shape)."""
    body = res.json()
    if path.startswith("/v1"):
        assert set(body["error"]) >= {"message", "type", "code"}
        return body["error"]["message"]
    assert isinstance(body["error"], str)
    return body["error"]


# -- 1. cross-site requests ---------------------------------------------------------------
@pytest.mark.parametrize("path", ["/api/chat", "/api/generate", "/v1/chat/completions"])
@pytest.mark.parametrize("origin", [EVIL, "null", "http://127.0.0.2:8080"])
def test_a_cross_site_simple_post_is_refused_before_any_engine_work(url, srv, path, origin):
    before = engine_calls(srv)
    res = httpx.post(url + path, content=json.dumps(chat_body(path)), timeout=30,
                     headers={"Origin": origin, "Content-Type": "text/plain;charset=UTF-8"})
    assert res.status_code == 403
    assert "not allowed" in error_text(path, res) and "--allowed-origins" in error_text(path, res)
    assert "access-control-allow-origin" not in res.headers
    assert engine_calls(srv) == before


def test_a_cross_site_preflight_is_refused(url):
    res = httpx.options(url + "/v1/chat/completions", timeout=10, headers={
        "Origin": EVIL, "Access-Control-Request-Method": "POST"})
    assert res.status_code == 403 and "access-control-allow-origin" not in res.headers


@pytest.mark.parametrize("origin", ["http://localhost:3000", "http://127.0.0.1:8080",
                                    "https://localhost", "app://obsidian.md",
                                    "vscode-webview://abc123", "tauri://localhost"])
def test_allowed_origins_get_real_cors(url, srv, origin):
    pre = httpx.options(url + "/v1/chat/completions", timeout=10, headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, x-stainless-os"})
    assert pre.status_code == 204
    assert pre.headers["access-control-allow-origin"] == origin
    assert "POST" in pre.headers["access-control-allow-methods"]
    allowed = {h.strip().lower() for h in pre.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "x-stainless-os"} <= allowed
    before = engine_calls(srv)
    res = httpx.post(url + "/v1/chat/completions", json=chat_body("/v1/chat/completions"),
                     headers={"Origin": origin}, timeout=60)
    assert res.status_code == 200 and res.json()["avengers"]["answer"] == "42"
    assert res.headers["access-control-allow-origin"] == origin
    assert "x-avengers-models" in res.headers["access-control-expose-headers"]
    assert engine_calls(srv) > before


@pytest.mark.parametrize(("site", "mode", "status"), [
    ("cross-site", "no-cors", 403), ("same-site", "cors", 403), ("cross-site", "navigate", 200),
    ("same-origin", "cors", 200), ("none", "navigate", 200)])
def test_fetch_metadata_catches_cross_site_requests_without_origin(url, site, mode, status):
    res = httpx.get(url + "/api/tags", timeout=10,
                    headers={"Sec-Fetch-Site": site, "Sec-Fetch-Mode": mode})
    assert res.status_code == status


def test_requests_without_origin_work_as_before(url):
    res = httpx.post(url + "/api/chat", content=json.dumps(chat_body("/api/chat")), timeout=60)
    assert res.status_code == 200 and res.json()["avengers"]["answer"] == "42"
    assert "access-control-allow-origin" not in res.headers


def test_allowed_origins_and_hosts_extend_the_defaults(srv, profile, monkeypatch):
    monkeypatch.setenv("AVENGERS_ALLOWED_ORIGINS", "https://webui.example")
    with serving([str(profile), "--host", srv.url, "--samples", "1", "--allowed-origins",
                  "http://192.168.1.5:3000", "--allowed-hosts", "proxy.example"]) as u:
        for origin, status in (("http://192.168.1.5:3000", 200), ("https://webui.example", 200),
                               ("http://localhost:5173", 200), ("http://192.168.1.6:3000", 403)):
            res = httpx.get(u + "/api/tags", headers={"Origin": origin}, timeout=10)
            assert res.status_code == status, origin
        port = u.rsplit(":", 1)[1]
        for host, status in ((f"proxy.example:{port}", 200), ("proxy.example", 200),
                             (f"evil.example:{port}", 403)):
            assert httpx.get(u + "/api/tags", headers={"Host": host}, timeout=10).status_code \
                == status, host


# -- 2. DNS rebinding ---------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "path"), [("GET", "/api/tags"), ("GET", "/v1/models"),
                                              ("POST", "/v1/chat/completions"),
                                              ("POST", "/api/chat")])
def test_a_rebinding_host_is_refused_before_any_work(url, srv, method, path):
    port = url.rsplit(":", 1)[1]
    before = engine_calls(srv)
    body = chat_body(path, model=QWEN) if method == "POST" else None
    res = httpx.request(method, url + path, json=body, timeout=30,
                        headers={"Host": f"rebind.evil.example:{port}"})
    assert res.status_code == 403
    assert "rebind.evil.example" in error_text(path, res) and "--allowed-hosts" in \
        error_text(path, res)
    assert engine_calls(srv) == before


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "LOCALHOST."])
def test_loopback_hosts_are_served(url, host):
    port = url.rsplit(":", 1)[1]
    res = httpx.get(url + "/api/tags", headers={"Host": f"{host}:{port}"}, timeout=10)
    assert res.status_code == 200 and "avengers:latest" in {m["name"] for m in res.json()["models"]}


# -- 3. a shared profile names a server as its embedder --------------------------------------
def shared_profile(profile: Path, out: Path, embedder_id: str) -> Path:
    """A copy of `profile` whose profile.json names `embedder_id` (the only change a
    sharer needs: the checksum covers the centroids)."""
    out.mkdir()
    doc = json.loads((profile / "profile.json").read_text())
    doc["embedder"]["id"] = embedder_id
    (out / "profile.json").write_text(json.dumps(doc))
    (out / "centroids.npz").write_bytes((profile / "centroids.npz").read_bytes())
    return out


@pytest.mark.parametrize("command", ["route", "vote", "serve"])
def test_a_profile_never_picks_the_server_that_gets_the_queries(srv, profile, tmp_path,
                                                                 monkeypatch, capsys, command):
    monkeypatch.delenv("AVENGERS_TRUST_PROFILE_EMBEDDER", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-users-own-secret-0123456789")
    with FakeOllama({"minilm": ModelScript()}) as thief:
        theirs = shared_profile(profile, tmp_path / "shared", f"openai:minilm@{thief.url}/v1")
        argv = [command, str(theirs)] + ([MATH[0]] if command != "serve" else [])
        argv += ["--host", srv.url] if command != "route" else []
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and f"{thief.url}/v1" in err and "--embedder" in err
        assert "--trust-profile-embedder" in err
        assert thief.requests == []


def test_a_trusted_profile_embedder_gets_no_key_the_user_did_not_name(srv, profile, tmp_path,
                                                                       monkeypatch, capsys):
    monkeypatch.delenv("AVENGERS_TRUST_PROFILE_EMBEDDER", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-users-own-secret-0123456789")
    monkeypatch.setenv("AVENGERS_CACHE_DIR", str(tmp_path / "cache"))
    with FakeOllama({"minilm": ModelScript()}) as server:
        theirs = shared_profile(profile, tmp_path / "shared", f"openai:minilm@{server.url}/v1")
        assert main(["route", str(theirs), MATH[0], "--json", "--trust-profile-embedder"]) == 0
        sent = [r["authorization"] for r in server.requests if r["path"] == "/v1/embeddings"]
    assert sent and not any("sk-users-own-secret" in (a or "") for a in sent)
    assert json.loads(capsys.readouterr().out)["models"]


def test_a_profile_with_an_ollama_embedder_needs_the_user_to_name_it(srv, profile, monkeypatch,
                                                                      capsys):
    """The profile cannot choose the host, but still never decides to contact one."""
    monkeypatch.delenv("AVENGERS_TRUST_PROFILE_EMBEDDER", raising=False)
    monkeypatch.setenv("OLLAMA_HOST", srv.url)
    before = engine_calls(srv)
    assert main(["route", str(profile), MATH[0]]) == 2
    err = capsys.readouterr().err
    assert srv.url in err and "ollama:nomic-embed-text" in err and engine_calls(srv) == before
    assert main(["route", str(profile), MATH[0], "--json",
                 "--embedder", "ollama:nomic-embed-text"]) == 0
    assert engine_calls(srv) > before  # named by the user: used


# -- 4. credentials in URLs and in upstream errors --------------------------------------------
def test_userinfo_in_host_is_refused_pointing_at_the_key_option(srv, profile, capsys):
    host = srv.url.replace("http://", "http://alice:hunter2@")
    assert main(["serve", str(profile), "--host", host]) == 2
    err = capsys.readouterr().err
    assert "--upstream-key-env" in err and "hunter2" not in err and "alice" not in err
    assert main(["vote", str(profile), MATH[0], "--host", host]) == 2
    err = capsys.readouterr().err
    assert "--api-key-env" in err and "hunter2" not in err


def test_userinfo_in_an_endpoints_file_is_refused(tmp_path):
    from avengers_core.backends.endpoints import load_endpoints

    path = tmp_path / "e.toml"
    path.write_text('[models.a]\nbackend = "openai"\nurls = ["http://bob:s3cret@gpu0:8000/v1"]\n')
    with pytest.raises(InputError) as info:
        load_endpoints(path)
    assert "api_key_env" in str(info.value) and "s3cret" not in str(info.value)


UPSTREAM_KEY = "sk-upstream-0123456789abcdefXYZ"


@pytest.fixture
def leaky(srv, profile, monkeypatch):
    """serve with an upstream key, in front of an engine that quotes that key in its 401."""
    monkeypatch.setenv("UPSTREAM_KEY", UPSTREAM_KEY)
    monkeypatch.setenv("OLLAMA_HOST", srv.url)  # the profile's embedder
    with serving([str(profile), "--backend", "openai", "--host", srv.url + "/v1",
                  "--upstream-key-env", "UPSTREAM_KEY", "--samples", "2", "--model-map",
                  json.dumps({"qwen2.5-7b-instruct": QWEN})]) as u:
        srv.models[QWEN] = ModelScript(fail="http401")
        yield u


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/chat"])
@pytest.mark.parametrize("model", ["avengers", "avengers-route", QWEN])
@pytest.mark.parametrize("stream", [False, True])
def test_an_upstream_error_quoting_the_key_is_scrubbed(leaky, srv, path, model, stream):
    body = {**chat_body(path, model=model), "stream": stream}
    with httpx.stream("POST", leaky + path, json=body, timeout=60) as res:
        text = res.read().decode()
    assert any(r.get("authorization") == f"Bearer {UPSTREAM_KEY}" for r in srv.requests)
    assert "401" in text or "Incorrect API key" in text  # the failure is reported...
    assert UPSTREAM_KEY not in text and "sk-upstream" not in text  # ...without the key
    assert res.status_code in (200, 502)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/chat"])
@pytest.mark.parametrize("stream", [False, True])
def test_credentials_of_an_environment_host_never_reach_a_client(srv, profile, monkeypatch,
                                                                 path, stream):
    monkeypatch.setenv("OLLAMA_HOST", srv.url.replace("http://", "http://alice:hunter2@"))
    with serving([str(profile), "--samples", "1"]) as u:
        srv.models[QWEN] = ModelScript(fail="http500")
        for model in ("avengers", "avengers-route", QWEN):
            body = {**chat_body(path, model=model), "stream": stream}
            with httpx.stream("POST", u + path, json=body, timeout=60) as res:
                text = res.read().decode()
            assert "500" in text or "failed" in text, text
            assert "hunter2" not in text and "alice" not in text


def test_log_lines_are_scrubbed():
    import logging

    from avengers_core.redact import ScrubFilter, register_secret

    register_secret("tok-registered-987654321")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ScrubFilter())
    log = logging.getLogger("avengers-test-scrub")
    log.addHandler(handler)
    try:
        try:
            raise RuntimeError("upstream http://alice:hunter2@h:1/v1 said tok-registered-987654321")
        except RuntimeError:
            log.exception("failed at %s", "http://carol:pw123456@h:2/v1")
    finally:
        log.removeHandler(handler)
    out = stream.getvalue()
    assert "http://h:2/v1" in out and "RuntimeError" in out
    for secret in ("hunter2", "pw123456", "tok-registered", "alice", "carol"):
        assert secret not in out


# -- 5. slow and many clients ----------------------------------------------------------------
def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=30)


def read_until_closed(sock: socket.socket, seconds: float) -> bytes | None:
    """What the server sends on `sock` until it closes it; None if it is still open after
    `seconds`."""
    sock.settimeout(seconds)
    deadline = time.monotonic() + seconds
    data = b""
    try:
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
    except TimeoutError:
        return None
    except ConnectionError:
        return data
    return None


def chats(srv: FakeOllama) -> int:
    return sum(r["path"] == "/api/chat" for r in srv.requests)


def test_stalled_clients_are_dropped_and_never_block_others(srv, profile, monkeypatch):
    monkeypatch.setenv("SERVE_KEY", "client-key-1234")
    limits = Limits(header_timeout_s=1.0, body_timeout_s=2.0, idle_timeout_s=1.0)
    before = chats(srv)
    with serving([str(profile), "--host", srv.url, "--samples", "1", "--api-key-env",
                  "SERVE_KEY"], limits) as u:
        silent = [connect(u) for _ in range(10)]
        half_head = [connect(u) for _ in range(10)]
        for s in half_head:
            s.sendall(b"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
        no_body = [connect(u) for _ in range(10)]
        for s in no_body:
            s.sendall(b"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 500\r\n"
                      b"Authorization: Bearer client-key-1234\r\n\r\n{\"model\"")
        started = time.monotonic()
        ok = httpx.post(u + "/api/chat", json=chat_body("/api/chat"), timeout=30,
                        headers={"Authorization": "bearer client-key-1234"})
        assert ok.status_code == 200 and time.monotonic() - started < 20
        assert all(read_until_closed(s, 30) == b"" for s in silent + half_head)
        answers = [read_until_closed(s, 30) for s in no_body]
        assert all(a is not None and a.startswith(b"HTTP/1.1 408") for a in answers), answers
        assert all(b"request body not received within 2 s" in a for a in answers), answers[0]
        for s in silent + half_head + no_body:
            s.close()
    assert chats(srv) == before + 1  # only the good request's sample reached the engine


def test_connections_beyond_the_cap_get_503(srv, profile):
    limits = Limits(header_timeout_s=60, max_connections=5)
    with serving([str(profile), "--host", srv.url, "--samples", "1"], limits) as u:
        held = [connect(u) for _ in range(5)]
        with httpx.Client(timeout=10) as c:
            busy = c.get(u + "/v1/models")
        assert busy.status_code == 503 and busy.json()["error"]["code"] == "server_busy"
        assert "too many open connections" in busy.json()["error"]["message"]
        with httpx.Client(timeout=10) as c:
            assert "at most 5" in c.get(u + "/api/tags").json()["error"]
        for s in held:
            s.close()
        deadline = time.monotonic() + 30
        while True:  # the server sees the held connections close
            with httpx.Client(timeout=10) as c:
                status = c.get(u + "/api/tags").status_code
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert status == 200


# -- 6. a compressed bomb in a profile -------------------------------------------------------
def npy_header(shape: tuple[int, ...]) -> bytes:
    from numpy.lib import format as fmt

    buf = io.BytesIO()
    fmt.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buf.getvalue()


def bomb_zip(profile: Path, out: Path, npz: bytes) -> Path:
    """A profile zip whose centroids.npz is `npz`, recorded in profile.json as genuine."""
    import hashlib

    doc = json.loads((profile / "profile.json").read_text())
    doc["centroids_sha256"] = hashlib.sha256(npz).hexdigest()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("profile.json", json.dumps(doc))
        z.writestr("centroids.npz", npz, compress_type=zipfile.ZIP_STORED)
    return out


def inflating_npz(megabytes: int) -> bytes:
    """An .npz whose centroids.npy inflates to `megabytes` MiB of zeros."""
    buf = io.BytesIO()
    rows = megabytes * 256  # rows of 1024 float32 = 4 KiB
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z, \
            z.open("centroids.npy", "w", force_zip64=True) as f:
        f.write(npy_header((rows, 1024)))
        zeros = bytes(1 << 20)
        for _ in range(megabytes):
            f.write(zeros)
    return buf.getvalue()


def lying_npz() -> bytes:
    """An .npz whose centroids.npy header declares 40 GB (and holds 16 bytes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("centroids.npy", npy_header((100_000, 100_000)) + bytes(16))
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["inflating", "lying"])
def test_a_profile_bomb_is_refused_before_it_inflates(profile, tmp_path, kind):
    npz = inflating_npz(96) if kind == "inflating" else lying_npz()
    assert len(npz) < 1 << 20  # small on disk
    path = bomb_zip(profile, tmp_path / "bomb.zip", npz)
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(InputError) as info:
            load_profile(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert "centroids.npz" in message and "centroids.npy" in message and "\n" not in message
    assert "expected at most" in message
    assert peak < 16 << 20  # far less than the 96 MiB or 40 GB it would take
    assert time.monotonic() - started < 10


# -- 7. an endpoints file names a secret of the user's environment ---------------------------
def endpoints_file(tmp_path: Path, url: str, key_env: str) -> Path:
    path = tmp_path / "endpoints.toml"
    path.write_text(f'[models."qwen2.5-7b-instruct"]\nbackend = "openai"\n'
                    f'urls = ["{url}/v1"]\nmodel = "{QWEN}"\napi_key_env = "{key_env}"\n')
    return path


def test_an_endpoints_file_cannot_send_an_arbitrary_secret(profile, tmp_path, monkeypatch,
                                                           capsys):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-do-not-send-42")
    monkeypatch.delenv("AVENGERS_KEY_ENVS", raising=False)
    with FakeOllama({QWEN: ModelScript(replies=["#### 42"])}) as theirs:
        path = endpoints_file(tmp_path, theirs.url, "AWS_SECRET_ACCESS_KEY")
        code = main(["vote", str(profile), MATH[0], "--endpoints", str(path), "--host",
                     theirs.url, "--samples", "1"])
        err = capsys.readouterr().err
        assert code == 2 and "AWS_SECRET_ACCESS_KEY" in err and "--allow-key-env" in err
        assert "aws-secret" not in err
        assert not any("aws-secret" in (r.get("authorization") or "") for r in theirs.requests)
        assert engine_calls(theirs) == 0


def test_an_allowed_key_variable_is_sent_and_announced(profile, tmp_path, monkeypatch, capsys,
                                                        caplog):
    monkeypatch.setenv("MY_VLLM_KEY", "vllm-key-for-gpu0-777")
    with FakeOllama({QWEN: ModelScript(replies=["#### 42"]),
                     "nomic-embed-text": ModelScript()}) as gpu0:
        path = endpoints_file(tmp_path, gpu0.url, "MY_VLLM_KEY")
        code = main(["vote", str(profile), MATH[0], "--endpoints", str(path), "--host",
                     gpu0.url, "--samples", "1", "--allow-key-env", "MY_VLLM_KEY", "--json"])
        captured = capsys.readouterr()
        sent = [r["authorization"] for r in gpu0.requests if r["path"] == "/v1/chat/completions"]
    assert code == 0 and sent == ["Bearer vllm-key-for-gpu0-777"]
    # one log line (stderr outside pytest) names the variable and the host, never the key
    note = [r.getMessage() for r in caplog.records if "MY_VLLM_KEY" in r.getMessage()]
    assert len(note) == 1 and f"{gpu0.url}/v1" in note[0]
    assert "vllm-key" not in captured.err + captured.out + note[0]


def test_the_apps_endpoints_upload_follows_the_same_rule(srv, monkeypatch):
    from app_state.engines import connect as app_connect

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-do-not-send-42")
    monkeypatch.delenv("AVENGERS_KEY_ENVS", raising=False)
    upload = (f'[models.q]\nbackend = "openai"\nurls = ["{srv.url}/v1"]\nmodel = "{QWEN}"\n'
              'api_key_env = "AWS_SECRET_ACCESS_KEY"\n').encode()
    fn = app_connect.__wrapped__  # the page's call, without Streamlit's cache
    with pytest.raises(InputError, match="api_key_env 'AWS_SECRET_ACCESS_KEY' is not a key"):
        fn("ollama", srv.url, "", upload, "theirs.toml")
    eng, models = fn("ollama", srv.url, "", upload, "theirs.toml", "AWS_SECRET_ACCESS_KEY")
    assert "q" in models  # allowed by the user in the page's field: used
    with pytest.raises(InputError, match="API key variable field"):
        fn("ollama", srv.url.replace("//", "//u:p@"), "", None, "")


# -- 8. surrogates, deep JSON, the Bearer scheme's case ------------------------------------------
@pytest.mark.parametrize("path", ["/api/chat", "/api/generate", "/v1/chat/completions"])
def test_a_lone_surrogate_is_a_400_naming_the_field(url, srv, path):
    raw = json.dumps(chat_body(path, content="hi \ud800 there"), ensure_ascii=True).encode()
    assert b"\\ud800" in raw
    before = engine_calls(srv)
    res = httpx.post(url + path, content=raw, timeout=30)
    assert res.status_code == 400
    message = error_text(path, res)
    field = "prompt" if path == "/api/generate" else "messages[0].content"
    assert field in message and "surrogate" in message and srv.url not in message
    assert engine_calls(srv) == before


@pytest.mark.parametrize("path", ["/api/chat", "/v1/chat/completions"])
def test_deep_json_and_bad_bytes_are_400(url, path):
    deep = b'{"messages": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    res = httpx.post(url + path, content=deep, timeout=30)
    assert res.status_code == 400 and "nested more than" in error_text(path, res)
    res = httpx.post(url + path, content=b'{"model": "avengers\xff"}', timeout=30)
    assert res.status_code == 400 and "UTF-8" in error_text(path, res)


def test_the_bearer_scheme_is_case_insensitive(srv, profile, monkeypatch):
    monkeypatch.setenv("SERVE_KEY", "client-key-1234")
    with serving([str(profile), "--host", srv.url, "--samples", "1",
                  "--api-key-env", "SERVE_KEY"]) as u:
        for scheme, status in (("Bearer", 200), ("bearer", 200), ("BEARER", 200),
                               ("Basic", 401), ("Bearerx", 401)):
            res = httpx.get(u + "/v1/models", timeout=10,
                            headers={"Authorization": f"{scheme} client-key-1234"})
            assert res.status_code == status, scheme
