"""How it works: the Avengers recipe step by step on the current dataset, for a class."""

import numpy as np
import pandas as pd
import streamlit as st

from app_state import compute, engines, fmt, session
from avengers_core.backends import BackendUnavailable
from avengers_core.errors import InputError
from avengers_core.pipeline import plan_vote, start_vote
from avengers_core.present import maps, plots
from avengers_core.present.tour import majority_probability, moved, no_votes_line, sample_rows
from avengers_core.vote.events import SampleFinished, Settled
from avengers_core.vote.stopping import expected_draws

STEPS = ["1 Embedding", "2 Clustering", "3 Scoring", "4 Voting", "5 Your turn"]

st.title("How it works")
st.caption("The Avengers recipe (Zhang et al., 2025) on the data at hand: embed, cluster, "
           "score, vote. One step at a time; each has one sentence and one figure.")
ds = session.require_dataset()
t = ds.table
step = st.radio("Step", STEPS, horizontal=True, key="tour_step")
x = compute.embeddings(ds)
coords, method, _ = compute.map_coords(ds)

if step == STEPS[0]:
    st.subheader("1 · Embedding: a query becomes a vector")
    i = st.number_input("Query number", 0, len(t) - 1, 0, help="Any row of the table.")
    st.text(t.queries[i][:300])
    near, sims = maps.nearest(x[i], x, 9)
    keep = near != i
    near, sims = near[keep][:8], sims[keep][:8]
    st.markdown(f"An embedder ({fmt.md_escape(session.get('embedder'))}) turns each query "
                "into a unit vector, so that queries about the same thing point the same way: "
                "their **cosine similarity** is close to 1.")
    st.plotly_chart(plots.neighbours_map(coords, compute.hovers(ds), near, sims, coords[i],
                                         t.queries[i],
                                         title=f"The query (★) and its 8 nearest neighbours "
                                               f"on the {method} map"), key="tour_embed")
    st.dataframe(pd.DataFrame({"cosine": np.round(sims, 3),
                               "query": [t.queries[j][:160] for j in near]}),
                 hide_index=True)

elif step == STEPS[1]:
    st.subheader("2 · Clustering: K-means groups similar queries")
    ks = [k for k in (4, 16, 64) if k <= len(t)] or [1]
    k = st.radio("K", ks, horizontal=True, key="tour_k")
    rows, frames = compute.kmeans_frames(ds, k)
    st.markdown(f"K-means puts K = {k} centroids among the vectors, assigns each query to its "
                "nearest centroid, moves each centroid to the mean of its queries, and "
                "repeats until little changes: press **▶ play** to watch the first steps.")
    st.plotly_chart(plots.kmeans_steps(coords[rows], frames, title=f"K = {k}"),
                    key=f"tour_kmeans_{k}")
    changes = ", ".join(f"{n:,}" for n in moved(frames))
    st.caption(f"{len(rows):,} of {len(t):,} queries shown; queries changing cluster at each "
               f"step: {changes}. The router's own fit runs K-means to convergence.")

elif step == STEPS[2]:
    st.subheader("3 · Scoring: each model's accuracy in each cluster")
    r = compute.router(ds)
    names = compute.labels(ds, r)
    prof = r.profile
    sizes = np.bincount(r.labels, minlength=r.config.k)
    order = [int(c) for c in np.argsort(sizes, kind="stable")]  # smallest first: the noisy
    c = st.selectbox("Cluster", order, index=len(order) // 2,
                     format_func=lambda c: f"{plots.cluster_title(c, names[c])} — "
                                           f"{sizes[c]} queries")
    n = int(sizes[c])
    tau, kind = r.config.shrinkage, r.config.prior
    centre = r.centroids[c:c + 1]
    prior_c = r.prior(centre)[0]  # the prior the router uses at this cluster's centre
    if kind == "task":
        mix = ", ".join(f"{fmt.md_escape(t)} {p:.0%}" for t, p in r.task_mixture(centre))
        what = (f"the **task prior**: each model's accuracy on the task mixture predicted "
                f"for the cluster's centre ({mix}), Σ P(task | query) · accuracy on the task")
    else:
        what = "the **global prior**: each model's accuracy over all queries"
    st.markdown(
        f"Within each cluster, a model's raw score is the share of its queries it got right; "
        f"on {n} queries one answer moves it by {1 / max(n, 1):.0%}, so small clusters are "
        f"noisy. The router pulls each score toward a prior with the weight of τ = {tau:g} "
        f"queries: **effective = (right + τ · prior) / (answered + τ)**. The prior in use is "
        f"{what}.")
    st.plotly_chart(plots.cluster_accuracy(r.models, prof.mean[c], r.cluster_scores()[c],
                                           prof.count[c], prior=prior_c,
                                           title=f"{plots.cluster_title(c, names[c])}: raw "
                                                 "against effective"), key="tour_scores")

