"""Calibration: labeled question sets, grading, a resumable routing table written as we go."""

from __future__ import annotations

import json
import threading

import pytest

from avengers_core.backends.ollama import OllamaUnavailable
from avengers_core.calibrate.questions import Question, load_questions
from avengers_core.calibrate.run import THREAD_PREFIX, calibrate
from avengers_core.calibrate.store import calibration_table, read_done
from avengers_core.errors import InputError
from tests.support.fake_ollama import FakeOllama, ModelScript
from tests.support.net import free_port

QS = [
    Question("q1", "What is 6*7?", "#### 42", "number", "gsm8k"),
    Question("q2", "What is 40+1?", "41", "number", "gsm8k"),
    Question("q3", "Capital of France?", "C", "choice", "mmlu", ("Rome", "Oslo", "Paris")),
    Question("q4", "Who wrote Hamlet?", "Shakespeare", "text", "trivia_qa"),
]


@pytest.fixture
def srv():
    models = {
        "good": ModelScript(replies=["#### 42"]),
        "wise": ModelScript(replies=["Answer: C. The answer is Shakespeare.\n#### 41"]),
    }
    with FakeOllama(models) as s:
        yield s


def chats(srv) -> list[dict]:
    return [r for r in srv.requests if r["path"] == "/api/chat"]


def rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_demo_gsm8k_questions():
    qs = load_questions("gsm8k", limit=5)
    assert len(qs.questions) == 5
    q = qs.questions[0]
    assert q.kind == "number" and q.task == "gsm8k" and q.id == "gsm8k-1"
    assert q.answer.rstrip().endswith("#### 18")


def test_demo_llmrouter_questions_skip_ungradable_tasks():
    qs = load_questions("llmrouter")
    tasks = {q.task for q in qs.questions}
    assert "mmlu" in tasks and "gsm8k" in tasks
    assert not tasks & {"mbpp", "human_eval", "commongen"}
    assert "mbpp" in qs.notes[0]
    mmlu = next(q for q in qs.questions if q.task == "mmlu")
    assert mmlu.kind == "choice" and mmlu.choices and len(mmlu.choices) >= 2


def test_uploaded_jsonl_and_csv(tmp_path):
    j = tmp_path / "mine.jsonl"
    j.write_text(
        '{"question": "2+2?", "answer": "4"}\n'
        '\n'
        '{"question": "Pick", "answer": "B", "choices": ["x", "y"]}\n'
        '{"question": "Who?", "answer": "Ada Lovelace", "task": "trivia_qa", "id": "w"}\n'
    )
    qs = load_questions(j).questions
    assert [q.kind for q in qs] == ["number", "choice", "text"]
    assert qs[0].id == "mine-1" and qs[2].id == "w"
    c = tmp_path / "mine.csv"
    c.write_text('question,answer,choices\n"2+2?",4,\nPick,B,x|y\n')
    qs = load_questions(c).questions
    assert [q.kind for q in qs] == ["number", "choice"]
    assert qs[1].choices == ("x", "y")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.jsonl", '{"question": "a", "answer": "1"}\n{not json\n', "bad.jsonl, line 2: not"),
        ("noq.jsonl", '{"answer": "1"}\n', "line 1: expected a non-empty 'question'"),
        ("noa.csv", "question,answer\nhello,\n", "noa.csv, row 2: expected a non-empty 'answer'"),
        ("kind.jsonl", '{"question": "a", "answer": "1", "kind": "poem"}\n', "unknown kind 'poem'"),
        ("empty.jsonl", "", "empty file"),
        ("q.txt", "hello", "unsupported file type"),
        ("free.jsonl", '{"question": "a", "answer": "x", "kind": "free"}\n', "no gradable"),
    ],
)
def test_bad_question_files(tmp_path, name, content, message):
    p = tmp_path / name
    p.write_text(content)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_questions(p)


def test_not_utf8(tmp_path):
    p = tmp_path / "latin.jsonl"
    p.write_bytes(b'{"question": "caf\xe9", "answer": "1"}\n')
    with pytest.raises(InputError, match="not UTF-8"):
        load_questions(p)


