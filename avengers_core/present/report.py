"""A self-contained HTML report of a dataset's routing: interactive plotly figures that
open offline in any browser (plotly.js is embedded inline, nothing is fetched).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime, timezone

import plotly.graph_objects as go

STYLE = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
         "color:#222}h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em}"
         "p{line-height:1.45}.meta{color:#666}")


def html_report(title: str, sections: Sequence[tuple[str, str, go.Figure | None]],
                meta: str = "") -> str:
    """One HTML page: `title`, a `meta` line, then per section (heading, paragraph, figure).

    Text is escaped; each figure is an interactive plotly chart. plotly.js (about 4.6 MB)
    is written once, inline in the page (`plotly.offline.get_plotlyjs`), so the file needs
    no server and no network: it opens offline, e.g. as a class handout.
    """
    from plotly.offline import get_plotlyjs

    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<title>{html.escape(title)}</title><style>{STYLE}</style>"
             f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    if meta:
        parts.append(f"<p class='meta'>{html.escape(meta)}</p>")
    for i, (heading, text, fig) in enumerate(sections):
        parts.append(f"<h2>{html.escape(heading)}</h2><p>{html.escape(text)}</p>")
        if fig is not None:
            parts.append(fig.to_html(full_html=False, include_plotlyjs=False,
                                     div_id=f"figure-{i}", config={"responsive": True}))
    parts.append("</body></html>")
    return "\n".join(parts)


def stamp() -> str:
    """The time a report is written, UTC, to the minute."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


#: Display names of `evaluate.METHODS`, as the app and the report show them.
METHOD_LABELS = {"router": "router (default)", "paper": "router (paper-exact)",
                 "best_single": "best single model", "knn": "kNN (20)", "random": "random",
                 "oracle": "oracle"}


def evaluation_series(evaluation: dict) -> dict[str, float]:
    """label -> held-out mean score of each method in an `evaluate.evaluate` result."""
    from avengers_core.routing.evaluate import METHODS

    return {METHOD_LABELS[m]: evaluation[m] for m in METHODS if m in evaluation}


def k_sweep_series(rows: Sequence[dict], best_single: float) -> dict[str, list[float]]:
    """The K sweep's lines (`evaluate.sweep_k` rows) with the best single model for scale."""
    return {"router (default)": [row["router"] for row in rows],
            "router (paper-exact)": [row["paper"] for row in rows],
            "best single model": [best_single] * len(rows)}


def dataset_report(name: str, n_queries: int, map_figure: go.Figure, heatmap: go.Figure,
                   evaluation: dict, sweep_rows: Sequence[dict],
                   routing: tuple[str, go.Figure, go.Figure] | None = None) -> str:
    """The report of one dataset: its cluster map, the K × M heatmap, the held-out
    evaluation against the baselines and the K sweep (`evaluate.sweep_k` rows), as
    `html_report` writes it. `routing`: (the sentence naming the prior in use, the map
    coloured by each cluster's best model, the heatmap of the effective scores), both from
    the router's own `cluster_scores` (issue 19), shown after the raw heatmap."""
    from avengers_core.present import plots

    k_fig = plots.k_sweep([row["k"] for row in sweep_rows],
                          k_sweep_series(sweep_rows, evaluation["best_single"]))
    extra = []
    if routing is not None:
        sentence, best_map, effective = routing
        extra = [("Where the router sends each cluster",
                  sentence + " Each query is coloured by the best model of its cluster: the "
                  "argmax of the effective scores at the cluster's centre.", best_map),
                 ("What the router uses", "The effective score of each model in each "
                  "cluster: the raw mean above, shrunk toward the prior.", effective)]
    return html_report(f"Avengers Lab report: {name}", [
        ("The map", f"{n_queries:,} queries embedded and projected to 2-D, coloured by their "
                    "K-means cluster. Hover a point to read its query and scores.", map_figure),
        ("Who is good where", "Each model's mean score in each cluster (rows) — the capability "
                              "profile the router reads. Hover a cell for its query count.",
         heatmap),
        *extra,
        ("Held-out evaluation", f"Trained on {evaluation['n_train']:,} queries, scored on the "
                                f"other {evaluation['n_test']:,}. Best single model: "
                                f"{evaluation['best_single_model']}; the oracle picks the best "
                                "model per query (an upper bound).",
         plots.evaluation_bars(evaluation_series(evaluation))),
        ("Number of clusters K", "Held-out score of the router for each K (one K-means per K).",
         k_fig),
    ], meta=f"Written {stamp()} by Avengers Lab (the Avengers recipe, Zhang et al., 2025, "
            "arXiv 2505.19797).")
