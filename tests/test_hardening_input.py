"""Every input of tests/corpus through the Python API, the `avengers` CLI and the app's upload.

A malformed input must give one line naming the file, the line/row/member and what was
expected: an InputError from the API, exit code 2 and `error: ...` from the CLI (never a
traceback), an inline error in the app with the previous dataset kept. Inputs that load by
design (merged duplicates, NaN = missing, HTML text, formula-like cells) must load as
documented.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from avengers_core.cli import main
from avengers_core.data.readers import read_table
from avengers_core.data.table import FORMULA_START, check_enough_rows, escape_cell, unescape_cell
from avengers_core.embed.base import Embedder
from avengers_core.errors import InputError
from avengers_core.routing.profile import load_profile
from tests.corpus import CASES, FORMULAS_READ, HERE, PROFILES, TABLES, Case, save_good

ROOT = Path(__file__).resolve().parents[1]
ERRORS = [c for c in CASES if c.what is not None]
LOADS = [c for c in CASES if c.what is None]


def ids(cases: list[Case]) -> list[str]:
    return [c.name for c in cases]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """`corpus(case)`: the case's input, built once per module in a temporary folder."""
    folder = tmp_path_factory.mktemp("corpus")
    made: dict[str, Path] = {}

    def get(case: Case) -> Path:
        if case.name not in made:
            made[case.name] = case.build(folder)
        return made[case.name]

    return get


def assert_names(message: str, case: Case, path: str) -> None:
    """One short line naming the file, where in it, and what was expected."""
    assert "\n" not in message and len(message) < 400, message
    assert path in message, message
    assert case.what in message, message
    if case.where:
        assert case.where in message, message


def test_the_corpus_covers_every_committed_file_and_enough_cases():
    committed = {p.name for p in HERE.iterdir() if p.suffix != ".py" and p.is_file()}
    used = {c.file for c in CASES if c.make is None}
    assert committed == used
    assert len(ERRORS) >= 30 and len({c.name for c in CASES}) == len(CASES)


# -- Python API --------------------------------------------------------------------------


@pytest.mark.parametrize("case", ERRORS, ids=ids(ERRORS))
def test_api_refuses_with_one_clear_line(case, corpus):
    path = corpus(case)
    load = read_table if case.kind == "table" else load_profile
    with pytest.raises(InputError) as err:
        load(path)
    assert_names(str(err.value), case, str(path))


@pytest.mark.parametrize("case", LOADS, ids=ids(LOADS))
def test_api_loads_what_is_loadable_by_design(case, corpus):
    path = corpus(case)
    loaded = (read_table if case.kind == "table" else load_profile)(path)
    case.check(loaded)
    if case.cli:  # loads, but K-means cannot make more clusters than rows
        with pytest.raises(InputError, match=re.escape(case.cli)):
            check_enough_rows(loaded, case.k)


# -- CLI ---------------------------------------------------------------------------------

CLI_REFUSED = ERRORS + [c for c in LOADS if c.cli]


def cli_args(case: Case, path: Path, out: Path) -> list[str]:
    if case.kind == "table":
        return ["fit", str(path), "--out", str(out), "--k", str(case.k)]
    return ["route", str(path), "What is 2 + 2?"]


@pytest.mark.parametrize("case", CLI_REFUSED, ids=ids(CLI_REFUSED))
def test_cli_exit_2_and_one_error_line_never_a_traceback(case, corpus, tmp_path):
    path, out = corpus(case), tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "avengers_core.cli", *cli_args(case, path, out)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and run.stdout == ""
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), run.stderr
    if case.what:
        assert_names(lines[0], case, str(path))
    else:
        assert case.cli in lines[0] and str(path) in lines[0]
    assert not out.exists()  # refused before anything was written


class FakeEmbedder(Embedder):
    """Deterministic vectors from each text's hash: the CLI without loading MiniLM."""

    def __init__(self, name: str, dim: int = 8):
        self.id, self._dim = name, dim

    @property
    def dim(self) -> int:
        return self._dim

    def _encode(self, texts: list[str]) -> np.ndarray:
        seeds = [int(hashlib.sha256(t.encode()).hexdigest()[:8], 16) for t in texts]
        return np.stack([np.random.default_rng(s).normal(size=self._dim) for s in seeds])


@pytest.fixture
def fake_embedder(monkeypatch, tmp_path):
    """`avengers` commands embed with FakeEmbedder (dimension `dims[name]`, default 8)."""
    dims: dict[str, int] = {}
    monkeypatch.setenv("AVENGERS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr("avengers_core.embed.load.get_embedder",
                        lambda name="minilm", **_: FakeEmbedder(name, dims.get(name, 8)))
    return dims


