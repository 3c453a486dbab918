"""Routing tables: queries with per-model scores in [0, 1], loaded and validated.

A missing score means "not evaluated" (NaN), never a failure. Duplicated query texts are
merged (mean of their scores) so no question is counted twice. Every file the loader refuses
gets a one-line `InputError` naming the file, the line or row and what was expected.

CSV written by `to_csv` is safe to open in a spreadsheet: a cell starting like a formula
(`=`, `+`, `-`, `@`, tab, CR) gets a leading apostrophe, which `read_table` removes again.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avengers_core.errors import InputError

QUERY_KEYS = ("query", "question")
SCORE_KEYS = ("scores", "records")
COST_PREFIX = "cost:"
RESERVED_COLUMNS = {"query", "question", "task", "id"}
#: The file suffixes `read_table` reads (the app's uploader offers the same).
SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet", ".pq")
MAX_QUERY_CHARS = 100_000  # far beyond any embedder's window; longer is a broken file
MAX_MODELS = 1_000  # a profile is K × M; thousands of "models" is a transposed table
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # spreadsheets run such cells as formulas
RECORD = '{"query": ..., "scores": {...}}'  # one JSON Lines row, as error messages show it
#: Leading bytes of files that are not text tables, and what to tell the user.
SIGNATURES = (
    (b"PAR1", "a Parquet file (expected text here; name it .parquet)"),
    (b"PK\x03\x04", "a zip archive, e.g. an Excel workbook (expected text; export it as CSV)"),
    (b"\x1f\x8b", "gzip-compressed (expected plain text; decompress it first)"),
    (b"\xff\xfe\x00\x00", "UTF-32 text (expected UTF-8; save it as UTF-8)"),
    (b"\x00\x00\xfe\xff", "UTF-32 text (expected UTF-8; save it as UTF-8)"),
    (b"\xff\xfe", "UTF-16 text (expected UTF-8; save it as UTF-8)"),
    (b"\xfe\xff", "UTF-16 text (expected UTF-8; save it as UTF-8)"),
)


@dataclass
class RoutingTable:
    """N queries × M models: `scores[i, j]` is model j's score on query i (NaN = missing)."""

    queries: list[str]
    models: list[str]
    scores: np.ndarray
    ids: list[str]
    tasks: list[str] | None = None
    costs: np.ndarray | None = None
    source: str = "<memory>"
    duplicates_merged: int = 0
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.queries)

    def subset(self, idx: np.ndarray | list[int]) -> RoutingTable:
        """The rows `idx` as a new table (models kept)."""
        idx = np.asarray(idx, dtype=int)
        return RoutingTable(
            queries=[self.queries[i] for i in idx],
            models=list(self.models),
            scores=self.scores[idx],
            ids=[self.ids[i] for i in idx],
            tasks=None if self.tasks is None else [self.tasks[i] for i in idx],
            costs=None if self.costs is None else self.costs[idx],
            source=self.source,
        )

    def model_means(self) -> tuple[np.ndarray, np.ndarray]:
        """Each model's mean score over the queries it was scored on, and how many those are."""
        seen = ~np.isnan(self.scores)
        counts = seen.sum(axis=0)
        sums = np.where(seen, self.scores, 0.0).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan), counts

    def to_frame(self):
        """Wide pandas DataFrame: id, query, task, one column per model, cost:<model>."""
        import pandas as pd

        data: dict[str, object] = {"id": self.ids, "query": self.queries}
        if self.tasks is not None:
            data["task"] = self.tasks
        for j, m in enumerate(self.models):
            data[m] = self.scores[:, j]
        if self.costs is not None:
            for j, m in enumerate(self.models):
                data[COST_PREFIX + m] = self.costs[:, j]
        return pd.DataFrame(data)

    def to_csv(self) -> str:
        """The table in the wide CSV form that `read_table` accepts, formula cells escaped.

        Lines end in CRLF (RFC 4180), so a cell holding CR or LF is quoted and reads back.
        """
        from pandas.api.types import is_numeric_dtype

        df = self.to_frame()
        df.columns = [escape_cell(str(c)) for c in df.columns]
        for c in df.columns:
            if not is_numeric_dtype(df[c].dtype):  # id, query, task (object or str dtype)
                df[c] = df[c].map(escape_cell)
        return df.to_csv(index=False, lineterminator="\r\n")

    def task_model_means(self):
        """Task × model mean score (a DataFrame; rows sorted by task)."""
        df = self.to_frame()
        key = df["task"] if self.tasks is not None else ["(all)"] * len(df)
        return df[self.models].groupby(key).mean().sort_index()


