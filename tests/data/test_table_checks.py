"""Issue 22, tables: costs that are not finite, model names that are empty or collide with
the wide format's own columns are refused naming the row and field; the CSV download of
any table that loads reads back as the same table."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from avengers_core.cli import main
from avengers_core.data.readers import read_table
from avengers_core.data.table import from_rows
from avengers_core.errors import InputError


def _jsonl(tmp_path, rows, name="t.jsonl"):
    p = tmp_path / name
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return p


@pytest.mark.parametrize("cost", ["inf", "Infinity", "-inf", "1e400", "-2"])
def test_csv_cost_that_is_not_finite_or_negative_is_refused(tmp_path, cost):
    p = tmp_path / "t.csv"
    p.write_text(f"query,cheap,dear,cost:cheap,cost:dear\nq1,1,1,0.1,1\nq2,0,1,0.2,{cost}\n")
    with pytest.raises(InputError) as e:
        read_table(p)
    msg = str(e.value)
    assert f"{p} row 3" in msg and "cost of 'dear'" in msg and "finite number >= 0" in msg


def test_jsonl_infinite_cost_is_refused_and_nan_stays_not_given(tmp_path):
    with pytest.raises(InputError, match=r"line 2, cost of 'm': cost must be a finite"):
        read_table(_jsonl(tmp_path, [{"query": "a", "scores": {"m": 1}, "costs": {"m": 1}},
                                     {"query": "b", "scores": {"m": 1}, "costs": {"m": 1e999}}]))
    t = read_table(_jsonl(tmp_path, [{"query": "a", "scores": {"m": 1}, "costs": {"m": "nan"}}],
                          "n.jsonl"))
    assert math.isnan(t.costs[0, 0])


@pytest.mark.parametrize("name", ["", " ", "\t", "  \u00a0"])
def test_empty_model_name_is_refused_with_row_and_field(tmp_path, name):
    for field, row in (("scores", {"query": "q", "scores": {"m": 1, name: 1}}),
                       ("costs", {"query": "q", "scores": {"m": 1}, "costs": {name: 1}})):
        with pytest.raises(InputError) as e:
            read_table(_jsonl(tmp_path, [{"query": "first", "scores": {"m": 0}}, row]))
        msg = str(e.value)
        assert "line 2" in msg and f"'{field}'" in msg and "model name is empty" in msg


@pytest.mark.parametrize("name", ["query", "question", "task", "id", "cost:turbo", "cost:"])
def test_model_named_like_a_wide_format_column_is_refused(tmp_path, name):
    with pytest.raises(InputError) as e:
        read_table(_jsonl(tmp_path, [{"query": "a", "scores": {"turbo": 1, name: 0}}]))
    msg = str(e.value)
    assert "line 1, 'scores'" in msg and "column of the wide table format" in msg


def test_model_name_with_spaces_around_is_refused():
    with pytest.raises(InputError, match=r"row 1, 'scores': model name ' m' has spaces"):
        from_rows([{"query": "a", "scores": {" m": 1}}], "t")


ODD_NAMES = ["=cmd|calc", "-m", "+1", "@x", "a,b", 'say "hi"', "Query", "TASK", "cost",
             "costs:x", "Cost:x", "mod\u00e8le \u2713", "semi;colon", "'quoted", "tab\tin",
             "new\nline", "0", "1.5", "nan", "m"]


def test_csv_download_reads_back_as_the_same_table(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(12):
        scores = {m: (None if rng.random() < 0.2 else float(rng.integers(0, 2)))
                  for m in ODD_NAMES}
        costs = {m: float(rng.random()) for m in ODD_NAMES[::3]}
        rows.append({"query": ["=1+1", "-neg", "plain, with comma", "multi\nline",
                               "'apostrophe"][i % 5] + f" {i}",
                     "task": ["", "=t", "math"][i % 3], "id": f"=id{i}" if i % 4 else None,
                     "scores": scores, "costs": costs})
    table = read_table(_jsonl(tmp_path, rows))
    back_path = tmp_path / "back.csv"
    back_path.write_text(table.to_csv(), encoding="utf-8", newline="")
    back = read_table(back_path)
    assert back.models == table.models == ODD_NAMES
    assert back.queries == table.queries and back.tasks == table.tasks
    assert back.ids == table.ids
    np.testing.assert_array_equal(back.scores, table.scores)
    np.testing.assert_array_equal(back.costs, table.costs)


def test_cli_fit_refuses_the_infinite_cost_with_one_line(tmp_path, capsys):
    p = tmp_path / "t.csv"
    p.write_text("query,a,b,cost:a,cost:b\nq1,1,0,1,inf\nq2,0,1,1,1\n")
    assert main(["fit", str(p), "--out", str(tmp_path / "prof"), "--k", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {p} row 2, cost of 'b': cost must be a finite number >= 0, got inf"]
