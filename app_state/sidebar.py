"""The sidebar: current dataset, embedder, K, profile and downloads, embedding progress."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from app_state import compute
from app_state.fmt import md_escape, plural, slug
from app_state.session import Dataset, current_dataset, get, k_of
from avengers_core import jsonsafe
from avengers_core.routing.effective_k import asked_k, effective_k_note


def sidebar(sb: Any, compute_now: bool = True) -> None:
    """Current dataset, embedder, K and profile, with downloads (into `sb`, the sidebar).

    Drawn before the page (`compute_now=False`: it shows only what is already computed, so
    it is there and right even when the page stops early or runs long) and again after it,
    with what the page computed. Both drawings have the same elements whenever the page
    computed nothing new, so a run never shows a stale copy of the last one (issue 14, 4).
    """
    ds = current_dataset()
    tag = "after" if compute_now else "before"  # two drawings of one run need distinct keys
    if ds is None:
        sb.caption("No dataset loaded.")
        return
    t = ds.table
    sb.markdown(f"**Dataset** {md_escape(ds.name)}  \n{plural(len(t), 'query')} · "
                f"{plural(len(t.models), 'model')}")
    sb.markdown(f"**Embedder** {md_escape(get('embedder'))}  \n"
                f"**K** {k_of(ds)} · seed {get('seed')}")
    r = compute.fitted_router(ds, compute_now)
    if r is not None:
        sb.markdown(f"**Profile** K = {r.config.k}, shrinkage τ = {r.config.shrinkage:g}")
        note = effective_k_note(asked_k(r), r.config.k)
        if note:  # issue 22: near-duplicate queries leave fewer clusters than asked
            sb.caption(note[0].upper() + note[1:] + ".")
        sb.download_button("Profile (zip)", lambda: compute.profile_zip(r, compute.labels(ds, r)),
                           "avengers-profile.zip", "application/zip", on_click="ignore",
                           width="stretch", key=f"dl-profile-{tag}")
    else:
        sb.caption("Profile: not fitted yet (open Clusters or Leaderboard).")
    sb.download_button("Routing table (CSV)", t.to_csv, f"{slug(Path(ds.name).stem)}-table.csv",
                       "text/csv", on_click="ignore", width="stretch", key=f"dl-table-{tag}")
    key, result = st.session_state.get("last_evaluation", (None, None))
    if result is not None and key == compute.eval_key(ds):
        sb.download_button("Evaluation (JSON)", jsonsafe.dumps(result, indent=1, default=str),
                           "evaluation.json", "application/json", on_click="ignore",
                           width="stretch", key=f"dl-eval-{tag}")


def embedding_status(where: Any, ds: Dataset | None) -> None:
    """While `ds` is embedded in the background, its progress and time left (into `where`,
    in the sidebar), refreshed every 2 s while the page is idle; a full rerun when the
    vectors are ready."""
    if ds is None or compute.embedding_progress(ds) is None:
        return

    @st.fragment(run_every=2)
    def live() -> None:
        state = compute.embedding_progress(ds)
        if state is None:
            st.rerun()  # ready: the sidebar and the page now have the vectors
        frac, line = state
        st.progress(frac, text=f"Embedding the queries: {line}")

    with where:
        live()
