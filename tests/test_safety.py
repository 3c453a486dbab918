"""Safe by default: loopback only, cross-site protections on, sessions kept apart, nothing
from a user file ever unpickled or run.

The config is read the way Streamlit reads it; the server test starts the real app and
looks at the listening socket; the session test runs two AppTest sessions in one process
(as two browser tabs share one server); the code guard parses every product source.
"""

from __future__ import annotations

import ast
import base64
import inspect
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / ".streamlit" / "config.toml"


def clean_env() -> dict[str, str]:
    """The environment without STREAMLIT_* overrides, so the project's config decides."""
    return {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")}


# -- 1. the Streamlit configuration ------------------------------------------------------


def test_streamlit_config_is_loopback_protected_and_capped(monkeypatch):
    from streamlit import config

    for name in [k for k in os.environ if k.startswith("STREAMLIT_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(ROOT)  # Streamlit reads $CWD/.streamlit/config.toml
    config.get_config_options(force_reparse=True)
    expected = {
        "server.address": "127.0.0.1",
        "server.allowedHosts": ["127.0.0.1", "localhost"],
        "server.enableXsrfProtection": True,
        "server.enableCORS": True,
        "server.maxUploadSize": 200,
        "browser.gatherUsageStats": False,
    }
    for key, value in expected.items():
        assert config.get_option(key) == value, key
        # said explicitly in the project's file, not left to a default that may change
        assert Path(config.get_where_defined(key)) == CONFIG, key


def listening_addresses(port: int) -> list[str]:
    """Local addresses of the TCP sockets in LISTEN state on `port` (Linux /proc/net)."""
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:
                out.append(address)
    return out


def outward_ipv4() -> str | None:
    """This machine's address on its default route, if it has one (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.123", 9))  # TEST-NET-1: only selects a route
        except OSError:
            return None
        address = s.getsockname()[0]
    return None if address.startswith("127.") else address


def websocket_status(port: int, host: str, origin: str | None = None) -> str:
    """Status line of a WebSocket handshake with Streamlit's stream endpoint."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = ["GET /_stcore/stream HTTP/1.1", f"Host: {host}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
             "Sec-WebSocket-Protocol: streamlit"]
    if origin:
        lines.append(f"Origin: {origin}")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return s.recv(4096).split(b"\r\n")[0].decode()


@pytest.fixture(scope="module")
def served_app():
    """`streamlit run app.py` headless on a free port, with only the project's config."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.headless", "true"],
        cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120  # generous: two shared cores
        while not listening_addresses(port):
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.time() < deadline, "streamlit did not start listening in 120 s"
            time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_app_listens_on_loopback_only(served_app):
    assert listening_addresses(served_app) == ["0100007F"]  # 127.0.0.1, and no IPv6 socket
    with socket.create_connection(("127.0.0.1", served_app), timeout=10):
        pass
    outward = outward_ipv4()
    if outward:  # the machine's own network address does not reach the app
        with pytest.raises(OSError):
            socket.create_connection((outward, served_app), timeout=5).close()


def test_app_refuses_foreign_hosts_and_origins(served_app):
    port = served_app
    assert "101" in websocket_status(port, f"127.0.0.1:{port}")
    assert "101" in websocket_status(port, f"localhost:{port}", f"http://localhost:{port}")
    # a DNS-rebinding page: same-origin for the browser, but the Host names the attacker
    assert "403" in websocket_status(port, f"evil.example:{port}", f"http://evil.example:{port}")
    # another site's page talking to the local app (cross-origin)
    assert "403" in websocket_status(port, f"127.0.0.1:{port}", "http://evil.example")


# -- 4. two browser sessions never see each other's data ---------------------------------


def cached_values():
    """(function name, stored value) of every st.cache_resource / st.cache_data entry.

    Streamlit has no public listing of cached values, so this reads its cache registries;
    cache_data entries are kept serialised, and are searched as bytes.
    """
    from streamlit.runtime.caching import cache_data_api, cache_resource_api

    for caches in list(cache_resource_api._resource_caches._function_caches.values()):
        for cache in list(caches.values()):
            for result in list(cache._mem_cache.values()):
                yield cache.display_name, result.value
    for caches in list(cache_data_api._data_caches._function_caches.values()):
        for cache in list(caches.values()):
            for blob in list(cache.storage._mem_cache.values()):
                yield cache.display_name, blob


def holds(value, markers: list[str], depth: int = 8, seen: set | None = None) -> bool:
    """True when `value` (or anything it contains, a few levels deep) mentions a marker."""
    seen = set() if seen is None else seen
    if depth < 0 or id(value) in seen:
        return False
    seen.add(id(value))
    if isinstance(value, str):
        return any(m in value for m in markers)
    if isinstance(value, bytes | bytearray):
        return any(m.encode("utf-8") in value for m in markers)
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "USO" and any(holds(v, markers, depth - 1, seen)
                                                for v in value.ravel().tolist())
    if isinstance(value, dict):
        return any(holds(k, markers, depth - 1, seen) or holds(v, markers, depth - 1, seen)
                   for k, v in list(value.items()))
    if isinstance(value, list | tuple | set | frozenset):
        return any(holds(v, markers, depth - 1, seen) for v in list(value))
    if callable(value) or inspect.ismodule(value) or isinstance(value, type):
        return False
    attrs = getattr(value, "__dict__", None)
    return attrs is not None and holds(attrs, markers, depth - 1, seen)


def rendered(at) -> str:
    """Everything an AppTest session drew, as one string (element protos, tables included)."""
    out = []

    def walk(node) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None:
            out.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at.main)
    walk(at.sidebar)
    return "\n".join(out)


def test_two_sessions_never_see_each_others_upload(monkeypatch, tmp_path):
    import importlib

    from streamlit.testing.v1 import AppTest

    from app_state import compute, session
    from avengers_core.data.readers import read_table

    monkeypatch.setenv("AVENGERS_UMAP", "0")
    monkeypatch.setenv("AVENGERS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(ROOT)
    example = ROOT / "assets" / "example_table.csv"
    markers = read_table(example).queries

    a = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    a.run()
    a.file_uploader[0].set_value((example.name, example.read_bytes(), "text/csv")).run()
    assert not a.exception, [e.value for e in a.exception]
    assert a.session_state["dataset"].startswith("upload:")
    a.switch_page("app_pages/clusters.py").run()  # embeddings, fit, labels, map of A's table
    assert not a.exception and not a.error, [e.value for e in [*a.exception, *a.error]]
    assert any(m in rendered(a) for m in markers)  # A does see its own queries

    b = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    b.run()
    assert not b.exception, [e.value for e in b.exception]
    assert b.session_state["dataset"] == "llmrouter"
    assert "tables" not in b.session_state or b.session_state["tables"] == {}
    assert b.selectbox[0].options == ["llmrouter (demo)"]
    assert not set(markers) & set(session._demo_table("llmrouter").queries)  # markers unique
    shown = rendered(b)
    assert example.name not in shown and not any(m in shown for m in markers)

    # No module-level state of the app's modules holds A's table ...
    for module in (compute, session):
        for name, value in vars(module).items():
            assert not holds(value, markers), f"{module.__name__}.{name} holds A's data"
    # ... and process-wide caches hold it only under the dataset's key (the SHA-256 of its
    # content), so only a session that has the very same table can reach those entries.
    holders = {name for name, value in cached_values() if holds(value, markers)}
    assert holders, "A's clusters page cached nothing of its table: the check below is void"
    for name in holders:
        module, func_name = name.rsplit(".", 1)
        func = getattr(importlib.import_module(module), func_name)
        assert "key" in inspect.signature(func).parameters, f"{name} is not keyed by dataset"


# -- 5. nothing loads pickles or runs code from user files -------------------------------

PICKLING_MODULES = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve",
                    "marshal"}
UNSAFE_CALLS = {"torch.load", "read_pickle", "yaml.unsafe_load", "yaml.full_load",
                "os.system", "os.popen"}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader"}


def dotted(node: ast.AST) -> str:
    """`a.b.c` for a Name/Attribute chain, '' otherwise."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr}" if base else node.attr
    return ""


def is_false(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is False


def unsafe_uses(source: str, filename: str = "<src>") -> list[str]:
    """Every place in `source` that could unpickle data or run code: pickle-like modules,
    eval/exec, torch.load, pandas.read_pickle, np.load without allow_pickle=False,
    allow_pickle/trust_remote_code not False, yaml.load without a safe Loader, shell=True."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""]
            for name in names:
                if name.split(".")[0] in PICKLING_MODULES:
                    found.append(f"{where}: imports {name}")
        if not isinstance(node, ast.Call):
            continue
        name = dotted(node.func)
        kw = {k.arg: k.value for k in node.keywords}
        if name in ("eval", "exec", "compile", "__import__"):
            found.append(f"{where}: {name}()")
        if name in UNSAFE_CALLS or name.rsplit(".", 1)[-1] in UNSAFE_CALLS:
            found.append(f"{where}: {name}()")
        if name in ("np.load", "numpy.load") and not is_false(kw.get("allow_pickle")):
            found.append(f"{where}: {name}() without allow_pickle=False")
        for arg in ("allow_pickle", "trust_remote_code"):
            if arg in kw and not is_false(kw[arg]):
                found.append(f"{where}: {arg} is not False")
        if "shell" in kw and not is_false(kw["shell"]):
            found.append(f"{where}: shell=True")
        if name.endswith("yaml.load") or name.endswith("yaml.load_all"):
            loader = dotted(kw["Loader"]).rsplit(".", 1)[-1] if "Loader" in kw else ""
            if loader not in SAFE_YAML_LOADERS:
                found.append(f"{where}: {name}() without a safe Loader")
    return found


def product_sources() -> list[Path]:
    files = [ROOT / "app.py", *sorted((ROOT / "app_state").glob("*.py")),
             *sorted((ROOT / "app_pages").glob("*.py")),
             *sorted((ROOT / "avengers_core").rglob("*.py"))]
    assert len(files) > 20 and all(f.exists() for f in files)
    return files


def test_no_product_code_unpickles_or_runs_code():
    problems = [p for f in product_sources()
                for p in unsafe_uses(f.read_text(encoding="utf-8"), str(f.relative_to(ROOT)))]
    assert problems == []


@pytest.mark.parametrize("snippet", [
    "import pickle",
    "from pickle import loads",
    "import joblib\njoblib.load('m.joblib')",
    "import cloudpickle",
    "torch.load('w.pt')",
    "pd.read_pickle('t.pkl')",
    "np.load('x.npz')",
    "np.load('x.npz', allow_pickle=True)",
    "numpy.load(f, allow_pickle=flag)",
    "SentenceTransformer(name, trust_remote_code=True)",
    "eval(text)",
    "exec(code)",
    "yaml.load(text)",
    "yaml.load(text, Loader=yaml.Loader)",
    "yaml.unsafe_load(text)",
    "subprocess.run(cmd, shell=True)",
    "os.system(cmd)",
])
def test_guard_catches_each_unsafe_pattern(snippet):
    assert unsafe_uses(snippet)


@pytest.mark.parametrize("snippet", [
    "np.load('x.npz', allow_pickle=False)",
    "np.save(buf, a, allow_pickle=False)",
    "ast.literal_eval(raw)",
    "re.compile(pattern)",
    "yaml.safe_load(text)",
    "yaml.load(text, Loader=yaml.SafeLoader)",
    "subprocess.Popen([sys.executable, '-m', 'x'], shell=False)",
    "json.loads(line)",
])
def test_guard_passes_safe_code(snippet):
    assert unsafe_uses(snippet) == []
