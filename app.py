"""Avengers Lab in the browser: `streamlit run app.py` (pages live in pages/)."""

import streamlit as st

import app_state

st.set_page_config(page_title="Avengers Lab", page_icon=":material/hub:", layout="wide")

PAGES = [
    st.Page("pages/data.py", title="Data", icon=":material/table:", default=True),
    st.Page("pages/clusters.py", title="Clusters", icon=":material/scatter_plot:"),
    st.Page("pages/leaderboard.py", title="Leaderboard", icon=":material/leaderboard:"),
    st.Page("pages/route.py", title="Route", icon=":material/alt_route:"),
    st.Page("pages/vote.py", title="Vote", icon=":material/how_to_vote:"),
    st.Page("pages/evaluate.py", title="Evaluate", icon=":material/query_stats:"),
    st.Page("pages/calibrate.py", title="Calibrate", icon=":material/tune:"),
]

page = st.navigation(PAGES)
side = st.sidebar.container()
try:
    page.run()
finally:  # after the page, so the sidebar shows what it just computed
    app_state.sidebar(side)
