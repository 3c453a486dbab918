"""Evaluate: held-out comparison with baselines, per task, the K sweep and score vs cost."""

import pandas as pd
import streamlit as st

from app_state import compute, fmt, session
from avengers_core.present import plots, report
from avengers_core.routing.evaluate import METHODS

LABELS = report.METHOD_LABELS

st.title("Evaluate")
ds = session.require_dataset()
t = ds.table
st.caption(f"Train on 70 % of {len(t)} queries (split inside each task), score the picks on "
           f"the other 30 %. K = {session.k_of(ds)}, seed {session.get('seed')}.")

res = compute.evaluation(ds)
st.plotly_chart(plots.evaluation_bars(report.evaluation_series(res)), key="eval_bars")
st.caption(
    f"{res['n_train']} train / {res['n_test']} test queries. Best single model (chosen on "
    f"train): {fmt.md_escape(res['best_single_model'])}. Shrinkage τ = "
    f"{res['shrinkage']:g}, chosen by cross-validation on the training part only (the "
    "sidebar's profile is fitted on the whole table, so its τ may differ). The oracle picks "
    "the best model per query: an upper bound."
)

if res.get("per_task"):
    st.subheader("Per task")
    per = pd.DataFrame(res["per_task"]).T
    per = per[["n"] + [m for m in METHODS if m in per.columns]].rename(columns=LABELS)
    formats = {c: st.column_config.NumberColumn(format="%.3f") for c in per.columns if c != "n"}
    st.dataframe(per, column_config={"n": st.column_config.NumberColumn(format="%d"), **formats},
                 height=min(600, 40 + 36 * len(per)))

st.subheader("Number of clusters K")
ks = [k for k in (4, 8, 16, 32, 64, 128) if k <= max(4, res["n_train"] // 4)]
ran = f"k_sweep_run@{ds.key}"  # per dataset: an upload never starts it (issue 14, item 7)
if st.session_state.get(ran) or st.button(f"Run the K sweep ({ks})"):
    st.session_state[ran] = True
    rows = compute.sweep(ds, "k", ks=ks)
    st.plotly_chart(plots.k_sweep([row["k"] for row in rows],
                                  report.k_sweep_series(rows, res["best_single"])),
                    key="k_sweep")
    st.download_button(
        "Download the report (HTML)", compute.report_html(ds, res, rows),
        f"{fmt.slug(ds.name)}-report.html", "text/html", on_click="ignore", type="primary",
        help="The map, the heatmap, this evaluation and the K sweep as interactive charts in "
             "one file: it opens offline in any browser (plotly.js is inside, about 5 MB).")
else:
    st.caption("One K-means per K (the paper-exact router reuses it): under a minute on a "
               "small machine. Then the whole dataset can be downloaded as an HTML report.")

if t.costs is not None:
    st.subheader("Score against cost (Avengers-Pro)")
    curve = compute.sweep(ds, "alpha")
    pts = curve["curve"]
    singles = {m["model"]: (m["cost"], m["score"]) for m in curve["models"]}
    st.plotly_chart(plots.cost_curve([p["alpha"] for p in pts], [p["score"] for p in pts],
                                     [p["cost"] for p in pts], singles), key="cost_curve")
    st.caption("α = 1 routes on score only; lower α trades score for cheaper models. "
               "Diamonds: each model used alone.")
