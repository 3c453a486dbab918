"""Calibrate: score your own models on labeled questions; the result becomes a table."""

import hashlib
from pathlib import Path

import streamlit as st

from app_state import engines, fmt, session
from avengers_core.backends import BackendUnavailable
from avengers_core.calibrate.questions import load_questions
from avengers_core.calibrate.run import calibrate
from avengers_core.calibrate.store import calibration_table
from avengers_core.errors import InputError
from avengers_core.present import plots

SOURCES = {"gsm8k": "GSM8K test questions (demo)",
           "llmrouter": "LLMRouter labeled questions (demo)",
           "upload": "Upload a JSONL / CSV question set"}

st.title("Calibrate")
st.caption("Each chosen local model answers each question once; graded answers (1 = correct) "
           "form a routing table for *your* models. Results are written as they arrive, so "
           "a stopped run resumes where it stopped.")

eng, local = engines.engine_settings()
host = eng.host

models = st.multiselect("Models", local, default=local[: min(2, len(local))])
source = st.radio("Questions", list(SOURCES), format_func=SOURCES.get, horizontal=True)
limit = st.number_input("Questions to use", 1, 5000, 20, help="The first N of the set.")

path: str | Path = source
if source == "upload":
    up = st.file_uploader("Question set", type=["jsonl", "csv"],
                          help="Columns/keys: question, answer, optional task, kind, choices.")
    if up is None:
        st.stop()
    folder = engines.calibration_path("uploads", host).parent / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    data = up.getvalue()
    # Named after its content, a short slug of its name and its extension: the browser's file
    # name itself (very long, odd characters) never reaches the file system.
    path = folder / (f"{hashlib.sha256(data).hexdigest()[:16]}-"
                     f"{fmt.slug(Path(up.name).stem)[:60]}{session.upload_suffix(up.name)}")
    path.write_bytes(data)
try:
    qs = load_questions(path, limit=int(limit))
except InputError as e:
    where = f"{path.parent}/" if isinstance(path, Path) else ""
    st.error(fmt.md_escape(str(e).replace(where, "") if where else str(e)))
    st.stop()
for note in qs.notes:
    st.caption(note)
st.write(f"{fmt.plural(len(qs.questions), 'question')} × {fmt.plural(len(models), 'model')} "
         f"= {fmt.plural(len(qs.questions) * len(models), 'answer')} to grade.")

stem = Path(str(source if source != "upload" else Path(path).stem)).name
default_out = engines.calibration_path(stem, host)
name = st.text_input(
    "Write the table to (a file name)", default_out.name, key=f"calibration_out-{stem}-{host}",
    help=f"A JSONL routing table in {fmt.code(default_out.parent)} (set "
         "`AVENGERS_CALIBRATION_DIR` to change the folder); an existing file is resumed, not "
         "redone (only if it was graded on this host).").strip()
if not name.endswith(".jsonl") or Path(name).name != name or name.startswith("."):
    # The browser must not choose where the server writes: a bare name inside the folder only.
    st.error(f"Expected a plain file name ending in .jsonl (no folders), got "
             f"{fmt.code(name)}.")
    st.stop()
out = default_out.parent / name
go_col, stop_col = st.columns(2)
start = go_col.button("Run calibration", type="primary", disabled=not models)
stop_col.button("Stop", help="Stops after the answer in flight; the file keeps the rest.")

if start:
    bar = st.progress(0.0, text="Starting…")
    chart = st.empty()
    history: dict[str, list[float]] = {m: [] for m in models}

    def on_result(result, report) -> None:
        acc = report.accuracy().get(result.model)
        if acc is not None:
            history[result.model].append(acc)
            chart.plotly_chart(plots.calibration_accuracy(history),
                               key=f"acc-{sum(map(len, history.values()))}")

    def progress(done: int, total: int, message: str) -> None:
        bar.progress(done / total if total else 1.0, text=f"{done} / {total} · {message}")

    st.session_state["calibration_stopped"] = str(out)  # cleared when the run completes
    st.session_state.pop("calibration", None)
    try:
        report = calibrate(qs, models, out, client=eng, progress=progress,
                           on_result=on_result)
    except (InputError, BackendUnavailable) as e:
        st.session_state.pop("calibration_stopped")
        st.error(fmt.md_escape(str(e)))
        st.stop()
    st.session_state.pop("calibration_stopped")
    try:
        table = calibration_table(out, qs, models)
    except InputError as e:  # e.g. every answer failed: nothing was written
        reasons = "\n".join(report.errors[:5])
        st.error(f"No table to use yet: {fmt.md_escape(str(e))}")
        st.text(reasons)
        st.stop()
    added = session.add_table(f"calibration: {stem} ({', '.join(models)})", table,
                              "calibrated", current=False)  # the current dataset stays
    st.session_state["calibration"] = {
        "out": str(out), "accuracy": report.accuracy(), "errors": report.errors,
        "ran": report.ran, "resumed": report.resumed, "key": added.key, "name": added.name,
    }
    st.rerun()

stopped = st.session_state.get("calibration_stopped")
if stopped and not start:
    st.info(f"Stopped. The answers graded so far are kept in {fmt.code(stopped)}; "
            "run again with the same file to resume where it stopped.")
done = st.session_state.get("calibration")
if done:
    st.success(f"Calibrated: {done['ran']} new answers, {done['resumed']} resumed from "
               f"{fmt.code(done['out'])}. Added as the dataset "
               f"**{fmt.md_escape(done['name'])}**; the current dataset is unchanged "
               "(switch on **Data**, or here).")
    if st.session_state.get("dataset") != done["key"] and st.button("Switch to it"):
        st.session_state["dataset"] = done["key"]
        st.rerun()
    st.dataframe([{"model": m, "accuracy": round(a, 3)} for m, a in done["accuracy"].items()],
                 hide_index=True)
    if done["errors"]:
        with st.expander(f"{len(done['errors'])} failed answers (not written)"):
            st.text("\n".join(done["errors"][:200]))
