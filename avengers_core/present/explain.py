"""Figures of a routing explanation (`routing.explain.Explanation`): how the prior and the
clusters' evidence add up to the fused score, and each cluster's effective scores.

They draw the explanation's numbers as they are; nothing here recomputes routing.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from avengers_core.present.plots import _LAYOUT, color_of, profile_heatmap

PART_NAMES = {"prior": "from the prior", "clusters": "from the clusters' own answers",
              "accuracy": "accuracy term (α)", "cost": "cost term (1 − α)"}


def fused_parts(explanation: Any, top: int = 5,
                title: str = "How the fused score adds up") -> go.Figure:
    """Stacked horizontal bars, one per model (the `top` best, best first), of the parts of
    its fused score (`Explanation.parts`: the prior's share Σ p (1 − w) prior and the
    clusters' share Σ p w raw with w = n / (n + τ); or, where α < 1, the accuracy and cost
    terms); the chosen models are marked ★. With rank fusion (no parts) plain bars of the
    fused value."""
    e = explanation
    models = list(e.fused)[:top]
    labels = [("★ " if m in e.models else "") + html.escape(m) for m in models]
    fig = go.Figure()
    if e.parts:
        for i, (part, values) in enumerate(e.parts.items()):
            v = [float(values[m]) for m in models]
            fig.add_trace(go.Bar(
                y=labels, x=v, orientation="h", name=PART_NAMES.get(part, part),
                marker_color=color_of(i), text=[f"{x:.2f}" for x in v],
                textposition="inside", insidetextanchor="middle",
                hovertemplate="%{y}<br>" + PART_NAMES.get(part, part)
                              + " %{x:.3f}<extra></extra>"))
    else:
        v = [float(e.fused[m]) for m in models]
        fig.add_trace(go.Bar(y=labels, x=v, orientation="h", name="fused rank score",
                             marker_color=color_of(0), text=[f"{x:.2f}" for x in v],
                             textposition="auto",
                             hovertemplate="%{y}<br>fused %{x:.3f}<extra></extra>"))
    totals = [float(e.fused[m]) for m in models]
    fig.add_trace(go.Scatter(y=labels, x=totals, mode="markers+text", name="fused score",
                             marker={"symbol": "line-ns-open", "size": 18, "color": "black"},
                             text=[f"  {t:.2f}" for t in totals], textposition="middle right",
                             hovertemplate="%{y}<br>fused %{x:.3f}<extra></extra>"))
    fig.update_layout(title=title, barmode="stack",
                      yaxis={"autorange": "reversed", "type": "category"},
                      xaxis={"range": [0, max(totals + [0]) * 1.2 or 1]},
                      legend={"orientation": "h", "y": -0.15, "yanchor": "top"},
                      height=170 + 34 * len(models), **_LAYOUT)
    return fig


def effective_heatmap(router: Any, names: Sequence[str], order: Sequence[int] | None = None
                      ) -> go.Figure:
    """The K × M heatmap of the effective scores the router uses at each cluster's centre
    (`AvengersRouter.cluster_scores`), models in the order of their global mean."""
    prof = router.profile
    cols = [int(j) for j in np.argsort(-prof.global_mean, kind="stable")]
    eff = router.cluster_scores()[:, cols]
    count = prof.count[:, cols]
    rows = list(range(len(eff))) if order is None else list(order)
    fig = profile_heatmap(eff, np.ones_like(count), [router.models[j] for j in cols], names,
                          rows, title=f"Effective routing score per cluster "
                                      f"(K = {router.config.k}) and model")
    fig.update_traces(z=eff[rows], customdata=count[rows], colorbar={"title": "effective"},
                      hovertemplate="%{y}<br>%{x}<br>effective %{z:.2f} (raw accuracy over "
                                    "%{customdata} queries)<extra></extra>")
    return fig