def escape_cell(value: object) -> object:
    """A text cell a spreadsheet would run as a formula, prefixed with an apostrophe.

    A cell already starting with an apostrophe before such a character (or another
    apostrophe) gets one more, so `unescape_cell` gives back exactly the original text.
    """
    if isinstance(value, str) and value and (
        value.startswith(FORMULA_START)
        or (value[0] == "'" and value[1:2] and value[1] in (*FORMULA_START, "'"))
    ):
        return "'" + value
    return value


def unescape_cell(text: str) -> str:
    """Undo `escape_cell` for a cell read back from CSV."""
    if text[:1] == "'" and text[1:2] and text[1] in (*FORMULA_START, "'"):
        return text[1:]
    return text


def _show(value: object) -> str:
    """A value quoted in an error message: short, whatever the file holds."""
    kinds = {dict: "a JSON object", list: "a list", tuple: "a list"}
    if isinstance(value, (dict, list, tuple)):
        return kinds[type(value)]
    text = "null" if value is None else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _cell(value: object, where: str, what: str) -> float:
    """One score or cost: a number (or true/false), NaN when empty."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return math.nan
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("true", "false"):
            return 1.0 if low == "true" else 0.0
        if low in ("nan", "na", "null", "none"):
            return math.nan
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"{where}: {what} must be a number, got {_show(value)}") from None
    return x


def _score(value: object, where: str) -> float:
    x = _cell(value, where, "score")
    if not math.isnan(x) and not 0.0 <= x <= 1.0:
        raise InputError(f"{where}: score must be in [0, 1], got {x}")
    return x


def _cost(value: object, where: str) -> float:
    x = _cell(value, where, "cost")
    if not math.isnan(x) and not 0 <= x < math.inf:  # issue 22: 0 × inf made costs NaN
        raise InputError(f"{where}: cost must be a finite number >= 0, got {x}")
    return x


def from_rows(rows: list[dict], source: str, where: list[str] | None = None) -> RoutingTable:
    """Build a table from row dicts with `query`, `scores`, optional `task`, `id`, `costs`.

    `where[i]` names row i in error messages (e.g. "t.jsonl line 7").
    """
    where = where or [f"{source} row {i + 1}" for i in range(len(rows))]
    if not rows:
        raise InputError(f"{source}: the table is empty (expected at least one query)")
    models: dict[str, None] = {}
    parsed = []
    has_task = has_cost = False
    for row, loc in zip(rows, where):
        if not isinstance(row, dict):
            raise InputError(f"{loc}: expected a JSON object, got {_show(row)}")
        qkey = next((k for k in QUERY_KEYS if k in row), None)
        if qkey is None:
            raise InputError(f"{loc}: no query (expected a 'query' or 'question' field)")
        query = row[qkey]
        if not isinstance(query, str) or not query.strip():
            raise InputError(f"{loc}: query must be a non-empty string, got {_show(query)}")
        if len(query) > MAX_QUERY_CHARS:
            raise InputError(f"{loc}: the query is {len(query):,} characters long "
                             f"(expected at most {MAX_QUERY_CHARS:,})")
        skey = next((k for k in SCORE_KEYS if k in row), None)
        scores = row.get(skey) if skey else None
        if not isinstance(scores, dict):
            raise InputError(f"{loc}: expected 'scores' (or 'records') as {{model: number}}")
        sc = {str(m): _score(v, f"{loc}, model {m!r}") for m, v in scores.items()}
        costs = row.get("costs") or {}
        if not isinstance(costs, dict):
            raise InputError(f"{loc}: 'costs' must be {{model: number}}")
        for field_name, named in ((skey, scores), ("costs", costs)):
            for m in named:
                check_model_name(str(m), f"{loc}, {field_name!r}")
        co = {str(m): _cost(v, f"{loc}, cost of {m!r}") for m, v in costs.items()}
        task = row.get("task")
        has_task |= task is not None
        has_cost |= bool(co)
        for m in list(sc) + list(co):
            models.setdefault(m, None)
        if len(models) > MAX_MODELS:
            raise InputError(f"{loc}: more than {MAX_MODELS:,} models (expected one column or "
                             "key per model; is the table transposed?)")
        rid = row.get("id")
        parsed.append((query, sc, co, None if task is None else str(task), rid))
    if not models:
        raise InputError(f"{source}: no model scores found (expected at least one model)")
    names = list(models)
    col = {m: j for j, m in enumerate(names)}
    n, m = len(parsed), len(names)
    scores = np.full((n, m), np.nan)
    costs = np.full((n, m), np.nan) if has_cost else None
    for i, (_, sc, co, _, _) in enumerate(parsed):
        for k, v in sc.items():
            scores[i, col[k]] = v
        for k, v in co.items():
            costs[i, col[k]] = v  # type: ignore[index]
    if np.isnan(scores).all():
        raise InputError(f"{source}: every score is missing (expected at least one number)")
    table = RoutingTable(
        queries=[p[0] for p in parsed],
        models=names,
        scores=scores,
        ids=[str(p[4]) if p[4] is not None else str(i) for i, p in enumerate(parsed)],
        tasks=[p[3] or "" for p in parsed] if has_task else None,
        costs=costs,
        source=source,
    )
    return merge_duplicates(table)


def check_model_name(name: str, where: str) -> None:
    """Refuse a model name that cannot be told apart or written back (issue 22).

    Refused: an empty or whitespace-only name, spaces around a name (the wide format strips
    column names), and the wide format's own columns (`query`, `question`, `task`, `id`)
    and `cost:` names, which the routing table's CSV download would read back as other data.
    Raises InputError naming `where` (the row and field) and the name.
    """
    if not name.strip():
        raise InputError(f"{where}: a model name is empty ({name!r}; expected a model's name)")
    if name != name.strip():
        raise InputError(f"{where}: model name {name!r} has spaces around it (expected "
                         f"{name.strip()!r})")
    if name in RESERVED_COLUMNS or name.startswith(COST_PREFIX):
        raise InputError(f"{where}: model name {name!r} is a column of the wide table format "
                         "(query, question, task, id, cost:<model>); rename the model")


def merge_duplicates(table: RoutingTable) -> RoutingTable:
    """Merge rows with the same query text: mean of their scores (and costs)."""
    first: dict[str, int] = {}
    groups: list[list[int]] = []
    for i, q in enumerate(table.queries):
        if q in first:
            groups[first[q]].append(i)
        else:
            first[q] = len(groups)
            groups.append([i])
    merged = len(table) - len(groups)
    if merged == 0:
        return table

    def mean_rows(a: np.ndarray) -> np.ndarray:
        out = np.full((len(groups), a.shape[1]), np.nan)
        for g, rows in enumerate(groups):
            block = a[rows]
            seen = ~np.isnan(block)
            cnt = seen.sum(axis=0)
            tot = np.where(seen, block, 0.0).sum(axis=0)
            out[g] = np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)
        return out

    heads = [g[0] for g in groups]
    out = table.subset(heads)
    out.scores = mean_rows(table.scores)
    if table.costs is not None:
        out.costs = mean_rows(table.costs)
    out.duplicates_merged = merged
    out.notes = [f"merged {merged} duplicated query texts (mean of their scores)"]
    return out


def is_pickle(data: bytes) -> bool:
    """True for a pickle of protocol 2 or later (PROTO opcode, then the version)."""
    return data[:1] == b"\x80" and len(data) > 1 and 2 <= data[1] <= 5


def _decode(path: Path) -> str:
    """The file as UTF-8 text, or an error saying what the bytes are instead."""
    raw = path.read_bytes()
    if not raw.strip():
        raise InputError(f"{path}: the file is empty (expected a routing table)")
    if is_pickle(raw):
        raise InputError(f"{path} line 1: a Python pickle, which is never loaded "
                         "(expected a text table)")
    for magic, what in SIGNATURES:
        if raw.startswith(magic):
            raise InputError(f"{path} line 1: {what}")
    nul = raw.find(b"\x00")
    if nul >= 0:
        line = raw[:nul].count(b"\n") + 1
        raise InputError(f"{path} line {line}: binary data (a NUL byte; expected a text table)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise InputError(f"{path} line {line}, byte {col} of the line: not UTF-8 text "
                         "(expected UTF-8)") from None


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object, refusing a key given twice (json would silently keep the last)."""
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise InputError(f"the key {_show(k)} appears twice (expected each key once)")
        out[k] = v
    return out


