"""Clusters: the 2-D map of all queries, K, cluster labels, and box/lasso selection."""

import pandas as pd
import streamlit as st

from app_state import compute, fmt, session
from avengers_core.present import plots
from avengers_core.routing.explain import describe_prior

st.title("Clusters")
ds = session.require_dataset()
t = ds.table

left, mid, right = st.columns([2, 2, 3])
with left:
    session.int_slider("K (clusters)", 1, min(256, len(t)), "k", help="The one knob to "
                         "understand: queries are grouped into K clusters and each model is "
                         "scored per cluster.")
color_by = {"cluster": "cluster", "task": "task", "best model": "best model of its cluster"}
with mid:
    options = [c for c in color_by if c != "task" or t.tasks is not None]
    if session.get("map_color") not in options:  # e.g. a new table without tasks
        st.session_state["map_color"] = "cluster"
    st.radio("Colour by", options, horizontal=True, **session.bind("map_color"))

r = compute.router(ds)
names = compute.labels(ds, r)
coords, method, status = compute.map_coords(ds)
with right:
    if method == "UMAP":
        st.caption("Map: UMAP of the query embeddings (cached on disk).")
    elif status.get("state") == "running":
        st.caption(f"Map: PCA preview. UMAP runs in the background "
                   f"({fmt.md_escape(status.get('message'))}); "
                   "the map switches when it is ready.")

        @st.fragment(run_every=5)
        def _wait_for_umap() -> None:
            if compute.map_coords(ds)[1] == "UMAP":
                st.rerun()

        _wait_for_umap()
    else:
        st.caption(f"Map: PCA preview (UMAP {status.get('state')}: "
                   f"{fmt.md_escape(status.get('message'))}).")

fig = compute.cluster_figure(ds, r, names, coords, method, session.get("map_color"))
event = st.plotly_chart(fig, key="cluster_map", on_select="rerun",
                        selection_mode=("box", "lasso"))
st.caption("Drag a box or lasso over the map to list those queries below.")

rows = plots.selected_rows(fig, event.selection.points) if event else []
if rows:
    st.subheader(f"{len(rows)} selected queries")
    st.dataframe(fmt.missing_as_dash(compute.query_rows(ds, r, rows), r.models),
                 hide_index=True, height=320)

st.subheader("Clusters")
st.dataframe(pd.DataFrame(compute.cluster_summary(ds, r, names)), hide_index=True, height=360)
st.caption("A cluster's best model (also the map's colours) is the argmax of the effective "
           "scores the router uses for a query at the cluster's centre: "
           + fmt.md_escape(describe_prior(r.config.prior, r.config.shrinkage)))
