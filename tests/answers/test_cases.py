"""Issue 11, case by case: each reported input gives the right value, through the Python API
or the CLI (`avengers vote` / `avengers calibrate` against the fake Ollama server)."""

from __future__ import annotations

import json

import pytest

from avengers_core.answers.extract import extract, extract_with_reason, offered_letters
from avengers_core.answers.grading import gold_answer, is_correct
from avengers_core.backends.model_names import (
    find_listed,
    map_models,
    pick_local_models,
    same_model,
    suggest_tag,
)
from avengers_core.backends.ollama import OllamaBackend, OllamaUnavailable
from avengers_core.calibrate.questions import load_questions
from avengers_core.cli import main
from avengers_core.data.readers import read_table, sniff_delimiter
from avengers_core.errors import InputError
from avengers_core.vote.tally import Sample, count_votes
from tests.support.fake_ollama import FakeOllama, ModelScript
from tests.support.profiles import MATH, build_profile


def vote(replies: list[str], kind: str, choices: list[str] | None = None):
    samples = []
    for i, text in enumerate(replies):
        s = Sample(i, "m", 0, i, text=text, arrival=i)
        s.answer = extract(text, kind, choices)
        samples.append(s)
    return count_votes(samples, kind)


# -- reasoning before a lone </think> ----------------------------------------------------

R1 = [
    "Natalia sold 48 clips in April and half as many in May...\nso the answer is 24.\n"
    "</think>\n\nShe sold **72** clips.",
] * 3 + ["48 / 2 = 24 in May, 48 + 24 = 72 in all.\n</think>\n\n#### 72"] * 2


def test_reasoning_before_a_lone_close_tag_is_dropped():
    tally = vote(R1, "number")
    assert tally.winner == "72"
    assert tally.votes == {"72": 5}
    assert tally.confidence == 1.0


def test_unclosed_reasoning_is_no_answer_with_its_reason():
    assert extract_with_reason("<think>48 / 2 = 24, so far the answer is 24", "number") == (
        None,
        "reasoning cut off",
    )
    assert extract_with_reason("<think>maybe B", "choice", ["x", "y"]) == (None,
                                                                          "reasoning cut off")


