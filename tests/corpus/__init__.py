"""Malformed inputs for the table and profile loaders, and what each must produce.

Small text inputs are files in this folder. Binary, large or control-character inputs are
written by a generator into a temporary folder, so nothing big is committed. Each case says
what the loader must answer: an error naming the file, the line, row or member (`where`)
and what was expected (`what`), or, for an input that loads by design, a `check` of the
loaded table. Used by tests/test_hardening_input.py on the Python API, the CLI and the app.
"""

from __future__ import annotations

import io
import json
import math
import pickle
import random
import stat
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BIG = 10 * 2**20  # the "10 MB single line"
DEEP = 100_000  # nesting depth beyond any JSON parser's recursion limit
MANY_MODELS = 5_000
FORMULAS = ["=HYPERLINK(\"http://x\",\"y\")", "+1+2", "-3+4", "@SUM(A1)", "\tcmd", "\rcmd",
            "'=already quoted", "'plain apostrophe", "a normal question"]
# As read: an apostrophe before a formula character is the spreadsheet's text marker.
FORMULAS_READ = [*FORMULAS[:6], "=already quoted", *FORMULAS[7:]]


@dataclass(frozen=True)
class Case:
    """One input: its file name, and the error (or the check) the loader must give."""

    name: str
    file: str
    what: str | None = None  # part of the error saying what was expected; None: it loads
    where: str | None = None  # "line 3", "row 2", a member name... (None: the whole file)
    make: Callable[[Path], None] | None = None  # writes the file; None: copied from HERE
    check: Callable | None = None  # for inputs that load: check(table)
    cli: str | None = None  # loads, but `avengers fit --k <k>` must refuse it with this
    k: int = 2  # clusters asked of `avengers fit`
    kind: str = "table"  # or "profile"

    def build(self, folder: Path) -> Path:
        """The input at `folder / file`, ready to load."""
        path = folder / self.file
        if self.make is not None:
            self.make(path)
        else:
            path.write_bytes((HERE / self.file).read_bytes())
        return path


def _bytes(data: bytes) -> Callable[[Path], None]:
    return lambda p: p.write_bytes(data)


def _big_line(p: Path) -> None:
    p.write_text(json.dumps({"query": "x" * BIG, "scores": {"m1": 1}}) + "\n")


def _big_cell(p: Path) -> None:
    p.write_text("query,m1\n" + "y" * BIG + ",1\n")


def _deep_jsonl(p: Path) -> None:
    nest = "[" * DEEP + "]" * DEEP
    p.write_text('{"query": "What is 2 + 2?", "scores": {"m1": 1}}\n'
                 f'{{"query": "deep", "scores": {{"m1": {nest}}}}}\n')


def _deep_json(p: Path) -> None:
    p.write_text("[" * DEEP + "]" * DEEP)


def _many_models_csv(p: Path) -> None:
    names = [f"model-{j}" for j in range(MANY_MODELS)]
    rows = [",".join(["query", *names])]
    rows += [",".join([f"question {i}", *("1" if (i + j) % 2 else "0" for j in range(MANY_MODELS))])
             for i in range(3)]
    p.write_text("\n".join(rows) + "\n")


def _many_models_jsonl(p: Path) -> None:
    scores = {f"model-{j}": j % 2 for j in range(MANY_MODELS)}
    p.write_text(json.dumps({"query": "What is 2 + 2?", "scores": scores}) + "\n")


def _xlsx_named_csv(p: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
    p.write_bytes(buf.getvalue())


def _formulas(p: Path) -> None:
    import csv

    with p.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["query", "task", "m1", "-m2"])
        for i, q in enumerate(FORMULAS):
            w.writerow([q, "=task" if i % 2 else "+task", i % 2, 1 - i % 2])


def _parquet(columns: dict) -> Callable[[Path], None]:
    def make(p: Path) -> None:
        import pandas as pd

        pd.DataFrame(columns).to_parquet(p)

    return make


def _rows(n: int) -> Callable:
    def check(t) -> None:
        assert len(t) == n and t.models == ["m1", "m2"]

    return check


def _check_merged(t) -> None:
    assert len(t) == 2 and t.duplicates_merged == 1
    assert t.scores[0].tolist() == [0.5, 0.5]  # mean of 1 and 0, of 0 and 1
    assert "merged 1" in t.notes[0]


def _check_nan(t) -> None:
    assert math.isnan(t.scores[0, 0]) and t.scores[0, 1] == 1.0  # NaN = not evaluated
    assert t.scores[1, 0] == 0.0 and math.isnan(t.scores[1, 1])


def _check_html(t) -> None:
    assert t.queries[0].startswith("<script>alert('x')</script>")
    assert "<img src=x onerror=alert(1)>" in t.queries[1]


def _check_formulas(t) -> None:
    assert t.queries == FORMULAS_READ
    assert t.models == ["m1", "-m2"] and t.tasks[:2] == ["+task", "=task"]


