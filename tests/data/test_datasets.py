"""Demo datasets: resolution from the data directory, download with checksum, errors."""

import hashlib
import http.server
import threading
from functools import partial

import pytest

from avengers_core.data import datasets
from avengers_core.data.datasets import DataFile, Dataset
from avengers_core.errors import InputError


@pytest.fixture
def served(tmp_path):
    """A loopback HTTP server over a folder with one file."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "f.txt").write_bytes(b"hello routing\n")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def register(monkeypatch, url, sha):
    ds = Dataset("toyset", "toy", "MIT", (DataFile("f.txt", url, sha),))
    monkeypatch.setitem(datasets.DATASETS, "toyset", ds)


def test_download_verifies_checksum(tmp_path, monkeypatch, served):
    monkeypatch.setenv("AVENGERS_DATA_DIR", str(tmp_path / "data"))
    register(monkeypatch, served + "/f.txt", hashlib.sha256(b"hello routing\n").hexdigest())
    seen = []
    path = datasets.demo_file("toyset", "f.txt", progress=lambda d, t, m: seen.append(d))
    assert path.read_bytes() == b"hello routing\n"
    assert seen and seen[-1] == 14
    assert datasets.fetch(["toyset"]) == {"toyset/f.txt": "ok"}


def test_bad_checksum_removes_file(tmp_path, monkeypatch, served):
    monkeypatch.setenv("AVENGERS_DATA_DIR", str(tmp_path / "data"))
    register(monkeypatch, served + "/f.txt", "0" * 64)
    with pytest.raises(InputError, match="checksum mismatch"):
        datasets.demo_file("toyset", "f.txt")
    assert not (tmp_path / "data" / "toyset" / "f.txt").exists()


def test_offline_gives_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("AVENGERS_DATA_DIR", str(tmp_path / "data"))
    register(monkeypatch, "http://127.0.0.1:9/f.txt", "0" * 64)  # nothing listens on port 9
    with pytest.raises(InputError, match="download from http://127.0.0.1:9/f.txt failed"):
        datasets.demo_file("toyset", "f.txt")


def test_unknown_dataset():
    with pytest.raises(InputError, match="unknown demo dataset"):
        datasets.demo_file("nope", "x")


def test_shared_demo_files_match_registry():
    for ds in ("llmrouter", "gsm8k"):
        for f in datasets.DATASETS[ds].files:
            assert datasets.sha256_of(datasets.demo_file(ds, f.name, download=False)) == f.sha256


def test_llmrouter_table(demo_table):
    assert len(demo_table) == 5989  # 6,108 records less the repeated questions
    assert demo_table.duplicates_merged == 119
    assert len(demo_table.models) == 9
    assert len(set(demo_table.tasks)) == 14 and "" not in demo_table.tasks
    assert demo_table.costs is not None
    best = max(demo_table.task_model_means().mean().items(), key=lambda kv: kv[1])
    assert best[0] == "llama-3.1-nemotron-51b-instruct"


class CutHandler(http.server.BaseHTTPRequestHandler):
    """Promises 1,000 bytes, sends 10 and hangs up: a download cut by a network failure."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"0123456789")
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def cut_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), CutHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_bad_checksum_leaves_no_file_at_all(tmp_path, monkeypatch, served):
    monkeypatch.setenv("AVENGERS_DATA_DIR", str(tmp_path / "data"))
    register(monkeypatch, served + "/f.txt", "0" * 64)
    with pytest.raises(InputError, match="checksum mismatch after download"):
        datasets.demo_file("toyset", "f.txt")
    assert list((tmp_path / "data" / "toyset").iterdir()) == []  # no temp or partial file


def test_cut_download_leaves_no_file_and_says_why(tmp_path, monkeypatch, cut_server):
    monkeypatch.setenv("AVENGERS_DATA_DIR", str(tmp_path / "data"))
    register(monkeypatch, cut_server + "/f.txt", hashlib.sha256(b"x" * 1000).hexdigest())
    with pytest.raises(InputError, match="f.txt: (checksum mismatch|not found locally)"):
        datasets.demo_file("toyset", "f.txt")
    assert list((tmp_path / "data" / "toyset").iterdir()) == []
    assert not datasets.available("toyset")


def test_interrupted_download_leaves_no_file(tmp_path, monkeypatch, served):
    monkeypatch.setenv("AVENGERS_DATA_DIR", str(tmp_path / "data"))
    register(monkeypatch, served + "/f.txt", hashlib.sha256(b"hello routing\n").hexdigest())

    def ctrl_c(done, total, message):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        datasets.demo_file("toyset", "f.txt", progress=ctrl_c)
    assert list((tmp_path / "data" / "toyset").iterdir()) == []
    assert datasets.demo_file("toyset", "f.txt").read_bytes() == b"hello routing\n"


def test_fetch_reports_a_damaged_local_file_and_keeps_it(tmp_path, monkeypatch, served):
    monkeypatch.setenv("AVENGERS_DATA_DIR", str(tmp_path / "data"))
    register(monkeypatch, served + "/f.txt", hashlib.sha256(b"hello routing\n").hexdigest())
    local = tmp_path / "data" / "toyset" / "f.txt"
    local.parent.mkdir(parents=True)
    local.write_bytes(b"hello rout")  # e.g. copied by hand and cut short
    with pytest.raises(InputError, match="f.txt: checksum mismatch .* delete it"):
        datasets.fetch(["toyset"])
    assert local.read_bytes() == b"hello rout"  # the user's file is never deleted for them