def test_r1_vote_through_the_cli(tmp_path, monkeypatch, capsys):
    models = {"qwen2.5:7b-instruct": ModelScript(replies=R1), "nomic-embed-text": ModelScript()}
    with FakeOllama(models) as srv:
        monkeypatch.setenv("AVENGERS_CACHE_DIR", str(tmp_path / "cache"))
        profile = build_profile(srv.url, tmp_path / "profile")
        code = main(["vote", str(profile), MATH[0], "--host", srv.url, "--samples", "5",
                     "--kind", "number", "--json", "--early-stop", "off"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (out["answer"], out["votes"], out["confidence"]) == ("72", {"72": 5}, 1.0)


def test_math_verify_runs_in_worker_threads_with_bounded_work():
    """Votes extract in worker threads, where math-verify's SIGALRM timeout cannot work: the
    span is capped and power towers are refused instead of evaluated forever."""
    from concurrent.futures import ThreadPoolExecutor

    replies = ["#### 3/4", "\\boxed{\\frac{1}{3}}", "\\boxed{9^{9^{9}}}", "\\boxed{2^{100000}}",
               "#### " + "1+" * 5000 + "1"]
    with ThreadPoolExecutor(2) as pool:
        got = list(pool.map(lambda r: extract_with_reason(r, "number"), replies))
    assert got[:4] == [("0.75", None), ("1/3", None), (None, "unparsable in time"),
                       (None, "unparsable in time")]
    assert got[4] == ("1", None)  # the first number of a 10,000-character line


# -- wrapped letters after repeated options ----------------------------------------------

GASES = ["Oxygen", "Nitrogen", "Argon", "Helium"]
LISTED = "Let me look at each option:\nA. Oxygen\nB. Nitrogen\nC. Argon\nD. Helium\n\n"


@pytest.mark.parametrize("ending", ["Answer: **B**", "**Answer:** **B**", "Answer: *B*"])
def test_wrapped_letter_after_repeated_options(ending):
    assert extract(LISTED + ending, "choice", GASES) == "B"
    query = "Which gas makes up most of the air?\n" + LISTED.split("\n", 1)[1]
    assert extract_with_reason(LISTED + ending, "choice", query=query) == ("B", None)


def test_only_offered_letters_count():
    assert offered_letters(GASES) == "ABCD"
    assert offered_letters(query="Pick one.\n(A) red\n(B) blue\n(C) green") == "ABC"
    assert offered_letters(query="Pick one.\nA) red\nB) blue") == "AB"
    assert extract_with_reason("Answer: E", "choice", GASES) == (None, "no offered letter found")
    assert extract("Answer: I think it is not listed", "choice", GASES) is None
    assert extract("I would say A cat is not a gas.", "choice", GASES) is None
    assert extract("The answer is Argon, a noble gas.", "choice", GASES) == "C"


# -- plain fractions ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "key"),
    [
        ("#### 3/4", "0.75"),
        ("#### 3 / 4", "0.75"),
        ("The answer is 1/2.", "0.5"),
        ("\\boxed{3/4}", "0.75"),
        ("\\boxed{\\frac34}", "0.75"),
        ("So the result is $\\frac{3}{4}$.", "0.75"),
    ],
)
def test_plain_fractions(reply, key):
    assert extract(reply, "number") == key


def test_one_value_one_vote_key():
    tally = vote(["#### 3/4", "#### 3 / 4", "\\boxed{3/4}", "The answer is 0.75.",
                  "#### 4"], "number")
    assert tally.votes == {"0.75": 4, "4": 1}


# -- unicode minus -----------------------------------------------------------------------


def test_unicode_minus():
    assert extract("#### \u22125", "number") == "-5"
    tally = vote(["\\boxed{\u22125}", "#### -5", "The answer is \u22125.", "#### 5"], "number")
    assert tally.votes == {"-5": 3, "5": 1}


# -- abbreviations in short answers ------------------------------------------------------


def test_abbreviations_do_not_end_a_short_answer():
    assert extract("The answer is St. Louis.", "text") == "st louis"
    tally = vote(["The answer is St. Louis.", "The answer is St. Paul.",
                  "The answer is St. Louis. It lies on the Mississippi."], "text")
    assert tally.votes == {"st louis": 2, "st paul": 1}
    assert extract("The answer is J. K. Rowling. She wrote it.", "text") == "j k rowling"
    assert extract("The answer is vitamin C. It is in oranges.", "text") == "vitamin c"
    assert is_correct("The answer is St. Louis.", "Saint Louis", "text") is False
    assert is_correct("The answer is St. Louis, Missouri.", "St Louis", "text")


# -- integer gold index for choices ------------------------------------------------------


def mmlu_row(answer: object, **extra: str) -> str:
    return json.dumps({"question": "Which is a noble gas?", "answer": answer,
                       "choices": ["Oxygen", "Nitrogen", "Argon", "Hydrogen"], **extra}) + "\n"


def test_integer_gold_is_a_zero_based_index(tmp_path):
    path = tmp_path / "mmlu.jsonl"
    path.write_text(mmlu_row(2))
    (q,) = load_questions(path).questions
    assert (q.kind, q.answer) == ("choice", "C")
    assert is_correct("Answer: C", q.answer, q.kind, q.choices)
    assert not is_correct("Answer: B", q.answer, q.kind, q.choices)
    assert gold_answer("Argon", "choice", q.choices) == "C"


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (4, "line 1: answer index 4 is outside the 4 choices"),
        (-1, "line 1: answer index -1 is outside the 4 choices"),
        ("Neon", "line 1: answer 'Neon' is not a letter, a 0-based index or one of the choices"),
        (True, "line 1: expected 'answer' to be a letter, an option's text or a 0-based index"),
    ],
)
def test_a_gold_that_names_no_option_is_refused(tmp_path, answer, message):
    path = tmp_path / "mmlu.jsonl"
    path.write_text(mmlu_row(answer, task="mmlu"))
    with pytest.raises(InputError, match=message):
        load_questions(path)


