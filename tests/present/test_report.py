"""The HTML report: one self-contained page (plotly.js inline, no network), every figure in."""

import json
import re

import numpy as np

from avengers_core.present import plots
from avengers_core.present.report import dataset_report, html_report


def _evaluation():
    return {"router": 0.7, "paper": 0.69, "best_single": 0.6, "knn": 0.65, "random": 0.4,
            "oracle": 0.8, "n_train": 42, "n_test": 18, "best_single_model": "m<1>"}


def test_report_is_self_contained_and_escaped():
    fig = plots.evaluation_bars({"a": 0.5})
    page = html_report("T <script>", [("Head & more", "text <b>", fig)], meta="m")
    assert page.startswith("<!DOCTYPE html>")
    assert "T &lt;script&gt;" in page and "text &lt;b&gt;" in page and "Head &amp; more" in page
    assert not re.search(r"<script[^>]+src=", page)  # nothing loaded from elsewhere
    assert "<link" not in page and "<iframe" not in page
    assert page.count("Plotly.newPlot(") == 1
    assert len(page) > 3_000_000  # plotly.js itself is inside


def test_dataset_report_has_the_four_figures():
    coords = np.random.default_rng(0).normal(size=(30, 2))
    queries = [f"q{i}" for i in range(30)]
    map_fig = plots.cluster_map(coords, queries, [i % 3 for i in range(30)])
    heat = plots.profile_heatmap(np.full((3, 2), 0.5), np.ones((3, 2)), ["m1", "m2"],
                                 ["a", "b", "c"])
    rows = [{"k": 4, "router": 0.6, "paper": 0.58}, {"k": 8, "router": 0.62, "paper": 0.6}]
    page = dataset_report("mine.csv", 30, map_fig, heat, _evaluation(), rows)
    assert page.count("Plotly.newPlot(") == 4
    for heading in ("The map", "Who is good where", "Held-out evaluation",
                    "Number of clusters K"):
        assert f"<h2>{heading}</h2>" in page
    assert "m&lt;1&gt;" in page  # data escaped in the text
    calls = re.findall(r'Plotly\.newPlot\(\s*"figure-3",\s*(\[.*?\]),\s*\{', page, re.S)
    sweep = json.loads(calls[0])
    assert [tr["name"] for tr in sweep] == ["router (default)", "router (paper-exact)",
                                           "best single model"]
    assert sweep[0]["x"] == [4, 8]
