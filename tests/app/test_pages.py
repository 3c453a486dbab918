"""Every page of the Streamlit app, run headless with AppTest on the demo data.

Vote and Calibrate talk to the project's loopback Ollama-protocol server. UMAP is never
started here (`AVENGERS_UMAP=0`); the map is the PCA preview unless a UMAP map of the demo
is already on disk. The first test pays for loading MiniLM and fitting K = 64; the caches
are process-wide, so the others reuse them.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from tests.support.fake_ollama import FakeOllama, ModelScript, demo_models
from tests.support.net import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 600  # the first page may embed the demo table when the cache is cold


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.setenv("AVENGERS_UMAP", "0")
    monkeypatch.setenv("AVENGERS_CALIBRATION_DIR", str(tmp_path / "calibration"))
    monkeypatch.chdir(ROOT)


@pytest.fixture(scope="module")
def ollama():
    with FakeOllama(demo_models()) as srv:
        yield srv


def app(page: str | None = None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.run()
    if page:
        at.switch_page(f"app_pages/{page}.py").run()
    clean(at)
    return at


def clean(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def charts(at) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def k_of(at) -> int:
    """The session's K for its current dataset."""
    return at.session_state[f"k@{at.session_state['dataset']}"]


def button(at, label: str):
    return next(b for b in at.button if b.label == label)


def res_n_test(per_task) -> int:
    return int(per_task["n"].sum())


def test_data_page_opens_on_demo():
    at = app()
    assert [m.value for m in at.metric][:3] == ["5,989", "9", "14"]
    bars = charts(at)[0]["data"][0]
    assert len(bars["y"]) == 9
    assert "llmrouter" in at.sidebar.markdown[0].value
    assert any(d.label == "Routing table (CSV)" for d in at.get("download_button"))


def test_without_demo_data_the_app_explains_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("AVENGERS_DATA_DIR", str(tmp_path))
    at = app()
    assert "avengers data" in at.info[0].value
    assert at.file_uploader[0] is not None
    at.switch_page("app_pages/clusters.py").run()
    clean(at)
    assert "avengers data" in at.info[0].value


def test_bad_upload_is_shown_and_previous_dataset_kept():
    at = app()
    at.file_uploader[0].set_value(("bad.csv", b"query,m1\nhello,1.5\n", "text/csv")).run()
    clean(at)
    err = at.error[0].value.replace("\\", "")  # markdown escapes
    assert "bad.csv" in err and "[0, 1]" in err and "/tmp" not in err
    assert at.session_state["dataset"] == "llmrouter"
    good = "query,task,m1,m2\n" + "".join(f"q{i} <b>x</b>,t,{i % 2},1\n" for i in range(40))
    at.file_uploader[0].set_value(("good.csv", good.encode(), "text/csv")).run()
    clean(at)
    assert at.session_state["dataset"].startswith("upload:")
    assert [m.value for m in at.metric][:2] == ["40", "2"]
    other = app()  # another browser tab: its own session, still on the demo table
    assert other.session_state["dataset"] == "llmrouter"


def test_an_uploaded_table_works_on_every_page():
    at = app()
    rows = "".join(f"{'add the numbers' if i % 2 else 'name the capital of'} case {i},"
                   f"{'math' if i % 2 else 'geo'},{i % 2},{1 - i % 2},{(i // 2) % 2}\n"
                   for i in range(60))
    data = ("query,task,m1,m2,m3\n" + rows).encode()
    at.file_uploader[0].set_value(("mine.csv", data, "text/csv")).run()
    clean(at)
    assert k_of(at) == 15  # K = 64 does not fit 60 queries: lowered
    for page in ("clusters", "leaderboard", "route"):
        at.switch_page(f"app_pages/{page}.py").run()
        clean(at)
        assert not at.error, (page, [e.value for e in at.error])
    assert any("lower K" in i.value for i in at.info)  # 60 queries in 15 clusters: noisy
    at.switch_page("app_pages/evaluate.py").run()
    clean(at)
    button(at, "Run the K sweep ([4, 8])").click().run()
    clean(at)
    sweep = next(c for c in charts(at) if "K (clusters)" in json.dumps(c["layout"]))
    assert [tr["name"] for tr in sweep["data"]][:2] == ["router (default)", "router (paper-exact)"]