def test_calibrate_cli_grades_an_index_gold(tmp_path, capsys):
    questions = tmp_path / "mmlu.jsonl"
    questions.write_text(mmlu_row(2))
    out = tmp_path / "table.jsonl"
    models = {"llama3.2:latest": ModelScript(replies=["Argon is inert.\nAnswer: C"])}
    with FakeOllama(models) as srv:
        code = main(["calibrate", str(questions), "--models", "llama3.2", "--out", str(out),
                     "--host", srv.url])
    assert code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["scores"] for r in rows] == [{"llama3.2:latest": 1.0}]
    assert "100.0%  llama3.2:latest" in capsys.readouterr().out


def test_calibrate_cli_refuses_an_index_outside_the_choices(tmp_path, capsys):
    questions = tmp_path / "mmlu.jsonl"
    questions.write_text(mmlu_row(7))
    code = main(["calibrate", str(questions), "--models", "m", "--out", str(tmp_path / "t")])
    assert code == 2
    assert "mmlu.jsonl, line 1: answer index 7 is outside the 4 choices" in capsys.readouterr().err


# -- implicit :latest and organisation prefixes -----------------------------------------


def test_implicit_latest():
    local = ["llama3.2:latest", "qwen2.5:7b-instruct"]
    assert same_model("llama3.2", "llama3.2:latest")
    assert not same_model("llama3.2", "llama3.2:1b")
    assert find_listed("llama3.2", local) == "llama3.2:latest"
    assert map_models(["llama-3.2-3b"], local, {"llama-3.2-3b": "llama3.2"}) == {
        "llama-3.2-3b": "llama3.2:latest"
    }
    chosen, notes = pick_local_models(["llama-3.2-3b"], local, 1, {"llama-3.2-3b": "llama3.2"})
    assert (chosen, notes) == (["llama3.2:latest"], [])


@pytest.mark.parametrize(
    ("name", "tag"),
    [
        ("Qwen/Qwen2.5-7B-Instruct", "qwen2.5:7b-instruct"),
        ("meta-llama/Llama-3.1-8B-Instruct", "llama3.1:8b-instruct"),
        ("mistralai/Mistral-7B-Instruct-v0.3", "mistral:7b-instruct-v0.3"),
        ("meta/llama-2-70b-chat", "llama2:70b-chat"),
        ("Qwen/Qwen2.5-72B-Instruct", None),  # the size must agree
    ],
)
def test_organisation_prefixes(name, tag):
    local = ["qwen2.5:7b-instruct", "llama3.1:8b-instruct", "mistral:7b-instruct-v0.3",
             "llama2:70b-chat", "llama3.2:latest"]
    assert suggest_tag(name, local) == tag


# -- European CSV ------------------------------------------------------------------------


def test_semicolon_csv_with_decimal_commas(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text('query;m1;m2\nWhat is 2+2?;1;0,5\n"Paris; or Rome?";0;1\n')
    assert sniff_delimiter(path.read_text()) == ";"
    table = read_table(path)
    assert table.queries == ["What is 2+2?", "Paris; or Rome?"]
    assert table.models == ["m1", "m2"]
    assert table.scores.tolist() == [[1.0, 0.5], [0.0, 1.0]]


def test_a_query_with_a_decimal_comma_is_kept_as_written(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("query;m1\n2,5;0,25\n")
    table = read_table(path)
    assert (table.queries, table.scores.tolist()) == (["2,5"], [[0.25]])


def test_a_mixed_separator_file_is_said_to_be_semicolon_separated(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("query,m1;m2\nWhat is 2+2?,1,0.5\n")
    with pytest.raises(InputError, match=r"line 2: 3 cells .* is the file ;-separated"):
        read_table(path)


# -- /v1 pasted as an Ollama host --------------------------------------------------------


def test_v1_path_as_ollama_host_names_the_openai_path():
    with FakeOllama({"m": ModelScript()}) as srv:
        with pytest.raises(OllamaUnavailable, match="is an OpenAI-compatible path") as err:
            OllamaBackend(srv.url + "/v1").list_models()
    assert "--backend openai, or drop /v1" in str(err.value)
    assert "ollama serve" not in str(err.value)
