"""Routing tables: queries with per-model scores in [0, 1], loaded and validated.

A missing score means "not evaluated" (NaN), never a failure. Duplicated query texts are
merged (mean of their scores) so no question is counted twice.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avengers_core.errors import InputError

QUERY_KEYS = ("query", "question")
SCORE_KEYS = ("scores", "records")
COST_PREFIX = "cost:"
RESERVED_COLUMNS = {"query", "question", "task", "id"}


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
        """The table in the wide CSV form that `read_table` accepts."""
        return self.to_frame().to_csv(index=False)

    def task_model_means(self):
        """Task × model mean score (a DataFrame; rows sorted by task)."""
        df = self.to_frame()
        key = df["task"] if self.tasks is not None else ["(all)"] * len(df)
        return df[self.models].groupby(key).mean().sort_index()


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
        raise InputError(f"{where}: {what} must be a number, got {value!r}") from None
    return x


def _score(value: object, where: str) -> float:
    x = _cell(value, where, "score")
    if not math.isnan(x) and not 0.0 <= x <= 1.0:
        raise InputError(f"{where}: score must be in [0, 1], got {x}")
    return x


def _cost(value: object, where: str) -> float:
    x = _cell(value, where, "cost")
    if not math.isnan(x) and x < 0:
        raise InputError(f"{where}: cost must be >= 0, got {x}")
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
            raise InputError(f"{loc}: expected a JSON object, got {type(row).__name__}")
        qkey = next((k for k in QUERY_KEYS if k in row), None)
        if qkey is None:
            raise InputError(f"{loc}: no query (expected a 'query' or 'question' field)")
        query = row[qkey]
        if not isinstance(query, str) or not query.strip():
            raise InputError(f"{loc}: query must be a non-empty string, got {query!r}")
        skey = next((k for k in SCORE_KEYS if k in row), None)
        scores = row.get(skey) if skey else None
        if not isinstance(scores, dict):
            raise InputError(f"{loc}: expected 'scores' (or 'records') as {{model: number}}")
        sc = {str(m): _score(v, f"{loc}, model {m!r}") for m, v in scores.items()}
        costs = row.get("costs") or {}
        if not isinstance(costs, dict):
            raise InputError(f"{loc}: 'costs' must be {{model: number}}")
        co = {str(m): _cost(v, f"{loc}, cost of {m!r}") for m, v in costs.items()}
        task = row.get("task")
        has_task |= task is not None
        has_cost |= bool(co)
        for m in list(sc) + list(co):
            models.setdefault(m, None)
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


def _decode(path: Path) -> str:
    raw = path.read_bytes()
    if not raw.strip():
        raise InputError(f"{path}: the file is empty (expected a routing table)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise InputError(f"{path} line {line}, byte {col} of the line: not UTF-8 text") from None


def _read_jsonl(path: Path, text: str) -> RoutingTable:
    stripped = text.lstrip()
    if stripped.startswith("["):  # a JSON list of records, as in the Avengers/LLMRouter data
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"{path} line {e.lineno}: not valid JSON ({e.msg})") from None
        return from_rows(rows, str(path), [f"{path} record {i + 1}" for i in range(len(rows))])
    rows, where = [], []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise InputError(
                f"{path} line {lineno}: not a JSON object ({e.msg}); expected one object a line"
            ) from None
        where.append(f"{path} line {lineno}")
    return from_rows(rows, str(path), where)


def _wide_rows(columns: list[str], records: list[dict], path: Path, first_row: int) -> RoutingTable:
    """Wide form: query, optional task/id, one column per model, optional cost:<model>."""
    cols = [c.strip() for c in columns]
    qcol = next((c for c in QUERY_KEYS if c in cols), None)
    if qcol is None:
        raise InputError(f"{path}: no query column (expected a column named 'query'); got {cols}")
    model_cols = [c for c in cols if c not in RESERVED_COLUMNS and not c.startswith(COST_PREFIX)]
    if not model_cols:
        raise InputError(f"{path}: no model columns (expected one numeric column per model)")
    rows, where = [], []
    for i, rec in enumerate(records):
        rec = {str(k).strip(): v for k, v in rec.items()}
        loc = f"{path} row {i + first_row}"
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
            raise InputError(f"{loc}: empty query")
        rows.append(row)
        where.append(loc)
    return from_rows(rows, str(path), where)


def _read_csv(path: Path, text: str) -> RoutingTable:
    reader = csv.DictReader(io.StringIO(text), strict=True)
    try:
        if not reader.fieldnames:
            raise InputError(f"{path}: no header row (expected 'query' and model columns)")
        records = list(reader)
    except csv.Error as e:
        raise InputError(
            f"{path} line {reader.line_num}: not valid CSV ({e}); check the quotes"
        ) from None
    # Row numbers count the header as row 1, as spreadsheets do.
    return _wide_rows(list(reader.fieldnames), records, path, first_row=2)


def _read_parquet(path: Path) -> RoutingTable:
    import pandas as pd

    try:
        df = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises many types for a bad file
        raise InputError(f"{path}: not a readable Parquet file ({e})") from None
    if df.empty:
        raise InputError(f"{path}: the file is empty (expected a routing table)")
    records = df.astype(object).where(df.notna(), None).to_dict("records")
    return _wide_rows([str(c) for c in df.columns], records, path, first_row=1)


def read_table(path: str | Path) -> RoutingTable:
    """Read a routing table file (.jsonl, .json, .csv, .parquet) and validate it."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return _read_parquet(path)
    text = _decode(path)
    if suffix in (".jsonl", ".json", ".ndjson"):
        return _read_jsonl(path, text)
    if suffix in (".csv", ".tsv"):
        return _read_csv(path, text)
    raise InputError(f"{path}: unknown table format {suffix!r} (expected .jsonl, .csv, .parquet)")


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