def test_profile_download_is_a_loadable_profile(toy, tmp_path):
    import zipfile

    from app_state.compute import profile_zip
    from avengers_core.routing.profile import load_profile
    from avengers_core.routing.routers.avengers import AvengersRouter
    from avengers_core.routing.routers.base import RouterConfig

    table, x = toy
    r = AvengersRouter.fit(table, x, RouterConfig(k=2), embedder_id="toy")
    with zipfile.ZipFile(io.BytesIO(profile_zip(r))) as z:
        assert sorted(z.namelist()) == ["profile/centroids.npz", "profile/profile.json"]
        z.extractall(tmp_path)
    again = load_profile(tmp_path / "profile", embedder_id="toy")
    assert again.models == r.models and again.config.k == 2


def test_background_map_worker_is_reaped(tmp_path, toy):
    import time

    from avengers_core.present import maps

    _, x = toy
    job = maps.start_map(x, [f"q{i}" for i in range(len(x))], "toy", "pca", folder=tmp_path)
    pid = json.loads(job.status_path.read_text())["pid"]
    deadline = time.time() + 300  # generous: a loaded machine starts Python slowly
    while Path(f"/proc/{pid}").exists() and time.time() < deadline:  # a zombie stays listed
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists()
    assert job.coords() is not None


def test_calibrate_with_every_answer_failing_says_why(monkeypatch, tmp_path):
    with FakeOllama({"broken:1b": ModelScript(fail="http500")}) as srv:
        monkeypatch.setenv("OLLAMA_HOST", srv.url)
        at = app("calibrate")
        at.number_input[0].set_value(2)
        out_name(at).set_value("none.jsonl").run()
        button(at, "Run calibration").click().run()
        clean(at)
        assert "No table to use yet" in at.error[0].value
        assert "500" in at.text[0].value
        assert at.session_state["dataset"] == "llmrouter"


def test_markdown_escape_makes_data_inert():
    from app_state.fmt import code, md_escape

    assert md_escape("[x](y) *b* <i> $x$ :red[r]") == (
        "\\[x\\](y) \\*b\\* \\<i\\> \\$x\\$ \\:red\\[r\\]")
    assert md_escape("see https://raw.githubusercontent.com/a_b/c.json.") == (
        "see `https://raw.githubusercontent.com/a_b/c.json.`")
    assert md_escape("line\n# not a heading") == "line \\# not a heading"
    assert md_escape("v1.2-rc") == "v1.2-rc"  # nothing to escape: no stray backslashes
    assert code("a`b") == "``a`b``"


def test_route_reason_reads_well():
    from app_state.fmt import route_reason
    from avengers_core.data.table import from_rows
    from avengers_core.routing.routers.avengers import AvengersRouter
    from avengers_core.routing.routers.base import RouterConfig
    from tests.conftest import make_rows

    rows, x = make_rows()
    for row in rows:  # model names that Markdown would read as emphasis
        row["scores"] = {f"m_{m}": v for m, v in row["scores"].items()}
        row.pop("costs")
    r = AvengersRouter.fit(from_rows(rows, "toy"), x,
                           RouterConfig(k=2, prior="global", shrinkage=0.0))
    res = r.route_vector(x[0])
    one = route_reason(res, ["plain", "x_y"])
    top = res.models[0].replace("_", "\\_")
    assert one.startswith(f"**Route to {top}.**") and top in one
    assert "m_" not in one.replace("m\\_", "")
    assert "questions there; the router used" in one


def test_download_names_are_slugs():
    from app_state.fmt import slug

    assert slug("llmrouter (demo)") == "llmrouter-demo"
    assert slug("calibration: gsm8k (a:1, b)") == "calibration-gsm8k-a-1-b"


def test_k_is_kept_per_dataset():
    at = app()
    assert k_of(at) == 64
    small = "query,m1,m2\n" + "".join(f"q {i},{i % 2},1\n" for i in range(8))
    at.file_uploader[0].set_value(("small.csv", small.encode(), "text/csv")).run()
    clean(at)
    assert k_of(at) == 2
    at.selectbox[0].set_value("llmrouter").run()
    clean(at)
    assert at.session_state["dataset"] == "llmrouter" and k_of(at) == 64
    assert "**K** 64" in at.sidebar.markdown[1].value
    at.switch_page("app_pages/clusters.py").run()
    clean(at)
    assert len(at.dataframe[-1].value) == 64  # the demo is fitted with its own K


