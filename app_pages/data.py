"""Data: choose the demo table or upload one; summary, model means, task × model table."""

import streamlit as st

from app_state import compute, fmt, session
from avengers_core.data.readers import SUFFIXES
from avengers_core.device import CHOICES, choose_device
from avengers_core.errors import InputError
from avengers_core.present import plots

st.title("Data")
st.caption("A routing table: queries, each scored in [0, 1] for some models (1 = correct).")

with st.expander("Upload a routing table", expanded=not session.demo_available()):
    st.markdown(
        "JSONL (`{\"query\": ..., \"scores\": {model: score}, \"task\": ...}` per line), "
        "or CSV / Parquet with a `query` column, optional `task` and `id`, one numeric "
        "column per model and optional `cost:<model>` columns. A missing score means "
        "*not evaluated*, never a failure."
    )
    up = st.file_uploader("Table file", type=[s.lstrip(".") for s in SUFFIXES])
    # A refused file is parsed once: its error stays shown while it is in the uploader.
    failed_id, failure = st.session_state.get("_upload_error", (None, ""))
    if up is not None and up.file_id not in (st.session_state.get("_uploaded"), failed_id):
        try:
            table = session.read_upload(up.name, up.getvalue())
        except InputError as e:
            failed_id, failure = up.file_id, str(e)
            st.session_state["_upload_error"] = (failed_id, failure)
        else:
            session.add_table(up.name, table, "upload")
            st.session_state["_uploaded"] = up.file_id
            st.success(f"Loaded {fmt.md_escape(up.name)}: {fmt.plural(len(table), 'query')}, "
                       f"{fmt.plural(len(table.models), 'model')}.")
    if up is not None and up.file_id == failed_id:
        st.error("Could not use this file, the previous dataset is kept.\n\n"
                 + fmt.md_escape(failure))

choices = session.dataset_choices()
ds = session.current_dataset()
if choices and ds is not None:
    keys = list(choices)
    picked = st.selectbox("Dataset", keys, index=keys.index(ds.key), format_func=choices.get)
    if picked != ds.key:
        st.session_state["dataset"] = picked
        st.rerun()

ds = session.require_dataset()
t = ds.table

current_emb = session.get("embedder")
col_a, col_d, _ = st.columns([2, 1, 2])
with col_d:
    current_device = session.get("device")
    device = st.selectbox(
        "Device", CHOICES, index=CHOICES.index(current_device) if current_device in CHOICES
        else 0,
        help="Where a local embedder runs. auto: `AVENGERS_DEVICE` if set, else CUDA, then "
             "Apple MPS, then the CPU. Vectors are the same on every device and share one "
             "cache.")
    if device != current_device:
        try:
            choose_device(device)
        except InputError as e:
            st.error(f"Device not changed: {fmt.md_escape(str(e))}")
        else:
            st.session_state["device"] = device
            st.rerun()
with col_a:
    name = st.text_input(
        "Embedder", value=current_emb,
        help="`minilm` (default, offline), any sentence-transformers name or local path, or "
             "`ollama:<model>` such as `ollama:nomic-embed-text`. Embeddings are cached on "
             "disk per embedder.",
    ).strip()
    if name and name != current_emb:
        try:
            with st.spinner(f"Loading {name}…"):
                compute.load_embedder(name)
        except InputError as e:
            st.error(f"Embedder not changed: {fmt.md_escape(str(e))}")
        else:
            st.session_state["embedder"] = name
            st.rerun()

n_tasks = len(set(t.tasks)) if t.tasks is not None else 0
means, counts = t.model_means()
c1, c2, c3, c4 = st.columns(4)
c1.metric("Queries", f"{len(t):,}")
c2.metric("Models", len(t.models))
c3.metric("Tasks", n_tasks or "—")
c4.metric("Scores filled", f"{counts.sum() / t.scores.size:.0%}")
for note in t.notes:  # e.g. how many duplicated query texts were merged
    st.caption(fmt.md_escape(note))
try:
    cut = compute.cut_note(ds)  # issue 22: queries longer than the embedder's window
except InputError as e:  # an embedder that cannot be loaded: the page says so elsewhere
    cut = None
    st.caption(f"Could not count queries past the embedder's window: {fmt.md_escape(str(e))}")
if cut:
    st.caption(fmt.md_escape(cut[0].upper() + cut[1:]) + ".")

st.plotly_chart(plots.model_bars(t.models, means, counts), key="model_bars")

if t.tasks is not None:
    st.subheader("Mean score per task and model")
    tm = t.task_model_means()
    mean_of = dict(zip(t.models, (float(v) for v in means), strict=True))
    best_first = sorted(t.models, key=lambda m: -mean_of[m] if mean_of[m] == mean_of[m] else 1)
    tm = tm[[m for m in best_first if m in tm.columns]]  # the chart's order, best first
    st.dataframe(tm, column_config={
        m: st.column_config.ProgressColumn(m, format="%.2f", min_value=0.0, max_value=1.0)
        for m in t.models
    })

st.subheader("Sample of queries")
st.dataframe(fmt.missing_as_dash(t.to_frame().head(200), list(t.models)), hide_index=True,
             height=300)
