"""Issue 22, long queries: a query past the embedder's window is counted and said by `fit`,
`route`, `vote`, `serve` and the app's Data page, never cut silently."""

from __future__ import annotations

import json

import pytest

from avengers_core.cli import main
from avengers_core.embed.local import SentenceTransformerEmbedder
from avengers_core.embed.window import CutReport, cut_report, query_note
from tests.routing.test_effective_k import CaseBlindEmbedder
from tests.support.fake_ollama import FakeOllama, ModelScript
from tests.support.profiles import MATH, build_profile
from tests.support.serve_util import clients, serving

PREAMBLE = " ".join(["Consider the following background carefully."] * 90)  # ~500 words
LIMIT = 16


class WindowedEmbedder(CaseBlindEmbedder):
    """A fake embedder with a window of LIMIT whitespace tokens (plus 2 special ones)."""

    def window(self):
        return LIMIT, lambda texts: [len(t.split()) + 2 for t in texts]


def words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


def test_minilm_counts_from_its_own_tokenizer_without_loading_the_model():
    emb = SentenceTransformerEmbedder("minilm")
    texts = ["What is 2 + 2?", PREAMBLE + " What is 2 + 2?", PREAMBLE + " Who wrote Hamlet?",
             "short"]
    report = cut_report(emb, texts)
    assert emb._loaded is None  # counting never loads the model (about 10 s)
    assert report.limit == 256 and report.total == 4 and report.cut == 2
    assert report.rows == (1, 2) and report.longest > 256
    note = report.note()
    assert note.startswith("2 of 4 queries are longer than the embedder's window of 256 tokens")
    assert f"the longest has {report.longest:,}" in note and "docs/ENGINES.md" in note
    assert query_note(emb, texts[0]) is None
    assert "the first 256" in query_note(emb, texts[1])


def test_minilm_count_matches_what_sentence_transformers_feeds_the_model():
    emb = SentenceTransformerEmbedder("minilm", device="cpu")
    texts = ["Ünïcödé text, with punctuation!", "x " * 300, PREAMBLE, "数学 问题 " * 60]
    folder = cut_report(emb, texts)
    features = emb._model.tokenize(texts)  # the model's own tokenisation, cut at its window
    fed = features["attention_mask"].sum(dim=1).tolist()
    assert emb._model.max_seq_length == folder.limit
    cut = tuple(i for i, n in enumerate(fed) if n == folder.limit)
    assert folder.rows == cut  # the texts the model receives whole are the ones not counted


def test_unknown_window_reports_nothing():
    assert cut_report(CaseBlindEmbedder(), ["x " * 10_000]) is None
    assert query_note(CaseBlindEmbedder(), "x " * 10_000) is None
    assert CutReport(256, 10, 0, 0).note() is None


@pytest.fixture
def windowed(monkeypatch, tmp_path):
    monkeypatch.setenv("AVENGERS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr("avengers_core.embed.load.get_embedder",
                        lambda name="minilm", **_: WindowedEmbedder(name))


def test_fit_reports_cut_queries_and_route_notes_a_cut_query(tmp_path, windowed, capsys):
    rows = [{"query": f"question {i} " + (words(30) if i % 10 == 0 else "short"),
             "scores": {"a": float(i % 2), "b": 1.0}} for i in range(30)]
    table = tmp_path / "long.jsonl"
    table.write_text("\n".join(json.dumps(r) for r in rows))
    assert main(["fit", str(table), "--out", str(tmp_path / "p"), "--k", "2"]) == 0
    err = capsys.readouterr().err
    assert ("note: 3 of 30 queries are longer than the embedder's window of 16 tokens and "
            "embedded from their start only (the longest has 34)") in err
    assert main(["route", str(tmp_path / "p"), words(40), "--json"]) == 0
    cap = capsys.readouterr()
    notes = json.loads(cap.out)["notes"]
    assert notes == [query_note(WindowedEmbedder(), words(40))]
    assert notes[0].startswith("the query is 42 tokens long; the embedder reads only the "
                               "first 16")
    assert f"note: {notes[0]}" in cap.err
    assert main(["route", str(tmp_path / "p"), "short one", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["notes"] == []


def _long_window(monkeypatch):
    monkeypatch.setattr("avengers_core.embed.window.window",
                        lambda emb: (LIMIT, lambda texts: [len(t.split()) + 2 for t in texts]))


def test_vote_notes_a_cut_query(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AVENGERS_CACHE_DIR", str(tmp_path / "cache"))
    models = {"qwen2.5:7b-instruct": ModelScript(replies=["#### 42"]),
              "llama3.1:8b": ModelScript(replies=["The answer is 41."]),
              "nomic-embed-text": ModelScript()}
    with FakeOllama(models) as srv:
        profile = build_profile(srv.url, tmp_path / "profile")
        _long_window(monkeypatch)
        query = MATH[0] + " " + words(30)
        assert main(["vote", str(profile), query, "--host", srv.url, "--samples", "2",
                     "--json"]) == 0
    cap = capsys.readouterr()
    note = json.loads(cap.out)["notes"]
    assert len(note) == 1 and note[0].startswith("the query is 4")
    assert f"note: {note[0]}" in cap.err


def test_serve_notes_a_cut_query_in_the_avengers_field(tmp_path, monkeypatch):
    monkeypatch.setenv("AVENGERS_CACHE_DIR", str(tmp_path / "cache"))
    models = {"qwen2.5:7b-instruct": ModelScript(replies=["#### 42"]),
              "llama3.1:8b": ModelScript(replies=["The answer is 41."]),
              "nomic-embed-text": ModelScript()}
    with FakeOllama(models) as srv:
        profile = build_profile(srv.url, tmp_path / "profile")
        _long_window(monkeypatch)
        with serving([str(profile), "--host", srv.url, "--samples", "2"]) as url:
            oai = clients(url, 60)[0]
            long_q = MATH[0] + " " + words(30)
            for model in ("avengers", "avengers-route"):
                res = oai.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": long_q}])
                notes = res.model_extra["avengers"]["notes"]
                assert len(notes) == 1 and "the first 16" in notes[0], notes
            res = oai.chat.completions.create(
                model="avengers", messages=[{"role": "user", "content": MATH[0]}])
            assert res.model_extra["avengers"]["notes"] == []


def test_the_note_points_to_a_docs_section_that_exists():
    from pathlib import Path

    from avengers_core.embed.window import DOCS

    path, heading = DOCS.split(", ", 1)
    text = (Path(__file__).resolve().parents[2] / path).read_text(encoding="utf-8")
    assert f"## {heading.strip(chr(34))}\n" in text
