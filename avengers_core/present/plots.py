"""Plotly figures for the app and reports: one function per figure, plain data in, figure out.

Query text from data is escaped (`html.escape`) and shortened before it reaches a hover
label, because plotly renders a subset of HTML in hover text.
"""

from __future__ import annotations

import html
import textwrap
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

# Plotly's Dark24 (plotly.colors.qualitative): 24 colours at least 26 CIELAB ΔE apart, so
# no two categories of a map look alike (the tab20-like palette before gave near-identical
# colours to tasks 10 apart: issue 14, item 6). Beyond 24 categories the marker symbol cycles.
PALETTE = (
    "#2E91E5 #E15F99 #1CA71C #FB0D0D #DA16FF #222A2A #B68100 #750D86 #EB663B #511CFB "
    "#00A08B #FB00D1 #FC0080 #B2828D #6C7C32 #778AAE #862A16 #A777F1 #620042 #1616A7 "
    "#DA60CA #6C4516 #0D2A63 #AF0038"
).split()
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "cross", "triangle-down",
           "pentagon", "hexagon", "star-triangle-up")

_LAYOUT = {"margin": {"l": 10, "r": 10, "t": 40, "b": 10}, "template": "plotly_white"}


def hover_text(text: str, limit: int = 160, width: int = 60) -> str:
    """Shortened, escaped, wrapped text safe to show in a plotly hover label."""
    flat = " ".join(str(text).split())
    if len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    return "<br>".join(html.escape(line) for line in textwrap.wrap(flat, width) or [""])


def score_hover(models: Sequence[str], scores: np.ndarray, first: int,
                per_line: int = 3) -> tuple[str, list[list[str]]]:
    """Hover lines "model: score · …" for a map: the template names each model once (escaped:
    plotly renders HTML) and reads its score from `customdata[first + j]`; per row of
    `scores` (N, M), the short cells to put there. Far less to send than a line per point."""
    names = [f"{html.escape(m)}: %{{customdata[{first + j}]}}" for j, m in enumerate(models)]
    template = "<br>".join(" · ".join(names[i:i + per_line])
                           for i in range(0, len(names), per_line))
    cells = [["–" if np.isnan(v) else f"{v:g}" for v in row]
             for row in np.asarray(scores, dtype=float)]
    return template, cells


def cluster_title(k: int, label: str | None = None) -> str:
    """Unique display name of cluster `k`: "#12 house · shoes" (labels alone may repeat)."""
    return f"#{k} {label}" if label else f"#{k}"


def color_of(i: int) -> str:
    """A stable colour for category number `i` (cycles after len(PALETTE) = 24)."""
    return PALETTE[i % len(PALETTE)]


