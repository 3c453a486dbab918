"""Vote: sample the routed model(s) many times on your engines and take the majority."""

import time

import pandas as pd
import streamlit as st

from app_state import compute, engines, fmt, session
from avengers_core.answers.kinds import KINDS, answer_kind
from avengers_core.backends.model_names import map_models
from avengers_core.pipeline import plan_vote, start_vote
from avengers_core.present import plots
from avengers_core.vote.events import (
    AnswerExtracted,
    ModelStarted,
    RunFinished,
    SampleFinished,
    SampleStarted,
    Settled,
    TallyChanged,
    Token,
)
from avengers_core.vote.run import STRATEGIES
from avengers_core.vote.stopping import DEFAULT_CONFIDENCE, DEFAULT_EARLY_STOP, EARLY_STOPS
from avengers_core.vote.tally import VoteResult, count_votes, failure_summary

PER_ROW = 5
REFRESH = 0.15  # seconds between redraws of one streaming panel
TAIL = 400  # characters of a streaming sample shown while it arrives
SHOWN = 20_000  # characters of a finished sample shown (a runaway reply can be 1 MB)
ANSWER_CHARS = 200  # characters of an extracted answer shown
UNMAPPED = "(not mapped)"  # an empty cell read as a raw "None" (issue 14, item 8)

st.title("Vote")
st.caption("Repeated sampling: draw N answers at temperature > 0, extract each answer, "
           "and return the majority with its share as confidence.")

ds = session.current_dataset()
default_query = st.session_state.get("route_query", "")
query = st.text_area("Query", value=default_query or "What is 6 times 7?", height=90)

ranking, task, res = [], None, None
if ds is not None and query.strip():
    _r = compute.router(ds)
    res = _r.route_vector(compute.query_vector(query), compute.labels(ds, _r))
    ranking, task = res.ranking, res.task
    st.caption("Routing: " + fmt.route_reason(res, compute.labels(ds, _r)))

eng, local = engines.engine_settings(ranking)

st.subheader("Models")
names = ranking or list(local)  # best routed first
table_models = list(ds.table.models) if ds is not None else list(local)
saved_key = f"model_map@{ds.key if ds is not None else 'local'}"  # survives page switches
saved = {m: v for m, v in st.session_state.get(saved_key, {}).items() if v in local}
every = st.selectbox("Use one served model for every routed model", [UNMAPPED] + local,
                     **engines.kept("vote_map_all", UNMAPPED, [UNMAPPED] + local),
                     help="E.g. a single small model behind an OpenAI-compatible server.")
if every != UNMAPPED:
    saved = {m: every for m in table_models}
suggested = {**map_models(table_models, local), **saved}  # the engine's list suggests
mapping_df = pd.DataFrame({  # the table's order, so edits stay on their row as queries change
    "routed model": table_models,
    "served model": [suggested[n] or UNMAPPED for n in table_models],
})
edited = st.data_editor(
    mapping_df, hide_index=True, disabled=["routed model"],
    key=f"model_map-{ds.key if ds is not None else 'local'}-{hash(tuple(sorted(saved.items())))}",
    column_config={"served model": st.column_config.SelectboxColumn(
        options=[UNMAPPED] + local, required=True)},
    height=min(360, 40 + 35 * len(table_models)),
)
user_map = {r["routed model"]: r["served model"] for r in edited.to_dict("records")
            if r["served model"] not in (None, "", UNMAPPED)}
st.session_state[saved_key] = user_map

c1, c2, c3, c4 = st.columns(4)
samples = c1.slider("Samples", 1, 40, 10)
temperature = c2.slider("Temperature", 0.05, 1.5, 0.7, step=0.05)
concurrency = c3.slider("Concurrency", 1, 16, 4, help="Requests of one model in flight at once "
                        "(Ollama serves them in parallel up to OLLAMA_NUM_PARALLEL; engines "
                        "that honour n draw several samples per request).")
strategy = c4.selectbox("Strategy", STRATEGIES, key="vote_strategy",
                        help="single: all samples from the top model; spread: over the "
                             "top-n; switch: next model only while the winner's share is "
                             "below the threshold.")
c5, c6, c7 = st.columns(3)
top_n = session.int_slider("Models used", 1, len(names),
                             value=1 if strategy == "single" else 2, where=c5,
                             disabled=strategy == "single")
