"""Plot functions: right trace shapes, escaped hover text, selection mapping."""

import numpy as np
import plotly.graph_objects as go
import pytest

from avengers_core.present import plots


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
    assert trace.customdata[0][2] == "zero &lt;b&gt;"
    assert len(set(zip(trace.marker.color, trace.marker.symbol, strict=True))) == 25
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


def _lab(hex_color: str) -> np.ndarray:
    """CIELAB (D65) of an sRGB hex colour."""
    rgb = np.array([int(hex_color[i:i + 2], 16) for i in (1, 3, 5)]) / 255
    rgb = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = m @ rgb / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_palette_colours_are_distinct_and_symbols_cycle_beyond_it():
    labs = [_lab(c) for c in plots.PALETTE]
    gaps = [np.linalg.norm(a - b) for i, a in enumerate(labs) for b in labs[i + 1:]]
    assert min(gaps) > 20  # ΔE76: clearly different (the old palette had pairs under 10)
    n = len(plots.PALETTE)
    pairs = {(plots.color_of(i), plots.symbol_of(i)) for i in range(3 * n)}
    assert len(pairs) == 3 * n  # 72 clusters: no two look the same
    assert plots.symbol_of(0) == plots.symbol_of(n - 1) != plots.symbol_of(n)


def test_cluster_map_by_task_gives_each_task_its_own_colour():
    tasks = [f"task{i}" for i in range(14)]
    fig = plots.cluster_map(np.zeros((14, 2)), tasks, tasks, color_name="task")
    assert len({tr.marker.color for tr in fig.data}) == 14
    many = plots.cluster_map(np.zeros((64, 2)), [f"q{i}" for i in range(64)], list(range(64)))
    (trace,) = many.data
    assert len(set(zip(trace.marker.color, trace.marker.symbol, strict=True))) == 64


def test_query_star_is_drawn_last_in_the_webgl_layer():
    fig = plots.cluster_map(np.zeros((3, 2)), ["a", "b", "c"], [0, 1, 0],
                            query_point=(0.0, 0.0))
    star = fig.data[-1]
    assert star.type == "scattergl" and star.marker.symbol == "star"  # above the GL points
    assert all(tr.type == "scattergl" for tr in fig.data)


def test_heatmap_top_margin_holds_the_rotated_names_and_the_title():
    short = plots.profile_heatmap(np.zeros((2, 1)), np.ones((2, 1)), ["m"], ["a", "b"],
                                  title="T")
    long_name = "llama-3.1-nemotron-51b-instruct"
    long = plots.profile_heatmap(np.zeros((2, 1)), np.ones((2, 1)), [long_name], ["a", "b"],
                                 title="T")
    # names rotated by 30°: about 3.5 px of height a character, plus the title's 40 px
    assert long.layout.margin.t >= 40 + 3.5 * len(long_name)
    assert long.layout.margin.t > short.layout.margin.t
    assert long.layout.title.yref == "container" and long.layout.title.yanchor == "top"


def test_models_curve_ticks_whole_numbers():
    fig = plots.models_curve([1, 2, 3], {"router": [0.6, 0.7, 0.71]})
    assert fig.layout.xaxis.dtick == 1 and fig.layout.xaxis.tick0 == 1


def test_tour_figures():
    coords = np.arange(40, dtype=float).reshape(20, 2)
    fig = plots.neighbours_map(coords, [f"q{i}" for i in range(20)], [3, 4], [0.9, 0.8],
                               coords[2], "q<2>")
    assert [tr.name for tr in fig.data] == ["queries", "nearest neighbours", "the query"]
    assert fig.data[-1].marker.symbol == "star" and fig.data[1].customdata[0][1] == 0.9
    frames = [np.zeros(20, int), np.arange(20) % 2, np.arange(20) % 2]
    anim = plots.kmeans_steps(coords, frames, title="K = 2")
    assert len(anim.frames) == 3 and len(anim.layout.sliders[0].steps) == 3
    assert "10 queries changed cluster" in anim.frames[1].layout.title.text
    assert "0 queries changed" in anim.frames[2].layout.title.text
    bars = plots.cluster_accuracy(["a", "b"], [np.nan, 0.5], [0.4, 0.45], [0, 2])
    assert list(bars.data[0].y) == ["b", "a"]  # best shrunk first
    assert list(bars.data[0].text) == ["0.50 of 2", "no score"]
    curve = plots.majority_curve(0.6, [1, 2, 3], [0.6, 0.6, 0.648], 3)
    assert [tr.name for tr in curve.data] == ["majority of N samples", "one sample (p = 0.60)",
                                             "N = 3"]
