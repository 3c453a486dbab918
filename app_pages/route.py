"""Route: type a query; see its nearest clusters, the chosen model(s) and why."""

import numpy as np
import pandas as pd
import streamlit as st

from app_state import compute, fmt, session
from app_state import explain as state
from avengers_core.errors import InputError
from avengers_core.present import explain, maps, plots
from avengers_core.routing.explain import describe_prior

EXAMPLE = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many "
           "clips in May. How many clips did Natalia sell altogether in April and May?")

st.title("Route")
ds = session.require_dataset()
t = ds.table

with st.expander("Routing settings", expanded=False):
    c1, c2, c3, c4 = st.columns(4)
    k = session.k_of(ds)
    session.int_slider("top-k clusters fused", 1, min(10, k), "top_k", where=c1,
                         help="1 = the paper's text (nearest cluster only); its code fuses 3.")
    c2.slider("β (softmax sharpness)", 0.0, 20.0, step=0.5, **session.bind("beta"))
    session.int_slider("top-n models chosen", 1, len(t.models), "top_n", where=c3)
    c4.slider("α (1 = score only, 0 = cost only)", 0.0, 1.0, step=0.05,
              disabled=t.costs is None, help="Avengers-Pro's performance-cost trade-off.",
              **session.bind("alpha"))

# A keyed box: it keeps what the user typed (an unkeyed one took the last routed query as
# its value, so each Route press made a new widget showing the old query: issue 14, item 1).
st.session_state.setdefault("route_text", st.session_state.get("route_query", EXAMPLE))
st.text_area("Query", key="route_text", height=100)
if st.button("Route", type="primary"):
    st.session_state["route_query"] = st.session_state["route_text"]
query = st.session_state.get("route_query", EXAMPLE)

r = compute.router(ds)
names = compute.labels(ds, r)
try:
    vec = compute.query_vector(query)
    res = r.route_vector(vec, names)  # its explanation: the numbers the router used
except InputError as e:
    st.error(fmt.md_escape(str(e)))
    st.stop()

st.success(fmt.route_reason(res, names))
if session.few_per_cluster(ds, r.config.k):
    st.info(f"K = {r.config.k} leaves about {len(t) / r.config.k:.1f} queries per cluster: "
            "the per-cluster scores are noisy. Try a lower K on the **Clusters** page.")
st.caption("Query:")
st.text(query[:300])

expl = res.explanation
left, right = st.columns(2)
left.plotly_chart(plots.route_probabilities(res.clusters, names), key="route_p")
right.plotly_chart(explain.fused_parts(expl), key="route_scores")
st.caption(fmt.md_escape(describe_prior(expl.prior.kind, expl.prior.tau)))
st.dataframe(state.explanation_table(expl), hide_index=True, key="route_clusters",
             column_config=state.EXPLANATION_COLUMNS)

st.subheader("Most similar known queries")
x = compute.embeddings(ds)
near, sims = maps.nearest(vec, x, 8)
df = compute.query_rows(ds, r, [int(i) for i in near])
df.insert(0, "similarity", np.round(sims, 3))
similar = fmt.missing_as_dash(pd.DataFrame(df), t.models).format("{:.3f}", subset=["similarity"])
st.dataframe(similar, hide_index=True, height=260)

st.subheader("On the map")
coords, method, _ = compute.map_coords(ds)
base = compute.cluster_figure(ds, r, names, coords, method, "cluster")
st.plotly_chart(plots.mark_query(base, maps.place(vec, x, coords), query), key="route_map")
st.caption(f"The star is placed among its nearest known queries on the {method} map.")