auto_kind = answer_kind(query, task)
kind = c6.selectbox("Answer kind", KINDS, index=KINDS.index(auto_kind),
                    key=f"vote_kind-{auto_kind}",
                    help="From the query (options offered: choice), else from the routed "
                         f"task ({fmt.md_escape(task or 'none')}).")
threshold = c7.slider("Switch threshold", 0.0, 1.0, 0.6, disabled=strategy != "switch")
c8, c9 = st.columns(2)
max_tokens = c8.number_input("Max tokens per reply (0 = the engine's limit)", 0, 32768, 0)
think = c9.selectbox("Thinking (reasoning models)", ["model default", "off", "on", "low",
                                                      "medium", "high"])
c10, c11 = st.columns(2)
early_stop = c10.selectbox(
    "Early stop", EARLY_STOPS, index=EARLY_STOPS.index(DEFAULT_EARLY_STOP), key="vote_early",
    help="decided: stop once the samples left cannot change the winner (same answer as all "
         "N); confident: stop once the leader is the majority with the probability below "
         "(after 3 samples); off: draw every sample.")
confidence = c11.slider("Confidence (early stop: confident)", 0.5, 0.99, DEFAULT_CONFIDENCE,
                        step=0.01, disabled=early_stop != "confident")
options = {"max_tokens": int(max_tokens)} if max_tokens else {}
if think != "model default":
    options["think"] = {"on": True, "off": False}.get(think, think)

plan = plan_vote(query, res, local, top_n=top_n, strategy=strategy, mapping=user_map, kind=kind)
chosen = plan.models
for note in plan.notes:
    st.info(fmt.md_escape(note))
if not chosen:
    tag = next((engines.PULL_TAGS[m] for m in names if m in engines.PULL_TAGS
                and m not in engines.LARGE), None)  # an Ollama tag that fits a laptop
    serve = (f" (on Ollama: {fmt.code('ollama pull ' + tag)})"
             if tag and st.session_state.get("engine_backend") == "ollama" else "")
    st.error("None of the routed models is served: map one to a served model above "
             f"(or use one served model for every routed model), or serve one{serve}.")
    st.stop()
st.write("Sampling: " + ", ".join(f"**{fmt.md_escape(m)}**" for m in chosen))

go_col, stop_col = st.columns([1, 1])
start = go_col.button("Run the vote", type="primary")
stop_col.button("Stop", help="Cancels every request; what arrived so far is kept.")

summary = st.empty()
tally_box = st.empty()
grid = st.container()


def clip(text: str, limit: int = ANSWER_CHARS) -> str:
    """`text` cut at `limit` characters (free-text answers are whole replies)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def sample_text(where, text: str) -> None:
    """A finished sample's text; a very long one shows its end, where the answer is."""
    if len(text) > SHOWN:
        where.caption(f"Last {SHOWN:,} of {len(text):,} characters.")
        text = text[-SHOWN:]
    where.code(text or " ", language=None, wrap_lines=True, height=160)


def sample_head(s) -> str:
    """A sample panel's caption: index, model, seed, and the endpoint that drew it."""
    where = f" · {fmt.md_escape(s.endpoint)}" if s.endpoint else ""
    return f"#{s.index} · {fmt.md_escape(s.model)} · seed {s.seed}{where}"


def thinking(where, s) -> None:
    """The sample's reasoning trace, collapsed: it is kept out of the vote."""
    if s.thinking:
        with where.expander(f"Thinking ({len(s.thinking):,} characters)"):
            st.code(s.thinking[-SHOWN:], language=None, wrap_lines=True, height=160)
    if s.no_answer and not s.error:
        where.caption(f"no answer: {fmt.md_escape(s.no_answer)}")


def draw_tally(tally, final: bool = False) -> None:
    if tally.votes:
        tally_box.plotly_chart(plots.vote_tally(tally.votes, tally.winner if final else None),
                               key=f"tally-{time.monotonic_ns()}")


def settled_text(stopped: str, drawn: int, asked: int) -> str:
    """'settled after 6 of 10 (decided)', or '' when every sample asked was drawn."""
    if stopped not in ("decided", "confident"):
        return ""
    return f"settled after {drawn} of {asked} ({stopped})"