TABLES = [
    Case("empty", "empty.jsonl", "the file is empty"),
    Case("header only", "header_only.csv", "no rows (expected one row per query)"),
    Case("not UTF-8", "latin1.csv", "not UTF-8 text", "line 2, byte 4",
         _bytes("query,m1\ncafé au lait?,1\n".encode("latin-1"))),
    Case("UTF-16 with BOM", "utf16.csv", "UTF-16 text (expected UTF-8", "line 1",
         _bytes("query,m1\nWhat is 2 + 2?,1\n".encode("utf-16"))),
    Case("binary garbage", "garbage.csv", "binary data", "line 1",
         _bytes(random.Random(6).randbytes(4096))),
    Case("xlsx named .csv", "book.csv", "export it as CSV", "line 1", _xlsx_named_csv),
    Case("pickle named .jsonl", "table.jsonl", "pickle, which is never loaded", "line 1",
         _bytes(pickle.dumps([{"query": "a", "scores": {"m1": 1}}]))),
    Case("object not lines", "object_not_lines.json", "expected JSON Lines", "line 1"),
    Case("bad line in the middle", "bad_line_middle.jsonl", "not valid JSON", "line 3"),
    Case("JSON scalar line", "json_scalar.jsonl", "expected a JSON object, got 42", "line 2"),
    Case("missing query", "missing_query.jsonl", "expected a 'query'", "line 2"),
    Case("empty query text", "empty_query.jsonl", "non-empty string", "line 2"),
    Case("empty query cell", "empty_query.csv", "non-empty string", "row 3"),
    Case("no model columns", "no_models.csv", "no model columns", "line 1"),
    Case("no model scores", "no_models.jsonl", "expected at least one model"),
    Case("score as a word", "score_string.jsonl", "must be a number, got 'high'", "line 2"),
    Case("negative score", "score_negative.csv", "must be in [0, 1], got -0.5", "row 3"),
    Case("score above 1", "score_above_one.jsonl", "must be in [0, 1], got 100", "line 1"),
    Case("score NaN is missing", "score_nan.jsonl", check=_check_nan),
    Case("score infinity (JSON)", "score_infinity.jsonl", "must be in [0, 1], got inf",
         "line 1"),
    Case("score infinity (CSV)", "score_infinity.csv", "must be in [0, 1], got inf", "row 3"),
    Case("every score missing", "all_missing.csv", "every score is missing"),
    Case("one row", "one_row.jsonl", check=_rows(1), cli="1 distinct queries but K = 2"),
    Case("fewer rows than K", "fewer_than_k.csv", check=_rows(3),
         cli="3 distinct queries but K = 4", k=4),
    Case("duplicated columns", "duplicate_columns.csv", "'m1' appears twice", "line 1"),
    Case("duplicated keys", "duplicate_keys.jsonl", "'m1' appears twice", "line 1"),
    Case("conflicting duplicates", "conflicting_duplicates.jsonl", check=_check_merged),
    Case("more cells than header", "extra_cells.csv", "header has 2 columns", "line 2"),
    Case("unterminated quote", "unterminated_quote.csv", "not valid CSV", "line 2"),
    Case("10 MB line", "big_line.jsonl", "expected at most 100,000", "line 1", _big_line),
    Case("10 MB CSV cell", "big_cell.csv", "expected a query of at most 100,000", "line 2",
         _big_cell),
    Case("deep nesting (JSONL)", "deep.jsonl", "nested too deeply", "line 2", _deep_jsonl),
    Case("deep nesting (JSON)", "deep.json", "nested too deeply", make=_deep_json),
    Case("5,000 models (CSV)", "many_models.csv", "expected at most 1,000", "line 1",
         _many_models_csv),
    Case("5,000 models (JSONL)", "many_models.jsonl", "more than 1,000 models", "line 1",
         _many_models_jsonl),
    Case("formula cells", "formulas.csv", make=_formulas, check=_check_formulas),
    Case("HTML and script", "html.jsonl", check=_check_html),
    Case("Parquet: query as numbers", "numbers.parquet", "non-empty string, got 1", "row 1",
         _parquet({"query": [1, 2], "m1": [1.0, 0.0]})),
    Case("Parquet: scores as words", "words.parquet", "must be a number, got 'yes'", "row 1",
         _parquet({"query": ["a", "b"], "m1": ["yes", "no"]})),
    Case("Parquet: not Parquet", "not_parquet.parquet", "not a readable Parquet file"),
    Case("tab-separated", "tab_separated.tsv", check=_rows(2)),
]


# -- profiles ---------------------------------------------------------------------------


def _router():
    """A small fitted router (K = 4, 8-dim toy vectors, embedder id test:toy)."""
    from avengers_core.data.table import from_rows
    from avengers_core.routing.routers.avengers import AvengersRouter
    from avengers_core.routing.routers.base import RouterConfig
    from tests.conftest import make_rows

    rows, x = make_rows()
    return AvengersRouter.fit(from_rows(rows, "toy"), x, RouterConfig(k=4), embedder_id="test:toy")


def save_good(folder: Path) -> Path:
    """A valid profile folder."""
    from avengers_core.routing.profile import save_profile

    return save_profile(_router(), folder)