def _json(text: str, where: str, expected: str, whole_file: bool = False) -> object:
    """One JSON document; errors name `where` (for a whole file, with the line) and what
    was `expected`."""
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as e:
        at = f"{where} line {e.lineno}" if whole_file else where
        raise InputError(f"{at}: not valid JSON ({e.msg}; expected {expected})") from None
    except RecursionError:
        raise InputError(f"{where}: JSON nested too deeply (expected {expected})") from None
    except InputError as e:
        raise InputError(f"{where}: {e}") from None


def _read_jsonl(path: Path, text: str) -> RoutingTable:
    lines = text.split("\n")  # not splitlines(): U+2028 and friends are valid inside strings
    stripped = text.lstrip()
    if stripped.startswith("["):  # a JSON list of records, as in the Avengers/LLMRouter data
        rows = _json(text, str(path), f"a list of {RECORD} objects", whole_file=True)
        return from_rows(rows, str(path), [f"{path} record {i + 1}" for i in range(len(rows))])
    if stripped.startswith("{") and sum(1 for line in lines if line.strip()) > 1:
        try:  # one object pretty-printed over many lines, not one object per line
            json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            pass
        else:
            raise InputError(f"{path} line 1: one JSON object spread over several lines "
                             f"(expected JSON Lines: one {RECORD} object per line, or a JSON "
                             "list of them)")
    rows, where = [], []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        rows.append(_json(line, f"{path} line {lineno}", f"one {RECORD} object a line"))
        where.append(f"{path} line {lineno}")
    return from_rows(rows, str(path), where)


