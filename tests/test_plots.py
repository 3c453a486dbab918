"""Plot functions: right trace shapes, escaped hover text, selection mapping."""

import numpy as np
import plotly.graph_objects as go
import pytest

from avengers_core import plots


def test_hover_text_escapes_and_shortens():
    s = plots.hover_text("<script>alert(1)</script> " + "word " * 100, limit=80)
    assert "<script>" not in s and "&lt;script&gt;" in s
    assert s.endswith("…")
    assert len(s.replace("<br>", "")) < 120


def test_model_bars_sorted_and_drops_nan():
    fig = plots.model_bars(["a", "b", "c"], [0.2, np.nan, 0.9], counts=[5, 0, 7])
    assert isinstance(fig, go.Figure)
    assert list(fig.data[0].y) == ["c", "a"]


def test_cluster_map_traces_and_selection():
    coords = np.arange(12, dtype=float).reshape(6, 2)
    queries = ["q<1>", "q2", "q3", "q4", "q5", "q6"]
    fig = plots.cluster_map(coords, queries, [0, 1, 0, 2, 1, 0], names={0: "zero <b>"},
                            query_point=(1.0, 2.0))
    assert len(fig.data) == 4  # three clusters + the query star
    first = fig.data[0]
    assert [c[0] for c in first.customdata] == [0, 2, 5]
    assert first.customdata[0][1] == "q&lt;1&gt;"
    assert first.name == "zero &lt;b&gt;"
    pts = [{"curve_number": 0, "point_index": 1}, {"curve_number": 1, "point_index": 1},
           {"curve_number": 9, "point_index": 0}]
    assert plots.selected_rows(fig, pts) == [2, 4]


def test_cluster_map_by_task_strings():
    fig = plots.cluster_map(np.zeros((3, 2)), ["a", "b", "c"], ["math", "code", "math"],
                            color_name="task")
    assert sorted(t.name for t in fig.data) == ["code", "math"]


def test_heatmap_masks_empty_cells_and_orders():
    mean = np.array([[0.5, 1.0], [0.0, 0.25]])
    count = np.array([[2, 1], [0, 4]])
    fig = plots.profile_heatmap(mean, count, ["m1", "m2"], ["a", "b"], order=[1, 0])
    z = np.asarray(fig.data[0].z, dtype=float)
    assert np.isnan(z[0, 0]) and z[0, 1] == 0.25
    assert list(fig.data[0].y) == ["#1 b", "#0 a"]
    assert np.asarray(fig.data[0].customdata).tolist() == [[0, 4], [2, 1]]


def test_small_figures():
    clusters = [{"id": 3, "p": 0.7, "similarity": 0.8}, {"id": 1, "p": 0.3, "similarity": 0.6}]
    assert list(plots.route_probabilities(clusters).data[0].y) == ["#3", "#1"]
    fig = plots.vote_tally({"42": 3, "41": 1}, winner="42")
    assert fig.data[0].marker.color[0] == "#2ca02c"
    assert len(plots.evaluation_bars({"router": 0.7, "oracle": 0.8, "x": float("nan")})
               .data[0].x) == 2
    assert len(plots.k_sweep([8, 16], {"router": [0.6, 0.7], "best": [0.6, 0.6]}).data) == 2
    assert len(plots.models_curve([1, 2], {"router": [0.6, 0.7]}).data) == 1
    fig = plots.cost_curve([0, 0.5, 1], [0.5, 0.6, 0.7], [0.1, 0.2, 0.4], {"big": (0.5, 0.65)})
    assert len(fig.data) == 2
    assert len(plots.calibration_accuracy({"m": [1.0, 0.5, 0.67]}).data) == 1
    assert plots.score_bars({"a": 1.0, "b": 2.0}, chosen=["b"]).data[0].y[0] == "b"


def test_score_hover_escapes_model_names():
    template, cells = plots.score_hover(["m<b>1</b>", "m2", "m3", "m4"],
                                        np.array([[0, np.nan, 1, 0.5]]), first=3)
    assert template == ("m&lt;b&gt;1&lt;/b&gt;: %{customdata[3]} · m2: %{customdata[4]} · "
                        "m3: %{customdata[5]}<br>m4: %{customdata[6]}")
    assert cells == [["0", "–", "1", "0.5"]]
    fig = plots.cluster_map(np.zeros((1, 2)), ["q"], [0], scores=(["m<b>1</b>"], [[1.0]]))
    assert "m<b>" not in fig.data[0].hovertemplate and fig.data[0].customdata[0][3] == "1"


def test_cost_curve_names_models_in_the_legend_not_as_overlapping_labels():
    fig = plots.cost_curve([0, 1], [0.5, 0.7], [0.1, 0.9], {"a<i>": (0.2, 0.6), "b": (0.21, 0.6)})
    singles = fig.data[1:]
    assert [t.name for t in singles] == ["a&lt;i&gt;", "b"]
    assert all(t.mode == "markers" and t.text is None for t in singles)


def test_cluster_map_with_many_clusters_is_one_trace():
    coords = np.arange(60, dtype=float).reshape(30, 2)
    fig = plots.cluster_map(coords, [f"q{i}" for i in range(30)], [i % 25 for i in range(30)],
                            names={0: "zero <b>"}, max_legend=20)
    (trace,) = fig.data
    assert sorted(c[0] for c in trace.customdata) == list(range(30))
    assert trace.customdata[0][2] == "zero &lt;b&gt;" and len(set(trace.marker.color)) == 25
    pts = [{"curve_number": 0, "point_index": i} for i in range(3)]
    assert plots.selected_rows(fig, pts) == sorted(trace.customdata[i][0] for i in range(3))


def test_range_lines_band_median_and_references():
    fig = plots.range_lines([1, 10, 100], {
        "router": {"median": [0.6, 0.7, 0.65], "min": [0.5, 0.6, 0.6], "max": [0.7, 0.8, 0.7]},
        "paper <x>": {"median": [0.6, 0.6, 0.6], "min": [0.6, 0.6, 0.6],
                      "max": [0.6, 0.6, 0.6]},
    }, refs={"oracle": 0.8}, log_x=True)
    band, line = fig.data[0], fig.data[1]
    assert list(band.y) == [0.7, 0.8, 0.7, 0.6, 0.6, 0.5]  # max out, min back
    assert list(band.x) == [1, 10, 100, 100, 10, 1] and band.showlegend is False
    assert band.mode == "lines" and band.fill == "toself"  # an area, no markers
    assert list(line.y) == [0.6, 0.7, 0.65] and line.name == "router"
    assert fig.data[3].name == "paper &lt;x&gt;"
    ref = fig.data[4]
    assert ref.name == "oracle" and list(ref.y) == [0.8, 0.8] and list(ref.x) == [1, 100]
    assert fig.layout.xaxis.type == "log" and list(fig.layout.xaxis.tickvals) == [1, 10, 100]
    with pytest.raises(ValueError):
        plots.range_lines([1, 2], {"a": {"median": [1], "min": [1], "max": [1]}})