def test_calibrate_grades_and_writes_table(srv, tmp_path):
    out = tmp_path / "t.jsonl"
    seen: list[tuple[int, int, str]] = []
    report = calibrate(QS, ["good", "wise"], out, client=srv.url,
                       progress=lambda d, t, m: seen.append((d, t, m)))
    got = {r["id"]: r["scores"] for r in rows(out)}
    assert got == {
        "q1": {"good": 1.0, "wise": 0.0},
        "q2": {"good": 0.0, "wise": 1.0},
        "q3": {"good": 0.0, "wise": 1.0},
        "q4": {"good": 0.0, "wise": 1.0},
    }
    assert report.accuracy() == {"good": 0.25, "wise": 0.75}
    assert seen[-1][:2] == (8, 8) and "wise" in seen[-1][2]
    assert {r["task"] for r in rows(out)} == {"gsm8k", "mmlu", "trivia_qa"}
    from avengers_core.data.readers import read_table

    table = read_table(out)
    assert table.models == ["good", "wise"] and len(table) == 4
    assert table.duplicates_merged == 0


def test_calibrate_resumes_after_interruption(srv, tmp_path):
    out = tmp_path / "t.jsonl"

    def boom(result, report):
        if report.ran == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        calibrate(QS, ["good", "wise"], out, client=srv.url, on_result=boom)
    assert len(rows(out)) == 3  # written as they arrived
    with open(out, "a") as f:
        f.write('{"query": "What is 40+1?", "sco')  # a write cut by the crash
    before = len(chats(srv))
    report = calibrate(QS, ["good", "wise"], out, client=srv.url)
    assert len(chats(srv)) - before == 5
    assert (report.resumed, report.ran) == (3, 5)
    assert report.accuracy() == {"good": 0.25, "wise": 0.75}
    assert len(rows(out)) == 4  # compacted: one row per question
    again = calibrate(QS, ["good", "wise"], out, client=srv.url)
    assert again.ran == 0 and len(chats(srv)) - before == 5


def test_failed_requests_are_not_written_and_retried(srv, tmp_path):
    out = tmp_path / "t.jsonl"
    srv.models["good"].fail = "http500"
    report = calibrate(QS[:2], ["good"], out, client=srv.url)
    assert len(report.errors) == 2 and "HTTP 500" in report.errors[0]
    assert read_done(out) == {}
    srv.models["good"].fail = None
    report = calibrate(QS[:2], ["good"], out, client=srv.url)
    assert report.ran == 2 and not report.errors


def test_concurrent_calibration_is_bounded_and_complete(srv, tmp_path):
    srv.models["good"].latency = 0.05
    qs = [Question(f"n{i}", f"What is {i}+42-{i}?", "42", "number") for i in range(9)]
    report = calibrate(qs, ["good"], tmp_path / "t.jsonl", client=srv.url, concurrency=3)
    assert report.ran == 9 and report.accuracy() == {"good": 1.0}
    assert 1 <= srv.max_in_flight <= 3
    assert len(rows(tmp_path / "t.jsonl")) == 9


def test_interrupt_leaves_no_request_running(srv, tmp_path):
    srv.models["good"].latency = 0.2
    out = tmp_path / "t.jsonl"

    def stop(result, report):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        calibrate(QS, ["good"], out, client=srv.url, concurrency=3, on_result=stop)
    assert not [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]
    assert len(rows(out)) == 1


def test_cancel_stops_between_questions(srv, tmp_path):
    out = tmp_path / "t.jsonl"
    stop = threading.Event()

    def on_result(result, report):
        stop.set()

    report = calibrate(QS, ["good"], out, client=srv.url, on_result=on_result, cancel=stop)
    assert report.cancelled and report.ran == 1 and len(rows(out)) == 1


def test_missing_model_is_reported_before_sampling(srv, tmp_path):
    with pytest.raises(InputError, match="nope:1b"):
        calibrate(QS, ["good", "nope:1b"], tmp_path / "t.jsonl", client=srv.url)
    assert chats(srv) == []


def test_unreachable_host(tmp_path):
    with pytest.raises(OllamaUnavailable):
        calibrate(QS, ["good"], tmp_path / "t.jsonl", client=f"127.0.0.1:{free_port()}")


def test_corrupt_table_line_is_an_input_error(tmp_path):
    out = tmp_path / "t.jsonl"
    out.write_text('{"query": "a", "scores": {"m": 1}}\nnot json\n{"query": "b", "scores": {}}\n')
    with pytest.raises(InputError, match="line 2"):
        read_done(out)


