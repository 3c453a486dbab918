"""Issue 22 in the app: the Data page counts the queries past the embedder's window, and the
sidebar says when near-duplicate queries left fewer clusters than the K asked for."""

from __future__ import annotations

import pytest

from tests.app.test_pages import app, clean, k_of
from tests.routing.test_effective_k import QUESTIONS

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    from tests.app.test_pages import ROOT

    monkeypatch.setenv("AVENGERS_UMAP", "0")
    monkeypatch.setenv("AVENGERS_CALIBRATION_DIR", str(tmp_path / "calibration"))
    monkeypatch.chdir(ROOT)


def test_data_page_counts_the_demo_queries_past_the_window():
    at = app()
    captions = [c.value for c in at.caption]
    cut = [c for c in captions if "longer than the embedder's window of 256 tokens" in c]
    assert len(cut) == 1, captions
    assert cut[0].split(" of ")[1].startswith("5,989 queries are"), cut[0]
    assert int(cut[0].split(" ")[0].replace(",", "")) > 0


def test_sidebar_says_the_effective_k_of_near_duplicate_queries():
    at = app()
    rows = []
    for qi, q in enumerate(QUESTIONS):  # 8 case and spacing variants of 5 questions
        for v in (q, q.upper(), q.lower(), " " + q, q.replace(" ", "  "), q + " ",
                  q.title(), q.swapcase()):
            rows.append(f"\"{v}\",t{qi},{qi % 2},{1 - qi % 2}\n")
    data = ("query,task,m1,m2\n" + "".join(rows)).encode()
    at.file_uploader[0].set_value(("dups.csv", data, "text/csv")).run()
    clean(at)
    asked = k_of(at)
    assert asked > 5
    at.switch_page("app_pages/clusters.py").run()
    clean(at)
    side = [m.value for m in at.sidebar.markdown]
    assert any(v.startswith("**Profile** K = 5,") for v in side), side
    notes = [c.value for c in at.sidebar.caption if "ffective K" in c.value]
    assert notes and notes[0].startswith(f"Effective K = 5 of the {asked} asked"), notes
