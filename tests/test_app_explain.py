"""Issue 19 in the app (AppTest): what the pages show about a routing decision is what the
router used, on a table with three specialists (`tests/specialists.py`)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests import specialists
from tests.test_app_pages import app, button, charts, clean, k_of

ROOT = Path(__file__).resolve().parents[1]
QUERY = "What is 9 times 7?"


def test_pages_show_the_numbers_route_json_gives(tmp_path):
    table = specialists.write_csv(tmp_path / "spec.csv")
    at = app()
    at.file_uploader[0].set_value(("spec.csv", table.read_bytes(), "text/csv")).run()
    clean(at)
    k = k_of(at)

    at.switch_page("app_pages/clusters.py").run()  # coloured by best model: all three
    at.radio[0].set_value("best model").run()
    clean(at)
    assert {tr["name"] for tr in charts(at)[0]["data"]} == set(specialists.MODELS)
    summary = at.dataframe[-1].value
    assert set(summary["best model"]) == set(specialists.MODELS)

    at.switch_page("app_pages/route.py").run()
    at.text_area[0].set_value(QUERY)
    button(at, "Route").click().run()
    clean(at)
    msg = at.success[0].value
    table_rows = at.dataframe[0].value
    parts = next(c for c in charts(at) if c["layout"]["title"]["text"].startswith("How the"))
    fused = {tr_y.replace("★ ", ""): x for tr_y, x in
             zip(parts["data"][-1]["y"], parts["data"][-1]["x"], strict=True)}

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cli = [sys.executable, "-m", "avengers_core.cli"]
    fit = subprocess.run([*cli, "fit", str(table), "--k", str(k), "--seed", "0",
                          "--out", str(tmp_path / "p")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert fit.returncode == 0, fit.stderr
    out = subprocess.run([*cli, "route", str(tmp_path / "p"), QUERY, "--json"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)

    top = data["models"][0]
    assert top == "mathwiz" and msg.startswith(f"**Route to {top}.**")
    assert re.findall(r"\d+%", msg) == re.findall(r"\d+%", data["reason"])
    for m, v in fused.items():
        assert abs(v - data["scores"][m]) < 1e-6
    assert list(table_rows["best model here"]) == [c["best_model"] for c in data["clusters"]]
    for row, c in zip(table_rows.to_dict("records"), data["clusters"], strict=True):
        assert abs(row["p"] - c["p"]) < 1e-6 and row["queries"] == c["n"]
        assert abs(row["effective"] - c["scores"][top]) < 1e-6
        assert abs(row["raw"] - c["raw"][top]) < 1e-6 and row["answered"] == c["count"][top]
        assert abs(row["prior"] - data["prior"]["scores"][top]) < 1e-6
