"""Avengers Lab in the browser: `streamlit run app.py`.

The pages live in `app_pages/`, not `pages/`: Streamlit treats a `pages/` folder as a
legacy multipage app until `st.navigation` has run once in the process, so a bookmarked
page URL opened right after a server start would skip this file (no sidebar, no layout).
"""

import streamlit as st

from app_state import compute, session, sidebar
from avengers_core.redact import install_log_scrubbing

install_log_scrubbing()  # no key or URL password in the app's log lines (issue 20)

st.set_page_config(page_title="Avengers Lab", page_icon=":material/hub:", layout="wide")

PAGES = [
    st.Page("app_pages/data.py", title="Data", icon=":material/table:", default=True),
    st.Page("app_pages/clusters.py", title="Clusters", icon=":material/scatter_plot:"),
    st.Page("app_pages/leaderboard.py", title="Leaderboard", icon=":material/leaderboard:"),
    st.Page("app_pages/route.py", title="Route", icon=":material/alt_route:"),
    st.Page("app_pages/vote.py", title="Vote", icon=":material/how_to_vote:"),
    st.Page("app_pages/evaluate.py", title="Evaluate", icon=":material/query_stats:"),
    st.Page("app_pages/calibrate.py", title="Calibrate", icon=":material/tune:"),
    st.Page("app_pages/tour.py", title="How it works", icon=":material/school:"),
]

page = st.navigation(PAGES)
side = st.sidebar.empty()
progress = st.sidebar.container()
dataset = session.current_dataset()
if dataset is not None:  # embed while the user looks around (Data, Vote, Calibrate need none)
    compute.start_embeddings(dataset)
sidebar.sidebar(side.container(), compute_now=False)  # first: a page may st.stop() early
sidebar.embedding_status(progress, dataset)
page.run()
sidebar.sidebar(side.container())  # again, with what the page just computed
opened = session.current_dataset()  # the page may have opened another table (an upload)
if opened is not None:
    compute.start_embeddings(opened)
    if dataset is None or opened.key != dataset.key:
        sidebar.embedding_status(progress, opened)
    compute.preload_embedder(opened)  # after the page, not competing with it: MiniLM for Route
