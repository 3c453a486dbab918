"""Leaderboard: clusters × models heatmap, one cluster's ranking and queries, model selection."""

import numpy as np
import pandas as pd
import streamlit as st

from app_state import compute, fmt, session
from avengers_core.present import explain, plots
from avengers_core.routing.explain import describe_prior
from avengers_core.routing.score import select_models

st.title("Leaderboard")
ds = session.require_dataset()
r = compute.router(ds)
names = compute.labels(ds, r)
prof = r.profile
sizes = np.bincount(r.labels, minlength=r.config.k)

order_by = st.radio("Order clusters by", ["cluster size", "best model"], horizontal=True)
order = r.cluster_order("size" if order_by == "cluster size" else "best model")
st.plotly_chart(compute.heatmap(r, names, order), key="heatmap")
st.caption("Blank cells: the model has no score in that cluster. Hover shows how many queries "
           "each mean stands on; small clusters are noisy. "
           + fmt.md_escape(describe_prior(r.config.prior, r.config.shrinkage))
           + " The order by best model and the routing scores below use these effective "
             "scores, taken at each cluster's centre.")
if st.toggle("Show the effective routing scores instead of the raw means", key="lb_effective"):
    st.plotly_chart(explain.effective_heatmap(r, names, order), key="heatmap_effective")

st.subheader("One cluster")
# The chosen cluster is kept per fit: a new order makes a new selectbox (issue 14, item 3).
chosen = f"leaderboard_cluster@{ds.key}@{r.config.k}@{r.config.seed}"
c = st.selectbox("Cluster", order, index=order.index(st.session_state.get(chosen, order[0])),
                 format_func=lambda k: f"{plots.cluster_title(k, names[k])} — {sizes[k]} queries")
st.session_state[chosen] = c
eff = r.cluster_scores()  # what the router uses at the cluster's centre
prior_c = r.prior(r.centroids[c:c + 1])[0]
ranked = [int(j) for j in np.argsort(-np.nan_to_num(eff[c], nan=-1.0), kind="stable")]
st.dataframe(pd.DataFrame({
    "rank": range(1, len(ranked) + 1),
    "model": [r.models[j] for j in ranked],
    "accuracy here": [prof.mean[c, j] for j in ranked],
    "queries scored": [int(prof.count[c, j]) for j in ranked],
    "prior": [float(prior_c[j]) for j in ranked],
    "routing score": [float(np.nan_to_num(eff[c, j])) for j in ranked],
    "global accuracy": [float(prof.global_mean[j]) for j in ranked],
}), hide_index=True, column_config={
    "accuracy here": st.column_config.ProgressColumn(format="%.2f", min_value=0, max_value=1),
    "prior": st.column_config.NumberColumn(
        format="%.2f", help=f"the {r.config.prior} prior at the cluster's centre"),
    "routing score": st.column_config.NumberColumn(
        format="%.2f", help="the effective score the router uses here: (answered · accuracy "
                            "+ τ · prior) / (answered + τ), cost-aware where α < 1"),
})
tasks = r.cluster_tasks[c]
if tasks:
    st.caption("Tasks here: " + fmt.md_escape(", ".join(f"{k} ({v})"
                                                         for k, v in tasks.items())))
rows = [int(i) for i in np.flatnonzero(r.labels == c)]
st.dataframe(fmt.missing_as_dash(compute.query_rows(ds, r, rows), r.models),
             hide_index=True, height=260)

st.subheader("Model selection")
n = session.int_slider("How many models", 1, len(r.models), value=3)
st.write("The paper's recipe picks, by how often a model ranks first, then second, …: "
         + ", ".join(f"**{fmt.md_escape(m)}**" for m in select_models(prof, n)))
if st.toggle("Show the held-out curve of routed score against the number of models",
             value=True):
    rows_n = compute.sweep(ds, "models")
    st.plotly_chart(plots.models_curve([row["n"] for row in rows_n],
                                       {"router": [row["router"] for row in rows_n]}),
                    key="models_curve")
