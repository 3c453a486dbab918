"""avengers_core.redact and the guard's parsing helpers (issue 20): what is masked, what
is left alone (a scrubber that eats ordinary failure reasons would hide real problems)."""

from __future__ import annotations

import pytest

from avengers_core.errors import InputError
from avengers_core.redact import has_userinfo, refuse_userinfo, register_secret, scrub
from avengers_core.serve.guard import Guard, bearer_token, host_name


@pytest.mark.parametrize(("text", "secret"), [
    ("cannot connect to http://alice:hunter2@10.0.0.1:8000/v1 (refused)", "hunter2"),
    ("cannot connect to https://bob@host/v1", "bob@"),
    ("HTTP 401: Incorrect API key provided: sk-proj-abcd************wxyz.", "abcd"),
    ("HTTP 401: invalid key sk-ant-api03-0123456789abcdef", "0123456789"),
    ("upstream said: Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payloadpart", "payloadpart"),
    ('{"api_key": "plain-secret-value"}', "plain-secret-value"),
    ("token=abcdef123456 rejected", "abcdef123456"),
    ("hf_abcdefghijklmnop is not valid", "hf_abcdefgh"),
])
def test_secrets_are_masked(text, secret):
    out = scrub(text)
    assert secret not in out and out != text


def test_registered_and_given_secrets_are_masked_anywhere():
    register_secret("correct-horse-battery")
    assert scrub("echo: correct-horse-battery!") == "echo: ***!"
    assert scrub("key zz-given-key-77 quoted", ["zz-given-key-77"]) == "key *** quoted"


@pytest.mark.parametrize("text", [
    "no token for 120 s", "no first token within 120 s", "max_tokens: expected an integer ≥ 1",
    "model 'Qwen/Qwen2.5-7B-Instruct' not found on http://gpu0:8000/v1 (404)",
    "HTTP 429: rate limited, retry after 7 s (fake rate limit)",
    "basic arithmetic: 3 + 4", "task-specific model failed",
])
def test_ordinary_reasons_are_left_alone(text):
    assert scrub(text) == text


@pytest.mark.parametrize(("url", "has"), [
    ("http://alice:pw@host:1/v1", True), ("alice:pw@host:1", True), ("https://tok@h/v1", True),
    ("http://host:8000/v1", False), ("127.0.0.1:11434", False), ("http://[::1]:8000/v1", False),
    ("http://host/v1?q=a@b", False),
])
def test_userinfo_is_recognised(url, has):
    assert has_userinfo(url) is has


def test_refusing_userinfo_names_the_key_option_and_hides_the_password():
    with pytest.raises(InputError) as info:
        refuse_userinfo("http://alice:hunter2@h:1/v1", "--host", "--upstream-key-env")
    assert "--upstream-key-env" in str(info.value) and "hunter2" not in str(info.value)
    assert "http://h:1/v1" in str(info.value)


@pytest.mark.parametrize(("header", "name"), [
    ("LocalHost:11500", "localhost"), ("[::1]:80", "::1"), ("127.0.0.1", "127.0.0.1"),
    ("example.com.:443", "example.com"), ("[::1]", "::1"),
])
def test_host_names(header, name):
    assert host_name(header) == name


def test_origin_patterns_follow_ollama():
    guard = Guard(None, allowed_origins=["https://*.example.com", "http://10.0.0.5:3000"])
    for ok in ("http://localhost", "http://localhost:5173", "https://127.0.0.1:8443",
               "http://0.0.0.0:80", "app://x", "file://", "tauri://localhost",
               "vscode-webview://abc", "HTTP://LOCALHOST:3000", "https://chat.example.com",
               "http://10.0.0.5:3000"):
        assert guard.origin_allowed(ok), ok
    for bad in ("null", "http://localhost.evil.com", "http://evil.com", "https://example.com",
                "http://10.0.0.5:3001", "http://127.0.0.2:80", "chrome-extension://abc"):
        assert not guard.origin_allowed(bad), bad


def test_bearer_tokens():
    assert bearer_token(b"Bearer k") == bearer_token(b"bEaReR k") == b"k"
    assert bearer_token(b"Basic k") is None and bearer_token(b"Bearer") is None
    assert bearer_token(None) is None


def test_the_host_check_follows_the_bind_address():
    loopback = Guard(None)
    assert loopback.host_allowed("127.0.0.1:1") and loopback.host_allowed("[::1]:2")
    assert loopback.host_allowed("127.0.0.5") and not loopback.host_allowed("evil.example")
    assert not loopback.host_allowed("localhost.evil.example:80")
    public = Guard(None, check_host=False)  # bound beyond loopback: any name reaches it
    assert public.host_allowed("evil.example")
    named = Guard(None, check_host=False, allowed_hosts=["chat.example.com"])
    assert named.host_allowed("chat.example.com:443") and not named.host_allowed("evil.example")
    assert Guard(None, allowed_hosts=["*"]).host_allowed("anything.example")


def test_placeholder_keys_do_not_mask_words():
    register_secret("EMPTY")  # vLLM's conventional placeholder key
    assert scrub("the reply was EMPTY") == "the reply was EMPTY"