LOADABLE_TABLES = [c for c in LOADS if c.kind == "table" and not c.cli]


@pytest.mark.parametrize("case", LOADABLE_TABLES, ids=ids(LOADABLE_TABLES))
def test_cli_fits_tables_that_load_by_design(case, corpus, tmp_path, fake_embedder, capsys):
    path = corpus(case)
    assert main(["fit", str(path), "--out", str(tmp_path / "p"), "--k", "1"]) == 0
    assert load_profile(tmp_path / "p").models == read_table(path).models
    if "duplicates" in case.name:
        assert "note: merged 1 duplicated" in capsys.readouterr().err


def test_cli_routes_with_the_apps_zip(corpus, fake_embedder, capsys):
    case = next(c for c in PROFILES if c.file == "good.zip")
    assert main(["route", str(corpus(case)), "What is 2 + 2?", "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)["models"]) <= {"A", "B"}


def test_cli_names_the_profile_when_the_embedder_dimension_differs(tmp_path, fake_embedder,
                                                                    capsys):
    folder = save_good(tmp_path / "prof")  # 8-dim centroids, embedder test:toy
    fake_embedder["test:toy"] = 16
    assert main(["route", str(folder), "What is 2 + 2?"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and str(folder) in err[0]
    assert "dimension 8" in err[0] and "gives 16" in err[0]


@pytest.mark.parametrize("out,expect", [("taken", "expected a folder"),
                                        ("taken/sub", "taken/sub: Not a directory")])
def test_cli_unwritable_out_is_one_line(out, expect, tmp_path, corpus, fake_embedder, capsys):
    case = next(c for c in TABLES if c.file == "html.jsonl")
    (tmp_path / "taken").write_text("a file, not a folder")
    assert main(["fit", str(corpus(case)), "--out", str(tmp_path / out), "--k", "1"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("error: ") and expect in err[-1], err
    assert "Traceback" not in "".join(err)


# -- profiles: atomic writes and the checksum --------------------------------------------


def test_save_profile_writes_atomically_and_records_the_checksum(tmp_path, monkeypatch):
    from avengers_core.routing import profile

    written: list[str] = []
    real = profile.atomic_write_bytes
    monkeypatch.setattr(profile, "atomic_write_bytes",
                        lambda p, d: (written.append(Path(p).name), real(p, d)))
    folder = save_good(tmp_path / "p")
    assert written == ["centroids.npz", "profile.json"]  # the checksum holder last
    doc = json.loads((folder / "profile.json").read_text())
    assert doc["centroids_sha256"] == hashlib.sha256(
        (folder / "centroids.npz").read_bytes()).hexdigest()
    assert sorted(p.name for p in folder.iterdir()) == ["centroids.npz", "profile.json"]


def test_a_failed_save_keeps_the_previous_profile(tmp_path, monkeypatch):
    from avengers_core import fileio
    from avengers_core.routing import profile

    folder = save_good(tmp_path / "p")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def disk_full(path, data):
        with fileio.atomic_open(path, "wb") as f:
            f.write(data[:10])
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(profile, "atomic_write_bytes", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_good(folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # no temp file left
    load_profile(folder)


# -- CSV export: no formulas for spreadsheets --------------------------------------------


def test_exported_csv_carries_no_formula_and_round_trips(corpus, tmp_path):
    case = next(c for c in TABLES if c.file == "formulas.csv")
    table = read_table(corpus(case))
    text = table.to_csv()
    cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
    assert not [c for c in cells if c.startswith(FORMULA_START)]
    assert "'=HYPERLINK" in text and "'-m2" in text
    (tmp_path / "back.csv").write_text(text, encoding="utf-8", newline="")
    back = read_table(tmp_path / "back.csv")
    assert back.queries == FORMULAS_READ and back.models == table.models
    assert back.tasks == table.tasks
    np.testing.assert_array_equal(back.scores, table.scores)


@pytest.mark.parametrize("text", ["", "'", "''", "'=", "'x", "=", "=1+1", "-", "a=b", "\t", "@",
                                  "''=", "'''"])
def test_escape_then_unescape_gives_back_the_text(text):
    escaped = escape_cell(text)
    assert unescape_cell(escaped) == text
    assert not escaped.startswith(FORMULA_START)


# -- the app's upload --------------------------------------------------------------------

APP_TABLES = [c for c in TABLES if Path(c.file).suffix in (".jsonl", ".json", ".csv", ".tsv",
                                                            ".parquet")]


def inert(value: str) -> bool:
    """No HTML tag can start in this Markdown: every '<' outside code spans is escaped."""
    return re.search(r"(?<!\\)<", re.sub(r"`[^`]*`", "", value)) is None


@pytest.mark.slow
def test_app_upload_shows_each_error_inline_and_keeps_the_dataset(corpus, monkeypatch,
                                                                   tmp_path):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("AVENGERS_DATA_DIR", str(tmp_path))  # no demo: an upload is current
    monkeypatch.setenv("AVENGERS_UMAP", "0")
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    good = "query,m1,m2\n" + "".join(f"question {i},{i % 2},1\n" for i in range(7))
    at.file_uploader[0].set_value(("first.csv", good.encode(), "text/csv")).run()
    current, queries = at.session_state["dataset"], "7"
    assert current.startswith("upload:")
    for case in APP_TABLES:
        path = corpus(case)
        at.file_uploader[0].set_value((case.file, path.read_bytes(), "text/plain")).run()
        assert not at.exception, (case.name, [e.value for e in at.exception])
        shown = [m.value for m in at.metric]
        texts = [el.value for kind in ("markdown", "caption", "success", "error")
                 for el in at.get(kind)]
        assert all(inert(t) for t in texts), case.name
        if case.what:
            assert len(at.error) == 1, case.name
            err = at.error[0].value.replace("\\", "")  # Markdown escapes
            assert case.file in err and case.what in err, (case.name, err)
            assert case.where is None or case.where in err, (case.name, err)
            assert "/tmp" not in err, err
            assert at.session_state["dataset"] == current, case.name  # previous one kept
            assert shown[0] == queries, case.name
        else:
            assert not at.error, (case.name, [e.value for e in at.error])
            assert at.session_state["dataset"] != current, case.name
            current, queries = at.session_state["dataset"], f"{len(read_table(path)):,}"
            assert shown[0] == queries, case.name


@pytest.mark.slow
def test_app_shows_html_in_data_as_text(corpus, monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("AVENGERS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AVENGERS_UMAP", "0")
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    html = corpus(next(c for c in TABLES if c.file == "html.jsonl")).read_bytes()
    name = "<img src=x onerror=alert(1)>.jsonl"
    at.file_uploader[0].set_value((name, html, "application/json")).run()
    assert not at.exception
    assert "<img src=x onerror=alert(1)>.jsonl" in at.success[0].value.replace("\\", "")
    texts = [el.value for kind in ("markdown", "caption", "success", "error")
             for el in at.get(kind)] + [m.value for m in at.sidebar.markdown]
    assert all(inert(t) for t in texts)
    shown = at.dataframe[-1].value["query"].tolist()  # the grid shows text, never HTML
    assert shown[0].startswith("<script>alert('x')</script>")
    at.file_uploader[0].set_value(("<b>bad</b>.csv", b"query,m1\n<i>x</i>,2\n", "text/csv"))
    at.run()
    assert not at.exception and inert(at.error[0].value)
    assert "<b>bad</b>.csv row 2" in at.error[0].value.replace("\\", "")


@pytest.mark.slow
def test_calibrate_upload_with_a_long_odd_name_is_stored_under_a_safe_name(monkeypatch,
                                                                            tmp_path):
    from streamlit.testing.v1 import AppTest

    from tests.support.fake_ollama import FakeOllama, demo_models

    monkeypatch.setenv("AVENGERS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AVENGERS_CALIBRATION_DIR", str(tmp_path / "calibration"))
    monkeypatch.setenv("AVENGERS_UMAP", "0")
    monkeypatch.chdir(ROOT)
    name = "<b>" + "q" * 300 + " set?.CSV"  # past the file system's 255-byte limit
    with FakeOllama(demo_models()) as srv:
        monkeypatch.setenv("OLLAMA_HOST", srv.url)
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.run()
        at.switch_page("app_pages/calibrate.py").run()
        at.radio[0].set_value("upload").run()
        questions = next(u for u in at.file_uploader if u.label == "Question set")
        questions.set_value((name, b"question,answer\n2+2?,4\n", "text/csv")).run()
        assert not at.exception, [e.value for e in at.exception]
        assert not at.error, [e.value for e in at.error]
    stored = list((tmp_path / "calibration" / "uploads").iterdir())
    assert len(stored) == 1 and stored[0].suffix == ".csv" and len(stored[0].name) < 100