def _wide_rows(columns: list[str], records: list[tuple[int, dict]], path: Path,
               head: str) -> RoutingTable:
    """Wide form: query, optional task/id, one column per model, optional cost:<model>.

    `records` are (row number, cells); `head` names the header in errors (a CSV's first
    line, a Parquet file's columns).
    """
    cols = [c.strip() for c in columns]
    seen: dict[str, int] = {}
    for j, c in enumerate(cols, 1):
        if not c:
            raise InputError(f"{head}: column {j} has no name (expected 'query', "
                             "'task', 'id', a model name or cost:<model>)")
        if c in seen:
            raise InputError(f"{head}: column {_show(c)} appears twice (columns "
                             f"{seen[c]} and {j}; expected each column once)")
        seen[c] = j
    qcol = next((c for c in QUERY_KEYS if c in cols), None)
    if qcol is None:
        shown = ", ".join(map(_show, cols[:6])) + (", ..." if len(cols) > 6 else "")
        raise InputError(f"{head}: no query column (expected a column named 'query'); "
                         f"got {shown}")
    model_cols = [c for c in cols if c not in RESERVED_COLUMNS and not c.startswith(COST_PREFIX)]
    if not model_cols:
        raise InputError(f"{head}: no model columns (expected one numeric column per model)")
    if len(model_cols) > MAX_MODELS:
        raise InputError(f"{head}: {len(model_cols):,} model columns (expected at most "
                         f"{MAX_MODELS:,}, one per model; is the table transposed?)")
    if not records:
        raise InputError(f"{path}: only a header, no rows (expected one row per query)")
    rows, where = [], []
    for rowno, rec in records:
        rec = {str(k).strip(): v for k, v in rec.items()}
        loc = f"{path} row {rowno}"
        row = {
            "query": rec.get(qcol),
            "scores": {m: rec.get(m) for m in model_cols},
            "costs": {
                c[len(COST_PREFIX):]: rec.get(c) for c in cols if c.startswith(COST_PREFIX)
            },
        }
        if "task" in cols:
            row["task"] = rec.get("task")
        if "id" in cols and rec.get("id") not in (None, ""):
            row["id"] = rec.get("id")
        if row["query"] is None or (isinstance(row["query"], float) and math.isnan(row["query"])):
            raise InputError(f"{loc}: empty query (expected the question text)")
        rows.append(row)
        where.append(loc)
    return from_rows(rows, str(path), where)


def sniff_delimiter(text: str) -> str:
    """`;` when the header row has more columns split at `;` than at `,` (a spreadsheet
    saved in a European locale: `query;m1;m2`), else `,`."""
    head = next((line for line in text.splitlines() if line.strip()), "")

    def width(d: str) -> int:
        try:
            return len(next(csv.reader([head], delimiter=d), []))
        except csv.Error:
            return 0

    return ";" if width(";") > width(",") else ","