def test_rows_from_another_host_are_refused_not_reused(srv, tmp_path):
    out = tmp_path / "t.jsonl"
    calibrate(QS[:2], ["good"], out, client=srv.url)
    assert {r["host"] for r in rows(out)} == {srv.url}
    with FakeOllama({"good": ModelScript(replies=["#### 1"])}) as other:
        with pytest.raises(InputError, match="another file"):
            calibrate(QS[:2], ["good"], out, client=other.url)
        assert not chats(other)  # no answer was asked for, none reused


def test_calibration_table_keeps_only_the_chosen_questions_and_models(srv, tmp_path):
    out = tmp_path / "t.jsonl"
    calibrate(QS, ["good", "wise"], out, client=srv.url)
    table = calibration_table(out, QS[:2], ["wise"])
    assert table.queries == [QS[0].question, QS[1].question] and table.models == ["wise"]
    assert table.scores.shape == (2, 1)
    with pytest.raises(InputError, match="no graded answer"):
        calibration_table(out, QS[:1], ["other"])


ROW_A = '{"query": "a", "scores": {"m": 1.0}}\n'
ROW_B = '{"query": "b", "scores": {"m": 0.0}}\n'


def test_a_cut_last_line_is_dropped_and_appending_continues(tmp_path):
    out = tmp_path / "t.jsonl"
    out.write_text(ROW_A + ROW_B + '{"query": "c", "sco')
    assert read_done(out) == {"a": {"m": 1.0}, "b": {"m": 0.0}}
    assert out.read_text() == ROW_A + ROW_B
    with open(out, "a") as f:
        f.write('{"query": "c", "scores": {"m": 1.0}}\n')
    assert sorted(read_done(out)) == ["a", "b", "c"]


def test_a_row_cut_just_before_its_newline_is_kept(tmp_path):
    out = tmp_path / "t.jsonl"
    out.write_text(ROW_A + ROW_B.rstrip("\n"))
    assert sorted(read_done(out)) == ["a", "b"]
    assert out.read_text() == ROW_A + ROW_B  # terminated: the next row starts on its own line
    with open(out, "a") as f:
        f.write('{"query": "c", "scores": {"m": 1.0}}\n')
    assert sorted(read_done(out)) == ["a", "b", "c"]


def test_a_bad_complete_last_line_is_not_silently_deleted(tmp_path):
    out = tmp_path / "t.jsonl"
    out.write_text(ROW_A + "not a row\n")
    with pytest.raises(InputError, match="line 2"):
        read_done(out)
    assert out.read_text() == ROW_A + "not a row\n"


def test_compaction_failing_midway_keeps_the_file(tmp_path, monkeypatch):
    from avengers_core.calibrate import store as cal

    out = tmp_path / "t.jsonl"
    out.write_text(ROW_A + ROW_B + '{"query": "a", "scores": {"n": 0.0}}\n')
    before = out.read_bytes()
    real = json.dumps

    def failing(obj, **kw):
        if obj.get("query") == "b":
            raise OSError("disk full")
        return real(obj, **kw)

    monkeypatch.setattr(cal.json, "dumps", failing)
    with pytest.raises(OSError, match="disk full"):
        cal.compact(out)
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["t.jsonl"]
    monkeypatch.setattr(cal.json, "dumps", real)
    cal.compact(out)
    assert read_done(out) == {"a": {"m": 1.0, "n": 0.0}, "b": {"m": 0.0}}


def test_two_runs_on_one_file_are_refused(srv, tmp_path):
    out = tmp_path / "t.jsonl"
    started, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hold(result, report):
        started.set()
        release.wait(30)

    def first():
        try:
            calibrate(QS[:2], ["good"], out, client=srv.url, on_result=hold)
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    t = threading.Thread(target=first)
    t.start()
    try:
        assert started.wait(30)
        with pytest.raises(InputError, match="another calibration is writing"):
            calibrate(QS[:2], ["wise"], out, client=srv.url)
    finally:
        release.set()
        t.join(30)
    assert not errors
    report = calibrate(QS[:2], ["wise"], out, client=srv.url)  # free again once it ended
    assert report.ran == 2 and {r["query"] for r in rows(out)} == {q.question for q in QS[:2]}


def test_another_files_unterminated_last_line_is_never_truncated(tmp_path):
    out = tmp_path / "notes.jsonl"
    out.write_text("my own notes, no newline at the end")
    with pytest.raises(InputError, match="line 1"):
        read_done(out)
    assert out.read_text() == "my own notes, no newline at the end"