def symbol_of(i: int) -> str:
    """The marker symbol for category number `i`: circles for the first 24 categories, then
    the next symbol for each further round of the palette, so (colour, symbol) is unique
    for the first 240 categories."""
    return SYMBOLS[(i // len(PALETTE)) % len(SYMBOLS)]


def model_bars(models: Sequence[str], means: Sequence[float], counts: Sequence[int] | None = None,
               title: str = "Mean score per model") -> go.Figure:
    """Bar chart of each model's mean score, best first (NaN means are dropped)."""
    rows = [(m, float(v), None if counts is None else int(counts[i]))
            for i, (m, v) in enumerate(zip(models, means, strict=True)) if np.isfinite(v)]
    rows.sort(key=lambda r: -r[1])
    custom = [[r[2] if r[2] is not None else ""] for r in rows]
    fig = go.Figure(go.Bar(
        x=[r[1] for r in rows], y=[html.escape(r[0]) for r in rows], orientation="h",
        text=[f"{r[1]:.3f}" for r in rows], textposition="auto", customdata=custom,
        hovertemplate="%{y}<br>mean score %{x:.3f}<br>n = %{customdata[0]}<extra></extra>",
        marker_color=[color_of(i) for i in range(len(rows))],
    ))
    fig.update_layout(title=title, xaxis={"range": [0, 1], "title": "mean score"},
                      yaxis={"autorange": "reversed"}, height=80 + 28 * len(rows), **_LAYOUT)
    return fig


def cluster_map(
    coords: np.ndarray,
    queries: Sequence[str],
    color: Sequence[object],
    color_name: str = "cluster",
    names: Mapping[object, str] | None = None,
    scores: tuple[Sequence[str], np.ndarray] | None = None,
    query_point: Sequence[float] | None = None,
    query_label: str = "your query",
    title: str | None = None,
    max_legend: int = 20,
    hovers: Sequence[str] | None = None,
) -> go.Figure:
    """Scatter of the 2-D map, one trace per colour value; customdata[0] is the row index.

    `names` maps a colour value to its legend name (e.g. cluster id -> "#12 house · shoes");
    `scores` (models, (N, M) matrix) adds each point's scores to the hover; `query_point` marks a
    routed query with a star; `hovers` are the queries' `hover_text`s when already made
    (they do not change with K, so a caller may keep them).
    """
    coords = np.asarray(coords, dtype=float)
    values = list(color)
    if not (len(coords) == len(queries) == len(values)):
        raise ValueError("coords, queries and color must have the same length")
    cats = sorted(set(values), key=lambda v: (str(type(v)), v))
    hov = list(hovers) if hovers is not None else [hover_text(q) for q in queries]
    extra, cells = score_hover(*scores, first=3) if scores else ("", [[]] * len(values))
    labels = {cat: html.escape(names.get(cat, str(cat)) if names else str(cat)) for cat in cats}
    groups: dict[object, list[int]] = {cat: [] for cat in cats}
    for j, v in enumerate(values):
        groups[v].append(j)
    head = f"<b>{html.escape(color_name)}: "
    if len(cats) > max_legend:  # no legend anyway: one trace draws far faster in the browser
        order = [j for idx in groups.values() for j in idx]
        number = {cat: i for i, cat in enumerate(cats)}
        traces = [_points(coords, order, [[j, hov[j], labels[values[j]], *cells[j]]
                                          for j in order],
                          head + "%{customdata[2]}</b>", extra, html.escape(color_name),
                          [color_of(number[values[j]]) for j in order],
                          [symbol_of(number[values[j]]) for j in order], False)]
    else:
        traces = [_points(coords, idx, [[j, hov[j], "", *cells[j]] for j in idx],
                          head + f"{labels[cat]}</b>", extra, labels[cat], color_of(i),
                          symbol_of(i), True)
                  for i, (cat, idx) in enumerate(groups.items())]
    layout = {"title": title, "height": 560, "dragmode": "lasso",
              "xaxis": {"visible": False}, "yaxis": {"visible": False},
              "legend": {"title": {"text": html.escape(color_name)}, "itemsizing": "constant"},
              **_LAYOUT}
    # Plain, known-good dicts: plotly's per-property validation of hundreds of traces took
    # most of a K change (0.5 s at K = 256), so it is skipped here.
    fig = go.Figure(data=traces, layout=go.Layout(layout), _validate=False)
    return fig if query_point is None else mark_query(fig, query_point, query_label)


def _points(coords: np.ndarray, idx: list[int], custom: list[list], title: str, extra: str,
            name: str, color: str | list[str], symbol: str | list[str], legend: bool) -> dict:
    """One scattergl trace (a plain dict) of the map points `idx`; customdata is
    [row, hover text, cluster label, score cells…]."""
    return {"type": "scattergl", "x": coords[idx, 0], "y": coords[idx, 1], "mode": "markers",
            "name": name,
            "marker": {"size": 5, "color": color, "symbol": symbol, "opacity": 0.75},
            "customdata": custom, "showlegend": legend,
            "hovertemplate": f"{title}<br>%{{customdata[1]}}<br>{extra}<extra></extra>"}


def mark_query(fig: go.Figure, point: Sequence[float], label: str = "your query") -> go.Figure:
    """A copy of a map figure with the routed query marked by a star.

    The star is a WebGL trace drawn after the map's WebGL points: an SVG trace is drawn
    below the WebGL layer and was hidden by the points (issue 14, item 2).
    """
    out = go.Figure(data=fig.to_plotly_json()["data"], layout=fig.layout, _validate=False)
    out.add_trace(go.Scattergl(
        x=[float(point[0])], y=[float(point[1])], mode="markers", name=html.escape("your query"),
        hovertemplate=f"{hover_text(label)}<extra></extra>",
        marker={"symbol": "star", "size": 20, "color": "black",
                "line": {"width": 2, "color": "white"}},
    ))
    return out


def selected_rows(fig: go.Figure, points: Sequence[Mapping]) -> list[int]:
    """Row indices of a `st.plotly_chart` selection on a `cluster_map` figure."""
    rows: list[int] = []
    for p in points:
        curve, idx = p.get("curve_number"), p.get("point_index", p.get("point_number"))
        if curve is None or idx is None or curve >= len(fig.data):
            continue
        custom = fig.data[curve].customdata
        if custom is not None and idx < len(custom):
            rows.append(int(custom[idx][0]))
    return sorted(set(rows))


def profile_heatmap(
    mean: np.ndarray, count: np.ndarray, models: Sequence[str],
    cluster_names: Sequence[str], order: Sequence[int] | None = None, title: str | None = None,
) -> go.Figure:
    """Clusters x models heatmap of mean scores; hover shows the count behind each cell."""
    mean = np.asarray(mean, dtype=float)
    count = np.asarray(count)
    order = list(range(len(mean))) if order is None else list(order)
    z = np.where(count[order] > 0, mean[order], np.nan)
    ylabels = [html.escape(cluster_title(k, cluster_names[k])) for k in order]
    fig = go.Figure(go.Heatmap(
        z=z, x=[html.escape(m) for m in models], y=ylabels, customdata=count[order],
        colorscale="RdYlGn", zmin=0, zmax=1, colorbar={"title": "mean"},
        hovertemplate="%{y}<br>%{x}<br>mean %{z:.2f} over %{customdata} queries<extra></extra>",
        hoverongaps=False,
    ))
    # The model names stand above the grid, rotated by 30°: the top margin holds them
    # (≈ 7 px a character at 12 px, times sin 30°) and, above them, the title, which sat
    # on the names before (issue 14, item 5).
    names_px = int(0.5 * 7 * max((len(m) for m in models), default=0)) + 20
    top = names_px + (40 if title else 10)
    fig.update_layout(title={"text": title, "yref": "container", "y": 1, "yanchor": "top",
                             "pad": {"t": 10}},
                      height=max(320, top + 80 + 16 * len(order)),
                      yaxis={"autorange": "reversed", "type": "category"},
                      xaxis={"side": "top", "tickangle": -30},
                      **{**_LAYOUT, "margin": {**_LAYOUT["margin"], "t": top}})
    return fig


def route_probabilities(clusters: Sequence[Mapping], names: Sequence[str] | None = None,
                        title: str = "Nearest clusters") -> go.Figure:
    """Bars of the routed query's cluster probabilities (`[{"id", "p", "similarity"}]`)."""
    labels = [html.escape(cluster_title(c["id"], names[c["id"]] if names else None))
              for c in clusters]
    sims = [float(c.get("similarity", np.nan)) for c in clusters]
    fig = go.Figure(go.Bar(
        x=[float(c["p"]) for c in clusters], y=labels, orientation="h", customdata=sims,
        text=[f"{float(c['p']):.0%}" for c in clusters], textposition="auto",
        hovertemplate="%{y}<br>p = %{x:.3f}<br>cosine %{customdata:.3f}<extra></extra>",
        marker_color=[color_of(i) for i in range(len(clusters))],
    ))
    fig.update_layout(title=title, xaxis={"range": [0, 1], "title": "probability"},
                      yaxis={"autorange": "reversed", "type": "category"},
                      height=100 + 30 * len(clusters), **_LAYOUT)
    return fig


def score_bars(scores: Mapping[str, float], chosen: Sequence[str] = (),
               title: str = "Fused model scores") -> go.Figure:
    """Bars of each model's fused routing score; the chosen models are highlighted."""
    items = sorted(scores.items(), key=lambda kv: -kv[1])
    fig = go.Figure(go.Bar(
        x=[v for _, v in items], y=[html.escape(m) for m, _ in items], orientation="h",
        marker_color=["#2ca02c" if m in chosen else "#c7c7c7" for m, _ in items],
        hovertemplate="%{y}<br>score %{x:.3f}<extra></extra>",
    ))
    fig.update_layout(title=title, yaxis={"autorange": "reversed", "type": "category"},
                      height=80 + 26 * len(items), **_LAYOUT)
    return fig


def vote_tally(votes: Mapping[str, int], winner: str | None = None,
               title: str = "Vote tally") -> go.Figure:
    """Horizontal bars of votes per extracted answer, most votes first; the winner in green."""
    items = sorted(votes.items(), key=lambda kv: -kv[1])
    labels = [hover_text(a, limit=40, width=40) for a, _ in items]
    fig = go.Figure(go.Bar(
        x=[v for _, v in items], y=labels, orientation="h", text=[v for _, v in items],
        textposition="auto",
        marker_color=["#2ca02c" if a == winner else "#1f77b4" for a, _ in items],
        hovertemplate="%{y}: %{x} votes<extra></extra>",
    ))
    fig.update_layout(title=title, xaxis={"title": "votes", "dtick": 1},
                      yaxis={"autorange": "reversed", "type": "category"},
                      height=100 + 30 * max(1, len(items)), **_LAYOUT)
    return fig


def evaluation_bars(results: Mapping[str, float], title: str = "Held-out mean score") -> go.Figure:
    """Bars of each method's held-out mean score (router, paper, best single, knn, ...)."""
    items = [(k, float(v)) for k, v in results.items() if v is not None and np.isfinite(v)]
    fig = go.Figure(go.Bar(
        x=[html.escape(k) for k, _ in items], y=[v for _, v in items],
        text=[f"{v:.3f}" for _, v in items], textposition="auto",
        marker_color=[color_of(i) for i in range(len(items))],
        hovertemplate="%{x}: %{y:.4f}<extra></extra>",
    ))
    fig.update_layout(title=title, yaxis={"range": [0, 1], "title": "mean test score"},
                      height=380, **_LAYOUT)
    return fig


def _lines(x: Sequence[float], series: Mapping[str, Sequence[float]], title: str,
           xtitle: str, ytitle: str = "mean test score") -> go.Figure:
    fig = go.Figure()
    for i, (name, ys) in enumerate(series.items()):
        fig.add_trace(go.Scatter(x=list(x), y=list(ys), mode="lines+markers",
                                 name=html.escape(name), line={"color": color_of(i)}))
    fig.update_layout(title=title, xaxis={"title": xtitle}, yaxis={"title": ytitle},
                      height=380, **_LAYOUT)
    return fig


def k_sweep(ks: Sequence[int], series: Mapping[str, Sequence[float]],
            title: str = "Score against the number of clusters K") -> go.Figure:
    """Lines of held-out score against K, one per method (the paper's Figure 3)."""
    return _lines(ks, series, title, "K (clusters)")


def models_curve(ns: Sequence[int], series: Mapping[str, Sequence[float]],
                 title: str = "Score against the number of models") -> go.Figure:
    """Lines of routed score against the number of selected models (the paper's Figure 2);
    the x axis is ticked at whole numbers only (a count of models has no 1.5)."""
    fig = _lines(ns, series, title, "models selected")
    fig.update_xaxes(tickmode="linear", tick0=1, dtick=max(1, -(-len(ns) // 12)))
    return fig


def cost_curve(alphas: Sequence[float], scores: Sequence[float], costs: Sequence[float],
               singles: Mapping[str, tuple[float, float]] | None = None,
               title: str = "Score against cost over α") -> go.Figure:
    """Score-vs-cost curve of the router as α goes 0→1, best single models as points.

    `singles` maps a model to its `(cost, score)`.
    """
    fig = go.Figure(go.Scatter(
        x=list(costs), y=list(scores), mode="lines+markers", name="router (α)",
        customdata=list(alphas),
        hovertemplate="α = %{customdata:.2f}<br>cost %{x:.4g}<br>score %{y:.3f}<extra></extra>",
        line={"color": color_of(0)},
    ))
    for i, (model, (c, s)) in enumerate((singles or {}).items()):
        fig.add_trace(go.Scatter(
            x=[c], y=[s], mode="markers", name=html.escape(model),  # named in the legend:
            marker={"size": 10, "symbol": "diamond", "color": color_of(i + 1)},
            hovertemplate=(f"{html.escape(model)}<br>cost %{{x:.4g}}<br>"
                           "score %{y:.3f}<extra></extra>"),
        ))
    layout = {**_LAYOUT, "margin": {"l": 60, "r": 10, "t": 40, "b": 50}}
    fig.update_layout(title=title, xaxis={"title": "mean cost per query"},  # labels would
                      yaxis={"title": "mean test score"}, height=460, **layout)  # overlap
    return fig


def calibration_accuracy(history: Mapping[str, Sequence[float]],
                         title: str = "Running accuracy") -> go.Figure:
    """Per-model running accuracy as questions are graded (`model -> [acc after 1, 2, ...]`)."""
    fig = go.Figure()
    for i, (model, accs) in enumerate(history.items()):
        fig.add_trace(go.Scatter(x=list(range(1, len(accs) + 1)), y=list(accs),
                                 mode="lines", name=html.escape(model),
                                 line={"color": color_of(i)}))
    fig.update_layout(title=title, xaxis={"title": "questions graded"},
                      yaxis={"title": "accuracy", "range": [0, 1]}, height=360, **_LAYOUT)
    return fig


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def range_lines(x: Sequence[float], series: Mapping[str, Mapping[str, Sequence[float]]],
                refs: Mapping[str, float] | None = None, title: str = "",
                xtitle: str = "", ytitle: str = "mean test score",
                log_x: bool = False) -> go.Figure:
    """Median lines with a shaded min–max band (repeated runs, e.g. seeds), one per series.

    `series` maps a name to {"median", "min", "max"} lists aligned with `x`; `refs` adds
    dashed horizontal reference lines (e.g. best single model, oracle) named in the legend.
    The x axis is ticked at the measured `x` only (a log axis would also tick 2, 3, … 9).
    """
    xs = [float(v) for v in x]
    fig = go.Figure()
    for i, (name, s) in enumerate(series.items()):
        lo, hi, med = (list(map(float, s[k])) for k in ("min", "max", "median"))
        if len(lo) != len(xs) or len(hi) != len(xs) or len(med) != len(xs):
            raise ValueError(f"series {name!r}: expected {len(xs)} values per statistic")
        fig.add_trace(go.Scatter(x=xs + xs[::-1], y=hi + lo[::-1], fill="toself", mode="lines",
                                 fillcolor=_rgba(color_of(i), 0.18), line={"width": 0},
                                 hoverinfo="skip", showlegend=False))
        fig.add_trace(go.Scatter(x=xs, y=med, mode="lines+markers", name=html.escape(name),
                                 line={"color": color_of(i)},
                                 hovertemplate=f"{html.escape(name)}<br>%{{x}}: "
                                               "%{y:.4f}<extra></extra>"))
    for j, (name, value) in enumerate((refs or {}).items()):
        fig.add_trace(go.Scatter(x=[min(xs), max(xs)], y=[float(value)] * 2, mode="lines",
                                 name=html.escape(name), hoverinfo="skip",
                                 line={"dash": "dash", "width": 1.5,
                                       "color": color_of(len(series) + j)}))
    layout = {**_LAYOUT, "margin": {"l": 60, "r": 10, "t": 50, "b": 50}}
    xaxis = {"title": xtitle, "type": "log" if log_x else "linear", "tickvals": xs}
    fig.update_layout(title=title, xaxis=xaxis, yaxis={"title": ytitle}, height=420, **layout)
    return fig


# -- the "How it works" tour -------------------------------------------------------------


def neighbours_map(coords: np.ndarray, hovers: Sequence[str], near: Sequence[int],
                   sims: Sequence[float], point: Sequence[float], label: str = "the query",
                   title: str | None = None) -> go.Figure:
    """The map in grey with a query's nearest neighbours `near` highlighted (hover: their
    cosine similarity `sims`) and the query itself as a star, drawn on top (all WebGL)."""
    coords = np.asarray(coords, dtype=float)
    near = [int(i) for i in near]
    fig = go.Figure(layout=go.Layout(
        title=title, height=460, xaxis={"visible": False}, yaxis={"visible": False},
        **_LAYOUT))
    fig.add_trace(go.Scattergl(x=coords[:, 0], y=coords[:, 1], mode="markers", name="queries",
                               marker={"size": 4, "color": "#c7c7c7"}, hoverinfo="skip"))
    fig.add_trace(go.Scattergl(
        x=coords[near, 0], y=coords[near, 1], mode="markers", name="nearest neighbours",
        customdata=[[hovers[i], float(s)] for i, s in zip(near, sims, strict=True)],
        hovertemplate="cosine %{customdata[1]:.3f}<br>%{customdata[0]}<extra></extra>",
        marker={"size": 10, "color": color_of(0), "line": {"width": 1, "color": "white"}}))
    fig.add_trace(go.Scattergl(
        x=[float(point[0])], y=[float(point[1])], mode="markers", name="the query",
        hovertemplate=f"{hover_text(label)}<extra></extra>",
        marker={"symbol": "star", "size": 20, "color": "black",
                "line": {"width": 2, "color": "white"}}))
    return fig


def kmeans_steps(coords: np.ndarray, frames: Sequence[np.ndarray], title: str | None = None
                 ) -> go.Figure:
    """An animation of K-means on the map: one frame per step of `frames` (each an (N,)
    array of cluster ids for the points `coords` (N, 2)), with a play button and a slider.
    Colours and symbols as in `cluster_map`; the title of each frame says how many queries
    changed cluster at that step."""
    coords = np.asarray(coords, dtype=float)

    def style(assign: np.ndarray) -> dict:
        return {"size": 5, "opacity": 0.8, "color": [color_of(int(c)) for c in assign],
                "symbol": [symbol_of(int(c)) for c in assign]}

    def caption(i: int) -> str:
        if i == 0:
            return "step 0: each query joins its nearest seed"
        changed = int((np.asarray(frames[i]) != np.asarray(frames[i - 1])).sum())
        return f"step {i}: centroids moved, {changed:,} queries changed cluster"

    base = go.Scattergl(x=coords[:, 0], y=coords[:, 1], mode="markers",
                        marker=style(frames[0]), hoverinfo="skip", showlegend=False)
    steps = [go.Frame(data=[{"type": "scattergl", "marker": style(f)}], name=str(i),
                      layout={"title": {"text": f"{title or ''} · {caption(i)}"}})
             for i, f in enumerate(frames)]
    play = {"label": "▶ play", "method": "animate",
            "args": [None, {"frame": {"duration": 900, "redraw": True}, "fromcurrent": True}]}
    # the slider starts right of the play button (they overlapped: issue 19, item 8)
    slider = {"active": 0, "currentvalue": {"prefix": "step "}, "pad": {"t": 20},
              "x": 0.14, "len": 0.86, "xanchor": "left",
              "steps": [{"label": str(i), "method": "animate",
                         "args": [[str(i)], {"mode": "immediate",
                                             "frame": {"duration": 0, "redraw": True}}]}
                        for i in range(len(frames))]}
    return go.Figure(data=[base], frames=steps, layout=go.Layout(
        title=f"{title or ''} · {caption(0)}", height=520, xaxis={"visible": False},
        yaxis={"visible": False}, sliders=[slider],
        updatemenus=[{"type": "buttons", "buttons": [play], "x": 0, "y": 0, "xanchor": "left",
                      "yanchor": "top", "pad": {"t": 45}}], **_LAYOUT))


def cluster_accuracy(models: Sequence[str], raw: Sequence[float], shrunk: Sequence[float],
                     counts: Sequence[int], title: str | None = None,
                     prior: Sequence[float] | None = None) -> go.Figure:
    """One cluster's per-model accuracy: the raw mean over its `counts` scored queries next
    to the effective routing score (`shrunk`: pulled toward the `prior`, drawn as a marker
    when given), best effective first; a model with no score in the cluster has no raw
    bar."""
    order = sorted(range(len(models)), key=lambda j: -float(np.nan_to_num(shrunk[j], nan=-1)))
    names = [html.escape(models[j]) for j in order]
    raw_v = [float(raw[j]) for j in order]
    eff_v = [float(shrunk[j]) for j in order]
    font = {"size": 14}
    fig = go.Figure()
    fig.add_trace(go.Bar(
        y=names, x=raw_v, orientation="h", name="raw accuracy", marker_color=color_of(0),
        text=[f"{v:.2f} of {int(counts[j])}" if np.isfinite(v) else "no score"
              for v, j in zip(raw_v, order, strict=True)], textposition="auto",
        textfont=font, hovertemplate="%{y}<br>raw %{x:.3f}<extra></extra>"))
    fig.add_trace(go.Bar(
        y=names, x=eff_v, orientation="h", name="effective (routing) score",
        marker_color=color_of(2), text=[f"{v:.2f}" for v in eff_v], textposition="auto",
        textfont=font, hovertemplate="%{y}<br>effective %{x:.3f}<extra></extra>"))
    if prior is not None:
        fig.add_trace(go.Scatter(
            y=names, x=[float(prior[j]) for j in order], mode="markers", name="prior",
            marker={"symbol": "diamond", "size": 13, "color": "black"},
            hovertemplate="%{y}<br>prior %{x:.3f}<extra></extra>"))
    fig.update_layout(title=title, barmode="group", xaxis={"range": [0, 1], "title": "accuracy"},
                      yaxis={"autorange": "reversed", "type": "category",
                             "tickfont": font}, legend={"font": font},
                      height=140 + 56 * len(models), **_LAYOUT)
    return fig


def majority_curve(p: float, ns: Sequence[int], probs: Sequence[float], chosen: int,
                   title: str = "Chance that the majority is right") -> go.Figure:
    """P(majority right) against the number of samples `ns` (values `probs`, e.g. from
    `tour.majority_probability`), one sample's accuracy `p` as a dashed line, the chosen N
    marked."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=list(ns), y=list(probs), mode="lines+markers",
                             name="majority of N samples", line={"color": color_of(0)},
                             hovertemplate="N = %{x}: %{y:.3f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=[min(ns), max(ns)], y=[p, p], mode="lines",
                             name=f"one sample (p = {p:.2f})", hoverinfo="skip",
                             line={"dash": "dash", "color": color_of(3)}))
    if chosen in ns:
        fig.add_trace(go.Scatter(x=[chosen], y=[probs[list(ns).index(chosen)]], mode="markers",
                                 name=f"N = {chosen}", marker={"size": 14, "color": "black"},
                                 hovertemplate="N = %{x}: %{y:.3f}<extra></extra>"))
    fig.update_layout(title=title, xaxis={"title": "samples N", "dtick": 2},
                      yaxis={"title": "probability", "range": [0, 1.02]}, height=380,
                      **_LAYOUT)
    return fig