_DECIMAL_COMMA = re.compile(r"\s*[-+]?\d*,\d+\s*")


def _decimal_point(cell: str) -> str:
    """`0,5` -> `0.5` (a European decimal comma); other cells unchanged."""
    return cell.replace(",", ".") if _DECIMAL_COMMA.fullmatch(cell) else cell


def _read_csv(path: Path, text: str, delimiter: str | None = None) -> RoutingTable:
    """A wide CSV. Without `delimiter` it is sniffed (:func:`sniff_delimiter`); in a
    `;`-separated file, number cells may use a decimal comma (`0,5`)."""
    delimiter = delimiter or sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, strict=True)
    header: list[str] = []
    header_line = last_line = 0  # the line where the header ends, and the last good record
    records = []
    try:
        # Rows are numbered as a spreadsheet shows them: the header is row 1, and blank rows
        # (as a spreadsheet exports below the data) count but are skipped.
        for rowno, cells in enumerate(reader, 1):
            if not header:
                header, header_line = [unescape_cell(c) for c in cells], reader.line_num
                if not any(c.strip() for c in header):
                    raise InputError(f"{path} line {reader.line_num}: empty header (expected "
                                     "'query' and one column per model)")
            elif any(c.strip() for c in cells):
                if len(cells) > len(header):
                    raise InputError(f"{path} line {reader.line_num}: {len(cells)} cells but "
                                     f"the header has {len(header)} columns (expected at most "
                                     f"{len(header)}){_semicolon_hint(delimiter, text)}")
                rec = dict(zip(header, map(unescape_cell, cells)))
                if delimiter == ";":
                    rec = {k: v if k.strip() in RESERVED_COLUMNS else _decimal_point(v)
                           for k, v in rec.items()}
                records.append((rowno, rec))
            last_line = reader.line_num
    except csv.Error as e:
        if "field larger" in str(e):
            raise InputError(f"{path} line {reader.line_num}: a cell longer than "
                             f"{csv.field_size_limit():,} characters (expected a query of at "
                             f"most {MAX_QUERY_CHARS:,})") from None
        raise InputError(f"{path} line {last_line + 1}: not valid CSV ({e}; expected every "
                         "quote opened on this line to be closed)") from None
    if not header:
        raise InputError(f"{path}: no header row (expected 'query' and model columns)")
    return _wide_rows(header, records, path, head=f"{path} line {header_line}")


def _semicolon_hint(delimiter: str, text: str) -> str:
    if delimiter == "," and ";" in text.split("\n", 1)[0]:
        return "; the header holds ';': is the file ;-separated? (use one separator)"
    return ""


def _read_parquet(path: Path) -> RoutingTable:
    import pandas as pd

    try:
        df = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises many types for a bad file
        raise InputError(f"{path}: not a readable Parquet file ({e})") from None
    if df.empty:
        raise InputError(f"{path}: the file is empty (expected a routing table)")
    records = df.astype(object).where(df.notna(), None).to_dict("records")
    return _wide_rows([str(c) for c in df.columns], list(enumerate(records, 1)), path,
                      head=f"{path} columns")


def read_table(path: str | Path) -> RoutingTable:
    """Read a routing table file (one of `SUFFIXES`) and validate it."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: a folder (expected a table file)")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return _read_parquet(path)
    text = _decode(path)
    if suffix in (".jsonl", ".json", ".ndjson"):
        return _read_jsonl(path, text)
    if suffix in (".csv", ".tsv"):
        return _read_csv(path, text, "\t" if suffix == ".tsv" else None)
    raise InputError(f"{path}: unknown table format {suffix!r} (expected one of "
                     f"{', '.join(SUFFIXES)})")


def load_table(name_or_path: str | Path) -> RoutingTable:
    """A demo dataset by name (e.g. 'llmrouter') or a table file by path."""
    from avengers_core import datasets

    key = str(name_or_path)
    if key in datasets.TABLES:
        return datasets.load_demo_table(key)
    return read_table(name_or_path)


def check_enough_rows(table: RoutingTable, k: int) -> None:
    """K-means needs at least K distinct queries."""
    if len(table) < k:
        raise InputError(
            f"{table.source}: {len(table)} distinct queries but K = {k} clusters were asked for "
            f"(expected at least K rows; lower K)"
        )