elif step == STEPS[3]:
    st.subheader("4 · Voting: sample several times, keep the majority")
    c1, c2 = st.columns(2)
    p = c1.slider("p: one sample's chance to be right", 0.05, 0.95, 0.6, step=0.05)
    n = c2.slider("N: samples", 1, 41, 9, step=2)
    ns = list(range(1, max(21, n) + 1))
    probs = [majority_probability(p, m) for m in ns]
    st.markdown(f"If each sample is right with chance p = {p:.2f} and independent, the chance "
                f"that most of N = {n} are right is **{majority_probability(p, n):.1%}**: "
                "above one half it grows with N, below one half it shrinks (a binomial tail; "
                "with many different wrong answers a plurality needs even fewer right ones).")
    st.plotly_chart(plots.majority_curve(p, ns, probs, n), key="tour_majority")
    decided, confident = expected_draws(p, n, "decided"), expected_draws(p, n, "confident")
    st.markdown(f"A vote need not draw all {n}: drawn one at a time, it is **settled** as "
                "soon as the leader is further ahead than the samples still to come, so "
                "the rest cannot change the winner (`decided`, the default). With p = "
                f"{p:.2f} that takes **{decided:.1f}** samples of {n} on average, for the "
                "same answer. Stopping once the leader is the majority with 95 % "
                f"probability (`confident`) takes {confident:.1f}, and may rarely differ. "
                "(Wrong answers counted as all different; agreeing wrong answers stop "
                "sooner.)")
    try:
        eng, local = engines.session_engines()  # the engine chosen on Vote or Calibrate
    except (BackendUnavailable, InputError):
        local = []
    if not local:
        st.caption("Connect an engine (Ollama, or another one chosen on **Vote**) to run a "
                   "live vote here.")
    else:
        query = st.session_state.get("route_query") or t.queries[0]
        res = compute.router(ds).route_vector(compute.query_vector(query))
        plan = plan_vote(query, res, local)
        if not plan.models:  # none of the routed models is served: the first served one
            plan = plan_vote(query, None, local[:1], kind=plan.kind)
        chosen = plan.models
        st.markdown(f"Live: **{fmt.md_escape(chosen[0])}** answers this query {n} times:")
        st.text(query[:300])
        if st.button("Run a live vote", type="primary"):
            bar = st.progress(0.0, text="Sampling…")
            finished = []

            def show(ev) -> None:
                if isinstance(ev, SampleFinished):
                    finished.append(ev)
                    bar.progress(len(finished) / n, text=f"{len(finished)} of {n} samples")
                elif isinstance(ev, Settled):
                    bar.progress(1.0, text=f"settled after {ev.drawn} of {ev.asked}")

            # the Vote page's machinery; leaving the block (also when a click interrupts
            # the script) cancels the requests still in flight
            with start_vote(eng, plan, query, samples=n, temperature=0.7) as run:
                st.session_state["tour_vote"] = run.run(show)
            bar.empty()
        result = st.session_state.get("tour_vote")
        if result is not None:
            tally = result.tally
            if tally.votes:
                st.plotly_chart(plots.vote_tally(tally.votes, tally.winner), key="tour_tally")
                settled = (f"settled after {result.drawn} of {result.asked} ({result.stopped}); "
                           if result.stopped in ("decided", "confident") else "")
                st.caption(f"{settled}{tally.counted} answers counted, {tally.failed} failed; "
                           f"the winner has {tally.confidence:.0%} of the votes.")
            else:  # never a dead button: say why, and show what the samples said
                st.warning(fmt.md_escape(no_votes_line(result)))
            st.dataframe(pd.DataFrame(sample_rows(result)), hide_index=True,
                         key="tour_samples")

else:
    st.subheader("5 · Your turn: route a query")
    st.session_state.setdefault("tour_text", "What is the capital of Australia?")
    st.text_area("Your query", key="tour_text", height=90)
    r = compute.router(ds)
    names = compute.labels(ds, r)
    if st.button("Route it", type="primary"):
        st.session_state["tour_routed"] = st.session_state["tour_text"]
    routed = st.session_state.get("tour_routed")
    if routed:
        try:
            res = r.route_vector(compute.query_vector(routed), names)
        except InputError as e:
            st.error(fmt.md_escape(str(e)))
            st.stop()
        st.markdown("The query is embedded, compared with the K centroids, and sent to the "
                    "model that scores best in its nearest clusters:")
        st.success(fmt.route_reason(res, names))
        st.plotly_chart(plots.route_probabilities(res.clusters, names), key="tour_route")