def show_result(result) -> None:
    t = result.tally
    why = fmt.md_escape(failure_summary(result.samples))
    if t.winner is None and result.cancelled:
        summary.warning(f"Stopped before any answer arrived ({t.failed} failed).")
    elif t.winner is None and result.samples and t.failed == len(result.samples):
        summary.error(f"No answer: all {t.failed} samples failed: {why}.")
    elif t.winner is None:
        failed = f" {t.failed} failed: {why}." if t.failed else ""
        summary.error(f"No answer: no sample gave an answer of kind {result.kind}.{failed}")
    else:
        state = "stopped early" if result.cancelled else "finished"
        state = settled_text(result.stopped, result.drawn, result.asked) or state
        summary.success(
            f"**Answer: {fmt.md_escape(clip(t.winner))}** — {t.votes[t.winner]} of "
            f"{t.counted} votes ({t.confidence:.0%}); {t.failed} failed; {state}."
        )
    draw_tally(t, final=True)
    for note in result.notes:
        st.caption(fmt.md_escape(note))
    with grid:
        for i, s in enumerate(result.samples):
            if i % PER_ROW == 0:
                cols = st.columns(PER_ROW)
            with cols[i % PER_ROW].container(border=True):
                st.caption(sample_head(s))
                if s.error:
                    st.error(fmt.md_escape(s.error))
                else:
                    st.markdown(f"answer: **{fmt.md_escape(clip(s.answer or '—'))}**")
                thinking(st, s)
                sample_text(st, s.text)


if start:
    run = start_vote(eng, plan, query, samples=samples, temperature=temperature,
                     concurrency=concurrency, threshold=threshold, options=options,
                     early_stop=early_stop, confidence=confidence)
    # kept so a Stop (which interrupts the loop below) still shows what arrived
    st.session_state["vote_result"] = VoteResult(query, kind, chosen, [], count_votes([], kind),
                                                 cancelled=True)
    panels, texts, shown, finished = {}, {}, {}, []
    progress = summary.progress(0.0, text="Starting…")
    planned = 0  # samples of the models started so far (Model-Switch adds models as it goes)
    done = 0
    try:  # a Stop click reruns the script, which interrupts this loop: cancel in finally
        for ev in run.events():
            if isinstance(ev, ModelStarted):
                planned += ev.samples
                progress.progress(done / max(planned, 1), text=f"Sampling {ev.model}")
            elif isinstance(ev, SampleStarted):
                n = len(panels)
                if n % PER_ROW == 0:
                    row = grid.columns(PER_ROW)
                box = row[n % PER_ROW].container(border=True)
                box.caption(f"#{ev.sample} · {fmt.md_escape(ev.model)} · seed {ev.seed}")
                panels[ev.sample] = (box.empty(), box.empty())
                texts[ev.sample], shown[ev.sample] = "", 0.0
            elif isinstance(ev, Token):
                texts[ev.sample] = (texts[ev.sample] + ev.text)[-TAIL:]  # bounded, not O(n²)
                if time.monotonic() - shown[ev.sample] > REFRESH:
                    panels[ev.sample][1].code(texts[ev.sample], language=None,
                                              wrap_lines=True)
                    shown[ev.sample] = time.monotonic()
            elif isinstance(ev, SampleFinished):
                done += 1
                s = ev.sample
                finished.append(s)
                head, body = panels[s.index]
                if s.error:
                    head.error(fmt.md_escape(s.error))
                box = body.container()
                box.caption(sample_head(s))
                thinking(box, s)
                sample_text(box, s.text)
                progress.progress(min(1.0, done / max(planned, 1)),
                                  text=f"{done} of {planned} samples")
            elif isinstance(ev, AnswerExtracted):
                panels[ev.sample][0].markdown(
                    f"answer: **{fmt.md_escape(clip(ev.answer or '—'))}**")
            elif isinstance(ev, Settled):
                for i in ev.dropped:  # cancelled in flight: left out of the vote
                    panels[i][0].caption("cancelled: the vote was settled")
                progress.progress(1.0, text=settled_text(ev.rule, ev.drawn, ev.asked))
            elif isinstance(ev, TallyChanged):
                draw_tally(ev.tally)
                st.session_state["vote_result"] = VoteResult(
                    query, kind, chosen, sorted(finished, key=lambda x: x.index), ev.tally,
                    cancelled=True)
            elif isinstance(ev, RunFinished):
                st.session_state["vote_result"] = ev.result
    finally:
        run.cancel()
        run.join(timeout=5)
    st.rerun()
elif "vote_result" in st.session_state:
    show_result(st.session_state["vote_result"])
