"""The routing explanation (`avengers_core.routing.explain.Explanation`) as the pages show
it: a table of the fused clusters for the chosen model. Rendering only: every number is
the explanation's own."""

from __future__ import annotations

from typing import Any

import streamlit as st

from avengers_core.present.plots import cluster_title

EXPLANATION_COLUMNS = {
    "p": st.column_config.NumberColumn(format="%.2f", help="the cluster's fusion weight"),
    "raw": st.column_config.NumberColumn(format="%.2f", help="the chosen model's accuracy on "
                                         "the cluster's training queries"),
    "prior": st.column_config.NumberColumn(format="%.2f", help="the chosen model's prior "
                                           "score for this query"),
    "effective": st.column_config.NumberColumn(format="%.2f", help="the score the router "
                                               "fused: (answered·raw + τ·prior) / "
                                               "(answered + τ), cost-aware where α < 1"),
}


def explanation_table(expl: Any) -> Any:
    """One row per fused cluster (nearest first): its title, weight p, size, best model by
    its effective scores, and for the chosen model the raw accuracy, the count behind it,
    the prior and the effective score the router used (a pandas DataFrame)."""
    import pandas as pd

    top = expl.models[0]
    return pd.DataFrame([{
        "cluster": cluster_title(c.id, c.label), "p": c.p, "queries": c.n,
        "best model here": c.best_model, "model": top, "raw": c.raw.get(top),
        "answered": c.count.get(top, 0), "prior": expl.prior.scores.get(top),
        "effective": c.scores.get(top),
    } for c in expl.clusters])
