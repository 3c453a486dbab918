"""Routing tables: formats, aliases, missing scores, duplicates, and specific errors."""

import json
import math

import numpy as np
import pytest

from avengers_core.data.readers import read_table
from avengers_core.data.table import check_enough_rows
from avengers_core.errors import InputError


def write(tmp_path, name, text, mode="w"):
    p = tmp_path / name
    if mode == "wb":
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


def test_jsonl_with_aliases_booleans_and_missing(tmp_path):
    p = write(tmp_path, "t.jsonl", "\n".join([
        json.dumps({"query": "a", "scores": {"m1": 1, "m2": 0}, "task": "x"}),
        json.dumps({"question": "b", "records": {"m1": True, "m3": "false"}}),
        "",
    ]))
    t = read_table(p)
    assert t.queries == ["a", "b"]
    assert t.models == ["m1", "m2", "m3"]
    assert t.scores[1, 0] == 1.0 and t.scores[1, 2] == 0.0
    assert math.isnan(t.scores[1, 1])  # missing = not evaluated, not 0
    assert math.isnan(t.scores[0, 2])
    assert t.tasks == ["x", ""]


def test_json_list_of_records(tmp_path):
    p = write(tmp_path, "t.json", json.dumps([{"question": "a", "scores": {"m": 0.5}}]))
    assert read_table(p).scores.tolist() == [[0.5]]


def test_csv_wide_form_with_costs(tmp_path):
    p = write(tmp_path, "t.csv", "id,query,task,m1,m2,cost:m1,cost:m2\n"
              "a1,hello,x,1,,0.5,2\n"
              "a2,world,y,0,1,0.5,2\n")
    t = read_table(p)
    assert t.models == ["m1", "m2"]
    assert t.ids == ["a1", "a2"]
    assert math.isnan(t.scores[0, 1])
    assert t.costs.tolist() == [[0.5, 2.0], [0.5, 2.0]]


def test_parquet_round_trip(tmp_path, toy):
    table, _ = toy
    p = tmp_path / "t.parquet"
    table.to_frame().to_parquet(p)
    back = read_table(p)
    assert back.queries == table.queries
    np.testing.assert_array_equal(back.scores, table.scores)
    np.testing.assert_array_equal(back.costs, table.costs)


def test_csv_round_trip(tmp_path, toy):
    table, _ = toy
    back = read_table(write(tmp_path, "t.csv", table.to_csv()))
    assert back.tasks == table.tasks and back.ids == table.ids
    np.testing.assert_array_equal(back.scores, table.scores)
    np.testing.assert_array_equal(back.costs, table.costs)


def test_duplicates_merged_by_mean_and_reported(tmp_path):
    p = write(tmp_path, "t.jsonl", "\n".join(json.dumps(r) for r in [
        {"query": "same", "scores": {"m": 1}},
        {"query": "other", "scores": {"m": 0}},
        {"query": "same", "scores": {"m": 0}},
    ]))
    t = read_table(p)
    assert len(t) == 2
    assert t.duplicates_merged == 1
    assert t.scores[0, 0] == 0.5
    assert "merged 1" in t.notes[0]


@pytest.mark.parametrize("name,content,expect", [
    ("e.jsonl", "", "empty"),
    ("e.jsonl", '{"query": "a", "scores": {"m": 1}}\n{not json}\n', "line 2"),
    ("e.jsonl", '{"query": "a", "scores": {"m": 1.5}}\n', "in [0, 1]"),
    ("e.jsonl", '{"query": "a", "scores": {"m": "high"}}\n', "must be a number"),
    ("e.jsonl", '{"text": "a", "scores": {"m": 1}}\n', "no query"),
    ("e.jsonl", '{"query": "a", "scores": {}}\n', "no model"),
    ("e.csv", "question_text,m\nhi,1\n", "no query column"),
    ("e.csv", "query,task\nhi,x\n", "no model columns"),
    ("e.csv", "query,m\nhi,1\nho,2\n", "row 3"),
    ("e.txt", "query,m\n", "unknown table format"),
    ("e.csv", 'query,m\n"hello,1\nb,0\n', "not valid CSV"),
])
def test_bad_input_names_file_row_and_expectation(tmp_path, name, content, expect):
    p = write(tmp_path, name, content)
    with pytest.raises(InputError) as err:
        read_table(p)
    assert expect in str(err.value)
    assert str(p) in str(err.value)


def test_not_utf8(tmp_path):
    p = write(tmp_path, "bad.jsonl", b'{"query": "a", "scores": {"m": 1}}\n\xff\xfe\n', "wb")
    with pytest.raises(InputError, match="line 2, byte 1 of the line: not UTF-8"):
        read_table(p)


def test_fewer_rows_than_clusters(toy):
    table, _ = toy
    with pytest.raises(InputError, match="K = 500"):
        check_enough_rows(table, 500)


def test_task_model_means(toy):
    table, _ = toy
    tm = table.task_model_means()
    assert list(tm.columns) == ["A", "B"]
    assert tm.loc["topic0", "A"] > tm.loc["topic0", "B"]


def test_model_means_skip_missing(tmp_path):
    p = write(tmp_path, "t.csv", "query,m1,m2\na,1,\nb,0,\nc,1,1\n")
    means, counts = read_table(p).model_means()
    assert means.tolist() == pytest.approx([2 / 3, 1.0])
    assert counts.tolist() == [3, 1]


def test_example_assets_load():
    from pathlib import Path

    from avengers_core.cli.engines import parse_model_map

    root = Path(__file__).resolve().parents[2] / "assets"
    t = read_table(root / "example_table.csv")
    assert len(t) == 18 and t.models == ["qwen2.5:7b-instruct", "llama3.1:8b", "gemma2:9b"]
    assert set(t.tasks) == {"math", "code", "trivia"}
    assert math.isnan(t.scores[3, 1])  # m4: llama3.1 not evaluated
    mapping = parse_model_map(str(root / "model_map.json"))
    assert mapping["qwen2.5-7b-instruct"] == "qwen2.5:7b-instruct"


def test_unicode_line_separators_inside_a_jsonl_string_are_text(tmp_path):
    row = {"query": "a\u2028b\x0cc", "scores": {"m": 1}}
    p = write(tmp_path, "t.jsonl", json.dumps(row, ensure_ascii=False) + "\n")
    assert read_table(p).queries == ["a\u2028b\x0cc"]


def test_numeric_strings_are_scores_and_tsv_is_tab_separated(tmp_path):
    p = write(tmp_path, "t.jsonl", json.dumps({"query": "a", "scores": {"m": "0.25"}}))
    assert read_table(p).scores.tolist() == [[0.25]]
    t = read_table(write(tmp_path, "t.tsv", "query\tm1\nhello, world\t1\n"))
    assert t.queries == ["hello, world"] and t.models == ["m1"]


def test_a_query_of_a_cell_with_line_breaks_round_trips(tmp_path, toy):
    table, _ = toy
    table.queries[0] = "first line\r\nsecond line\rthird"
    back = read_table(write(tmp_path, "t.csv", table.to_csv().encode(), mode="wb"))
    assert back.queries == table.queries


def test_blank_spreadsheet_rows_are_skipped_but_counted(tmp_path):
    p = write(tmp_path, "t.csv", "query,m1\na,1\n,\n\nb,0\n,\n")
    assert read_table(p).queries == ["a", "b"]
    bad = write(tmp_path, "bad.csv", "query,m1\na,1\n,\nb,high\n")
    with pytest.raises(InputError, match="bad.csv row 4, model 'm1': score must be a number"):
        read_table(bad)
