"""Routing tables: queries with per-model scores in [0, 1], loaded and validated.

A missing score means "not evaluated" (NaN), never a failure. Duplicated query texts are
merged (mean of their scores) so no question is counted twice. Every file the loader refuses
gets a one-line `InputError` naming the file, the line or row and what was expected.

CSV written by `to_csv` is safe to open in a spreadsheet: a cell starting like a formula
(`=`, `+`, `-`, `@`, tab, CR) gets a leading apostrophe, which `read_table` removes again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from avengers_core.errors import InputError

QUERY_KEYS = ("query", "question")
SCORE_KEYS = ("scores", "records")
COST_PREFIX = "cost:"
RESERVED_COLUMNS = {"query", "question", "task", "id"}
MAX_QUERY_CHARS = 100_000  # far beyond any embedder's window; longer is a broken file
MAX_MODELS = 1_000  # a profile is K × M; thousands of "models" is a transposed table
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # spreadsheets run such cells as formulas
RECORD = '{"query": ..., "scores": {...}}'  # one JSON Lines row, as error messages show it


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


def check_enough_rows(table: RoutingTable, k: int) -> None:
    """K-means needs at least K distinct queries."""
    if len(table) < k:
        raise InputError(
            f"{table.source}: {len(table)} distinct queries but K = {k} clusters were asked for "
            f"(expected at least K rows; lower K)"
        )