def _edit_json(folder: Path, **changes) -> None:
    pj = folder / "profile.json"
    doc = json.loads(pj.read_text())
    doc.update(changes)
    pj.write_text(json.dumps(doc))


def _folder(edit: Callable[[Path], None]) -> Callable[[Path], None]:
    def make(p: Path) -> None:
        save_good(p)
        edit(p)

    return make


def _dim_mismatch(p: Path) -> None:
    _edit_json(p, embedder={"id": "test:toy", "dim": 384})


def _altered(p: Path) -> None:
    with np.load(p / "centroids.npz") as z:
        c = z["centroids"]
    np.savez(p / "centroids.npz", centroids=c * 0.5)


def _npz_object_array(p: Path) -> None:
    import hashlib

    np.savez(p / "centroids.npz", centroids=np.array([{"evil": 1}], dtype=object))
    _edit_json(p, centroids_sha256=hashlib.sha256((p / "centroids.npz").read_bytes()).hexdigest())


def _zip(members: list[tuple[str, bytes]], symlink: str | None = None) -> Callable[[Path], None]:
    """A zip of a good profile's two files (as profile/...) plus `members`."""
    def make(p: Path) -> None:
        good = save_good(p.parent / f"{p.stem}-source")
        with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as z:
            for name in ("profile.json", "centroids.npz"):
                if name != symlink:
                    z.write(good / name, f"profile/{name}")
            if symlink:
                info = zipfile.ZipInfo(f"profile/{symlink}")
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                z.writestr(info, "/etc/passwd")
            for name, data in members:
                z.writestr(name, data)

    return make


def _zip_bomb(p: Path) -> None:
    """A zip whose profile.json inflates past the member limit (about 0.1 MB compressed)."""
    from avengers_core.routing.profile import MAX_MEMBER_BYTES

    good = save_good(p.parent / f"{p.stem}-source")
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(good / "centroids.npz", "profile/centroids.npz")
        with z.open("profile/profile.json", "w") as f:
            chunk = b" " * 2**20
            for _ in range(MAX_MEMBER_BYTES // len(chunk) + 1):
                f.write(chunk)


def _zip_only_json(p: Path) -> None:
    good = save_good(p.parent / f"{p.stem}-source")
    with zipfile.ZipFile(p, "w") as z:
        z.write(good / "profile.json", "profile.json")


def _check_router(r) -> None:
    assert r.models == ["A", "B"] and r.config.k == 4 and r.centroids.shape == (4, 8)


PROFILES = [
    Case("dimension mismatch", "dim", "expected (4, 384)", "centroids.npz", _folder(_dim_mismatch),
         kind="profile"),
    Case("missing centroids", "nocentroids", "missing", "centroids.npz",
         _folder(lambda p: (p / "centroids.npz").unlink()), kind="profile"),
    Case("altered centroids", "altered", "expected the SHA-256 recorded", "centroids.npz",
         _folder(_altered), kind="profile"),
    Case("no checksum (old format)", "oldformat", "format version 1", "profile.json",
         _folder(lambda p: _edit_json(p, version=1)), kind="profile"),
    Case("npz with an object array", "objnpz", "pickled object array, which is never loaded",
         "centroids.npz", _folder(_npz_object_array), kind="profile"),
    Case("npz that is a pickle", "picklenpz", "pickle, which is never loaded", "centroids.npz",
         _folder(lambda p: (p / "centroids.npz").write_bytes(pickle.dumps([1.0]))),
         kind="profile"),
    Case(".pkl named profile.json", "pkljson", "pickle, which is never loaded (expected JSON)",
         "profile.json",
         _folder(lambda p: (p / "profile.json").write_bytes(pickle.dumps({"format": 1}))),
         kind="profile"),
    Case("deeply nested profile.json", "deepjson", "nested too deeply", "profile.json",
         _folder(lambda p: (p / "profile.json").write_text("[" * DEEP + "]" * DEEP)),
         kind="profile"),
    Case("zip: .. path", "slip.zip", "escapes the archive folder", "'../../evil.sh'",
         _zip([("../../evil.sh", b"echo pwned")]), kind="profile"),
    Case("zip: absolute path", "abs.zip", "absolute", "'/tmp/evil.sh'",
         _zip([("/tmp/evil.sh", b"echo pwned")]), kind="profile"),
    Case("zip: symlink", "link.zip", "symbolic link", "'profile/centroids.npz'",
         _zip([], symlink="centroids.npz"), kind="profile"),
    Case("zip: unexpected member", "extra.zip", "unexpected member", "'profile/run.sh'",
         _zip([("profile/run.sh", b"echo hi")]), kind="profile"),
    Case("zip: oversized member", "bomb.zip", "bytes (expected at most",
         "'profile/profile.json'", _zip_bomb, kind="profile"),
    Case("zip: missing member", "half.zip", "no centroids.npz in the archive", make=_zip_only_json,
         kind="profile"),
    Case("not a zip", "notzip.zip", "not a profile", make=_bytes(b"query,m1\n"), kind="profile"),
    Case("zip from the app", "good.zip", make=_zip([]), check=_check_router, kind="profile"),
]

CASES = TABLES + PROFILES