def test_sidebar_stays_when_a_page_stops(monkeypatch, tmp_path):
    monkeypatch.setenv("AVENGERS_DATA_DIR", str(tmp_path))
    at = app()  # no demo data: the Data page stops early
    assert "avengers data" in at.info[0].value
    assert any("No dataset loaded" in c.value for c in at.sidebar.caption)


def test_route_shows_query_text_literally():
    at = app("route")
    query = "What is :red[red] or [link](http://e.x) or <b>bold</b> or $x$?"
    at.text_area[0].set_value(query)
    button(at, "Route").click().run()
    clean(at)
    assert at.text[0].value == query
    assert not any(query in m.value for m in at.caption)


def test_clusters_map_labels_and_k_slider():
    at = app("clusters")
    fig = charts(at)[0]
    points = sum(len(tr["customdata"]) for tr in fig["data"])
    assert points == 5989
    hover = fig["data"][0]["customdata"][0][1]
    assert "<script" not in hover
    assert len(at.dataframe[-1].value) == 64
    at.slider[0].set_value(16).run()
    clean(at)
    assert k_of(at) == 16
    assert len(at.dataframe[-1].value) == 16
    labels = list(at.dataframe[-1].value["label"])
    assert all(isinstance(lab, str) and lab for lab in labels)
    at.radio[0].set_value("task").run()
    clean(at)
    assert {tr["name"] for tr in charts(at)[0]["data"]} >= {"gsm8k", "mmlu"}
    at.switch_page("app_pages/data.py").run()  # a table without tasks: colour by cluster
    no_tasks = "query,m1\n" + "".join(f"question number {i}?,{i % 2}\n" for i in range(30))
    at.file_uploader[0].set_value(("plain.csv", no_tasks.encode(), "text/csv")).run()
    at.switch_page("app_pages/clusters.py").run()
    clean(at)
    assert at.radio[0].options == ["cluster", "best model"] and at.radio[0].value == "cluster"


def test_leaderboard_heatmap_and_cluster_ranking():
    at = app("leaderboard")
    heat = charts(at)[0]["data"][0]
    assert heat["type"] == "heatmap" and len(heat["y"]) == 64 and len(heat["x"]) == 9
    ranking = at.dataframe[0].value
    assert len(ranking) == 9 and list(ranking["rank"]) == list(range(1, 10))
    assert any("recipe picks" in m.value for m in at.markdown)
    assert any(c.get("layout", {}).get("title", {}).get("text", "").startswith("Score against")
               for c in charts(at))


def test_route_explains_the_choice():
    at = app("route")
    at.text_area[0].set_value("Write a python function that reverses a linked list.")
    button(at, "Route").click().run()
    clean(at)
    msg = at.success[0].value
    assert msg.startswith("**Route to") and "Nearest cluster" in msg and "p = " in msg
    expl = at.dataframe[0].value  # the fused clusters, from the router's explanation
    assert len(expl) == 3 and {"raw", "prior", "effective", "best model here"} <= set(expl)
    parts = next(c for c in charts(at) if c["layout"]["title"]["text"].startswith("How the"))
    assert [tr["name"] for tr in parts["data"]][-1] == "fused score"
    assert len(at.dataframe[1].value) == 8  # the most similar known queries
    star = charts(at)[-1]["data"][-1]
    assert star["marker"]["symbol"] == "star"


def test_evaluate_compares_with_baselines():
    at = app("evaluate")
    bars = charts(at)[0]["data"][0]
    assert "oracle" in bars["x"] and "router (default)" in bars["x"]
    per_task = at.dataframe[0].value
    assert len(per_task) == 14
    assert any("cost" in json.dumps(c.get("layout", {})) for c in charts(at))
    # the sidebar offers it as a download (AppTest drops the sidebar after switch_page,
    # so the browser test checks the button itself)
    assert at.session_state["last_evaluation"][1]["n_test"] == res_n_test(per_task)


