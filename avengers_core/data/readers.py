"""Routing table readers: JSON Lines (long or wide), CSV/TSV (wide) and Parquet, each checked
row by row; pickles and unknown formats are refused by their first bytes."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path

from avengers_core.data.table import (
    COST_PREFIX,
    MAX_MODELS,
    MAX_QUERY_CHARS,
    QUERY_KEYS,
    RECORD,
    RESERVED_COLUMNS,
    RoutingTable,
    _show,
    from_rows,
    unescape_cell,
)
from avengers_core.errors import InputError

#: The file suffixes `read_table` reads (the app's uploader offers the same).
SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet", ".pq")
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