def test_vote_streams_and_finishes(ollama, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", ollama.url)
    at = app("vote")
    at.text_area[0].set_value("Natalia sold 48 clips in April and half as many in May. "
                              "How many in total?").run()
    clean(at)
    next(b for b in at.selectbox if b.label == "Answer kind").set_value("number")
    button(at, "Run the vote").click().run()
    clean(at)
    result = at.session_state["vote_result"]
    assert not result.cancelled and result.asked == 10
    assert result.tally.counted + result.tally.failed == result.drawn <= 10  # may settle early
    assert at.success[0].value.startswith("**Answer: ")
    assert charts(at)[0]["data"][0]["type"] == "bar"


def test_vote_page_shows_where_the_vote_settled(monkeypatch):
    script = ModelScript(replies=["#### 42"] * 6 + ["#### 41"] * 4)
    with FakeOllama({"qwen2.5:7b-instruct": script}) as srv:
        monkeypatch.setenv("OLLAMA_HOST", srv.url)
        at = app("vote")
        at.slider[2].set_value(1)  # one sample at a time: the scripted order is the order
        button(at, "Run the vote").click().run()
        clean(at)
        result = at.session_state["vote_result"]
        assert (result.drawn, result.asked, result.stopped) == (6, 10, "decided")
        assert "settled after 6 of 10 (decided)" in at.success[0].value
        at.selectbox(key="vote_early").set_value("off").run()
        button(at, "Run the vote").click().run()
        clean(at)
        assert at.session_state["vote_result"].drawn == 10
        assert "settled" not in at.success[0].value


def test_vote_failures_are_shown_and_vote_goes_on(monkeypatch):
    script = ModelScript(replies=["#### 7"], fail_seeds={1: "http500", 3: "badline"})
    with FakeOllama({"qwen2.5:7b-instruct": script}) as srv:
        monkeypatch.setenv("OLLAMA_HOST", srv.url)
        at = app("vote")
        at.slider[0].set_value(5)
        at.selectbox(key="vote_early").set_value("off").run()  # every sample, failed or not
        button(at, "Run the vote").click().run()
        clean(at)
        t = at.session_state["vote_result"].tally
        assert t.winner == "7" and t.failed == 2 and t.votes == {"7": 3}
        assert len(at.error) == 2


def test_vote_model_switch_samples_the_next_model_when_unsure(monkeypatch):
    split = ModelScript(replies=["#### 1", "#### 2"])
    with FakeOllama({"qwen2.5:7b-instruct": split, "llama3.1:8b": split}) as srv:
        monkeypatch.setenv("OLLAMA_HOST", srv.url)
        at = app("vote")
        at.selectbox(key="vote_strategy").set_value("switch").run()
        at.slider[0].set_value(4)  # samples per model
        at.slider[3].set_value(2).run()  # models used
        button(at, "Run the vote").click().run()
        clean(at)
        result = at.session_state["vote_result"]
        assert len(result.models) == 2 and result.tally.counted == 8
        assert at.success[0].value.startswith("**Answer: ")


def test_vote_without_ollama_says_what_to_start(monkeypatch):
    host = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("OLLAMA_HOST", host)
    at = app("vote")
    assert at.warning[0].value == f"Ollama is not reachable at `{host}`."
    assert "--host" not in "".join(m.value for m in at.markdown)
    code = at.code[0].value
    assert "ollama serve" in code and "ollama pull" in code
    at.switch_page("app_pages/data.py").run()  # nothing else breaks
    clean(at)


def test_calibrate_without_ollama_offers_check_again(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{free_port()}")
    at = app("calibrate")
    assert "not reachable" in at.warning[0].value
    assert "Check again" in at.markdown[0].value
    button(at, "Check again").click().run()
    clean(at)


def test_calibrate_writes_per_host_and_uses_only_the_chosen_run(ollama, monkeypatch, tmp_path):
    monkeypatch.setenv("OLLAMA_HOST", ollama.url)
    at = app("calibrate")
    port = ollama.url.rsplit(":", 1)[1]
    assert out_name(at).value == f"gsm8k-127.0.0.1-{port}.jsonl"
    at.multiselect[0].set_value(["qwen2.5:7b-instruct", "llama3.1:8b"])
    at.number_input[0].set_value(4).run()
    button(at, "Run calibration").click().run()
    clean(at)
    at.multiselect[0].set_value(["qwen2.5:7b-instruct"])
    at.number_input[0].set_value(2).run()
    button(at, "Run calibration").click().run()  # resumed from the same file
    clean(at)
    ds = at.session_state["tables"][at.session_state["calibration"]["key"]]  # the last run's
    assert len(ds.table) == 2 and ds.table.models == ["qwen2.5:7b-instruct"]


@pytest.mark.parametrize("name", ["../escape.jsonl", "/tmp/x.jsonl", "sub/x.jsonl", "x.txt",
                                  ".hidden.jsonl"])
def test_calibrate_writes_only_a_plain_name_in_its_folder(ollama, monkeypatch, tmp_path, name):
    monkeypatch.setenv("OLLAMA_HOST", ollama.url)
    at = app("calibrate")
    at.multiselect[0].set_value(["qwen2.5:7b-instruct"])
    out_name(at).set_value(name).run()
    assert "plain file name ending in .jsonl" in at.error[0].value
    assert not [b for b in at.button if b.label == "Run calibration"]
    assert not at.exception
    assert not list(tmp_path.rglob("*.jsonl"))


def test_calibrate_builds_the_current_dataset(ollama, monkeypatch, tmp_path):
    monkeypatch.setenv("OLLAMA_HOST", ollama.url)
    at = app("calibrate")
    at.multiselect[0].set_value(["qwen2.5:7b-instruct", "llama3.1:8b"])
    at.number_input[0].set_value(6)
    out = tmp_path / "calibration" / "cal.jsonl"
    out_name(at).set_value("cal.jsonl").run()
    button(at, "Run calibration").click().run()
    clean(at)
    assert at.session_state["dataset"] == "llmrouter"  # kept: the result is added (issue 19)
    button(at, "Switch to it").click().run()
    clean(at)
    assert at.session_state["dataset"].startswith("calibrated:")
    assert len(out.read_text().splitlines()) == 6
    assert set(at.session_state["calibration"]["accuracy"]) == {"qwen2.5:7b-instruct",
                                                                "llama3.1:8b"}
    at.switch_page("app_pages/data.py").run()
    clean(at)
    assert [m.value for m in at.metric][:2] == ["6", "2"]
    for page in ("clusters", "leaderboard", "route", "vote"):  # K = 1 on six questions
        at.switch_page(f"app_pages/{page}.py").run()
        clean(at)
        assert not at.error, (page, [e.value for e in at.error])
    assert k_of(at) == 1


def _slow_page(marker: str) -> None:
    import time

    import streamlit as st

    from app_state import jobs

    def work(progress):
        with open(marker, "a") as f:
            f.write("run\n")
        for i in range(20):
            progress(i, 20, "working")
            time.sleep(0.1)
        return 42

    st.write(f"value {jobs.computed('test-slow', (marker,), work, 'Slow:')}")


def test_long_work_outlives_an_interrupted_script(tmp_path):
    from streamlit.testing.v1 import AppTest

    marker = str(tmp_path / "runs.txt")
    first = AppTest.from_function(_slow_page, args=(marker,), default_timeout=0.5)
    with pytest.raises(RuntimeError):  # the script gives up (a page switch would too)
        first.run()
    second = AppTest.from_function(_slow_page, args=(marker,), default_timeout=30)
    second.run()
    clean(second)
    assert second.markdown[0].value == "value 42"
    assert open(marker).read() == "run\n"  # the work ran once, across both scripts


# -- issue 14: what a newcomer found ------------------------------------------------------


def test_route_two_different_queries_in_a_row():
    at = app("route")
    first, second = "Write a python function that sorts a list.", "What is the capital of Peru?"
    for query in (first, second):
        at.text_area[0].set_value(query)
        button(at, "Route").click().run()
        clean(at)
        assert at.text_area[0].value == query  # the box keeps what was typed
        assert at.session_state["route_query"] == query and at.text[0].value == query
    at.switch_page("app_pages/data.py").run()
    at.switch_page("app_pages/route.py").run()
    assert at.text_area[0].value == second  # back on the page: the last routed query


def test_leaderboard_keeps_the_chosen_cluster_when_reordered():
    at = app("leaderboard")
    options = at.selectbox[0].options
    at.selectbox[0].select(options[5]).run()
    clean(at)
    chosen = at.selectbox[0].value
    at.radio[0].set_value("best model").run()
    clean(at)
    assert at.selectbox[0].value == chosen
    assert at.selectbox[0].options != options  # the order did change
    at.radio[0].set_value("cluster size").run()
    assert at.selectbox[0].value == chosen


def test_sidebar_shows_the_fitted_profile_while_a_page_stops(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{free_port()}")
    app("clusters")  # the demo is fitted (process-wide)
    at = app("vote")  # Ollama unreachable: the page stops before the second drawing
    assert "not reachable" in at.warning[0].value
    side = [m.value for m in at.sidebar.markdown]
    assert any(v.startswith("**Profile** K = 64") for v in side), side
    assert not any("not fitted" in c.value for c in at.sidebar.caption)
    labels = [d.proto.label for d in at.sidebar.get("download_button")]
    assert labels == ["Profile (zip)", "Routing table (CSV)"]


def _sidebar_before_page() -> None:
    import streamlit as st

    from app_state import sidebar

    sidebar.sidebar(st.sidebar.container(), compute_now=False)
    sidebar.sidebar(st.sidebar.container(), compute_now=True)


def test_sidebar_drawn_before_and_after_has_the_same_elements():
    from streamlit.testing.v1 import AppTest

    app("clusters")  # fitted
    at = AppTest.from_function(_sidebar_before_page, default_timeout=TIMEOUT)
    at.run()
    clean(at)
    md = [m.value for m in at.sidebar.markdown]
    half = len(md) // 2
    assert len(md) == 6 and md[:half] == md[half:]  # before == after: nothing stale to grey
    labels = [d.proto.label for d in at.sidebar.get("download_button")]
    assert labels == ["Profile (zip)", "Routing table (CSV)"] * 2


SMALL = ROOT / "assets" / "example_table.csv"


def test_small_upload_evaluate_waits_for_its_own_k_sweep():
    at = app()
    at.session_state["k_sweep_run@llmrouter"] = True  # the demo's sweep was run
    at.file_uploader[0].set_value((SMALL.name, SMALL.read_bytes(), "text/csv")).run()
    clean(at)
    at.switch_page("app_pages/evaluate.py").run()
    clean(at)
    assert any(b.label.startswith("Run the K sweep") for b in at.button)
    assert not any("K (clusters)" in json.dumps(c["layout"]) for c in charts(at))
    assert any("cross-validation on the training part" in c.value for c in at.caption)
    at.switch_page("app_pages/leaderboard.py").run()
    clean(at)
    curve = next(c for c in charts(at) if "number of models" in json.dumps(c["layout"]))
    assert curve["layout"]["xaxis"]["dtick"] == 1  # no 1.5 models


def test_missing_scores_read_as_a_dash():
    import pandas as pd

    from app_state.fmt import missing_as_dash

    html = missing_as_dash(pd.DataFrame({"query": ["a", "b"], "m": [1.0, None]}),
                           ["m"]).to_html()
    assert "–" in html and "None" not in html and "nan" not in html
    assert ">1<" in html  # 1, not 1.000000


def test_vote_mapping_table_names_unmapped_models(ollama, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", ollama.url)
    at = app("vote")
    tags = list(at.dataframe[0].value["served model"])
    assert None not in tags and "" not in tags
    assert "(not mapped)" in tags and "qwen2.5:7b-instruct" in tags


def test_embedding_starts_in_the_background_when_a_table_is_opened():
    from app_state import compute, jobs

    rows = "".join(f"background check {i}: which number follows {i * 7919}?,{i % 2}\n"
                   for i in range(40))  # texts no cache has seen
    at = app()
    at.file_uploader[0].set_value(("fresh.csv", ("query,m1\n" + rows).encode(),
                                   "text/csv")).run()
    clean(at)  # the Data page needs no vectors and does not wait for them
    key = at.session_state["dataset"]
    slot = jobs._slot("embeddings", key, compute.embedder("minilm").id)
    assert "thread" in slot or "value" in slot  # started by opening the table
    slot["thread"].join(TIMEOUT)
    assert slot["value"].shape == (40, 384)


def test_progress_line_estimates_the_time_left(monkeypatch):
    from app_state import jobs

    now = [100.0]
    monkeypatch.setattr(jobs.time, "monotonic", lambda: now[0])
    slot = {"progress": (64, 6400, "embedding"), "first": (90.0, 32)}
    frac, line = jobs.progress_line(slot)  # 32 rows in 10 s: 6336 rows take 1980 s
    assert frac == pytest.approx(0.01)
    assert line == "embedding (64 / 6,400) · about 33 min left"
    assert jobs.progress_line({"progress": (0, 10, "starting")})[1] == "starting (0 / 10)"


def count(values) -> int:
    """Length of a plotly array in a chart spec (a list, or base64 'bdata' with its dtype)."""
    if isinstance(values, dict):
        import base64

        import numpy as np

        return len(base64.b64decode(values["bdata"])) // np.dtype(values["dtype"]).itemsize
    return len(values)


@pytest.mark.parametrize("upload", [False, True], ids=["demo", "upload"])
def test_tour_steps(upload):
    at = app()
    if upload:
        at.file_uploader[0].set_value((SMALL.name, SMALL.read_bytes(), "text/csv")).run()
        clean(at)
    at.switch_page("app_pages/tour.py").run()
    clean(at)
    n = len(at.session_state["tables"][at.session_state["dataset"]].table) if upload else 5989
    steps = at.radio[0].options
    assert len(steps) == 5
    fig = charts(at)[0]  # 1: the query, its neighbours and the map
    assert [tr["name"] for tr in fig["data"]] == ["queries", "nearest neighbours", "the query"]
    assert count(fig["data"][0]["x"]) == n and len(at.dataframe[0].value) == min(8, n - 1)
    at.radio[0].set_value(steps[1]).run()  # 2: K-means frames
    clean(at)
    ks = at.radio[1].options
    assert ks == (["4", "16", "64"] if not upload else ["4", "16"])
    anim = charts(at)[0]
    assert len(anim["frames"]) == 7 and count(anim["data"][0]["x"]) == min(2000, n)
    at.radio[1].set_value(ks[-1]).run()
    clean(at)
    assert f"K = {ks[-1]}" in charts(at)[0]["layout"]["title"]["text"]
    at.radio[0].set_value(steps[2]).run()  # 3: raw against effective, and the prior in use
    clean(at)
    bars = charts(at)[0]["data"]
    assert [tr["name"] for tr in bars] == ["raw accuracy", "effective (routing) score", "prior"]
    text = next(m.value for m in at.markdown if "effective = " in m.value)
    assert "prior**" in text  # names the prior the router uses (global or task)
    at.radio[0].set_value(steps[3]).run()  # 4: binomial majority
    clean(at)
    at.slider[0].set_value(0.7)
    at.slider[1].set_value(5).run()
    clean(at)
    assert "**83.7%**" in next(m.value for m in at.markdown if "chance" in m.value)
    at.radio[0].set_value(steps[4]).run()  # 5: your turn
    clean(at)
    at.text_area[0].set_value("What is 15% of 80?")
    button(at, "Route it").click().run()
    clean(at)
    assert at.success[0].value.startswith("**Route to")
    assert charts(at)[0]["layout"]["title"]["text"] == "Nearest clusters"


def test_tour_live_vote_with_an_engine(ollama, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", ollama.url)
    at = app("tour")
    at.radio[0].set_value(at.radio[0].options[3]).run()
    clean(at)
    button(at, "Run a live vote").click().run()
    clean(at)
    result = at.session_state["tour_vote"]
    assert result.asked == 9  # N = 9 by default; the vote may settle earlier
    assert result.tally.counted + result.tally.failed == result.drawn <= 9
    assert any("is **settled**" in m.value for m in at.markdown)
    tally = next(c for c in charts(at) if c["layout"]["title"]["text"] == "Vote tally")
    assert tally["data"][0]["type"] == "bar"


def test_report_download_after_the_k_sweep():
    at = app()
    at.file_uploader[0].set_value((SMALL.name, SMALL.read_bytes(), "text/csv")).run()
    at.switch_page("app_pages/evaluate.py").run()
    clean(at)
    assert not [d for d in at.get("download_button")
                if d.proto.label == "Download the report (HTML)"]
    next(b for b in at.button if b.label.startswith("Run the K sweep")).click().run()
    clean(at)
    (dl,) = [d for d in at.get("download_button") if d.proto.label ==
             "Download the report (HTML)"]
    assert dl.proto.url  # the file is served; the browser test opens it offline


def test_workers_stop_at_exit(tmp_path):
    """A worker still running when the process exits is stopped at its next progress step
    and waited for (one killed inside torch aborted pytest with exit code 134)."""
    import subprocess
    import sys

    marker = tmp_path / "stopped.txt"
    code = f"""
import time
from app_state import jobs

def work(progress):
    try:
        for i in range(10_000):
            progress(i, 10_000, "working")
            time.sleep(0.02)
    except jobs.Stopped:
        open({str(marker)!r}, "w").write("stopped")
        raise

jobs._start("exit-test", ("k",), work)
time.sleep(0.3)
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert marker.read_text() == "stopped"


def out_name(at):
    """The Calibrate page's output file name box."""
    return next(t for t in at.text_input if t.key and t.key.startswith("calibration_out"))


def test_vote_on_an_openai_compatible_server_shows_endpoint_and_thinking(monkeypatch):
    """Issue 10: the Vote page offers the backend and host; each sample names its endpoint
    and keeps its reasoning apart (collapsed), out of the vote."""
    script = ModelScript(replies=["#### 42"], thinking="6 * 7, is it 41? No: #### 42")
    # served under a demo table's own name, so the mapping is the identity
    with FakeOllama({"qwen2.5-7b-instruct": script}) as srv:
        monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{free_port()}")  # not used
        at = app("vote")
        at.selectbox(key="engine_backend").set_value("openai").run()
        next(t for t in at.text_input if t.label == "Server URL").set_value(srv.url).run()
        clean(at)
        next(b for b in at.selectbox if b.label == "Answer kind").set_value("number")
        button(at, "Run the vote").click().run()
        clean(at)
        result = at.session_state["vote_result"]
        sent = [r for r in srv.requests if r["path"] == "/v1/chat/completions"]
    assert sent and not result.cancelled
    assert result.tally.votes == {"42": result.tally.counted}
    assert {s.endpoint for s in result.samples} == {srv.url + "/v1"}
    assert all("41" in s.thinking for s in result.samples)
    assert any(srv.url in c.value for c in at.caption)
    assert any(e.label.startswith("Thinking (") for e in at.expander)


def test_device_setting_on_the_data_page(monkeypatch):
    """Issue 13: the embedder's device is a setting; a device that is not there is refused
    in one line and the earlier setting is kept."""
    import torch

    at = app()
    box = next(b for b in at.selectbox if b.label == "Device")
    assert box.value == "auto"
    if not torch.cuda.is_available():
        box.set_value("cuda").run()
        clean(at)
        assert "Device not changed" in at.error[0].value and "CUDA" in at.error[0].value
        assert at.session_state["device"] == "auto"
    next(b for b in at.selectbox if b.label == "Device").set_value("cpu").run()
    clean(at)
    assert at.session_state["device"] == "cpu"
    at.switch_page("app_pages/route.py").run()  # routing embeds on the chosen device
    clean(at)


def test_calibrate_with_an_uploaded_endpoints_file(monkeypatch):
    """Issue 10: an endpoints file uploaded on the page names the models it serves; a bad
    one is one line naming the file and the model, and nothing breaks."""
    with FakeOllama({"qwen2.5:7b-instruct": ModelScript()}) as srv:
        monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{free_port()}")  # down
        at = app("calibrate")
        upload = next(u for u in at.file_uploader if u.label.startswith("Endpoints file"))
        bad = b'[models.mine]\nurls = ["http://x"]\napi_key = "sk-1"\n'
        upload.set_value(("ep.toml", bad, "application/toml")).run()
        clean(at)
        shown = at.error[0].value.replace("\\", "")  # Markdown escapes
        assert "ep.toml, model 'mine': write the key in an environment variable" in shown
        good = (f'[models.mine]\nbackend = "openai"\nurls = ["{srv.url}/v1"]\n'
                'model = "qwen2.5:7b-instruct"\n').encode()
        upload = next(u for u in at.file_uploader if u.label.startswith("Endpoints file"))
        upload.set_value(("ep.toml", good, "application/toml")).run()
        clean(at)
    assert at.multiselect[0].options == ["mine"]
    assert any("cannot reach Ollama" in c.value for c in at.caption)  # the default is down
