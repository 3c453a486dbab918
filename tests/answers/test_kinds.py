"""Issue 19, item 1 (fixed in issue 18): a query that offers no options is never voted as
`choice`, whatever task its cluster has; one that offers options is."""

from __future__ import annotations

import pytest

from avengers_core.answers.kinds import answer_kind
from avengers_core.pipeline import plan_vote
from avengers_core.routing.routers.base import RouteResult

STARRY = "Who painted The Starry Night?"
OFFERS = "Who painted The Starry Night?\nA) Monet\nB) Van Gogh\nC) Degas"


@pytest.mark.parametrize("task", ["openbook_qa", "mmlu", "commonsense_qa", None])
def test_a_query_without_options_is_never_choice(task):
    assert answer_kind(STARRY, task) != "choice"
    assert answer_kind(OFFERS, task) == "choice"
    assert answer_kind(STARRY, task, choices=["Monet", "Van Gogh"]) == "choice"


def test_the_vote_plan_of_an_openbook_cluster_without_options_is_not_choice():
    route = RouteResult(cluster=0, clusters=[{"id": 0, "p": 1.0, "similarity": 0.9}],
                        scores={"m": 0.5}, models=["m"], ranking=["m"], task="openbook_qa")
    assert plan_vote(STARRY, route, ["m"]).kind == "text"
    assert plan_vote(OFFERS, route, ["m"]).kind == "choice"


def test_vote_page_default_kind_for_a_question_without_options(monkeypatch):
    from tests.app.test_pages import app, clean
    from tests.support.fake_ollama import FakeOllama, demo_models

    with FakeOllama(demo_models()) as srv:
        monkeypatch.setenv("OLLAMA_HOST", srv.url)
        at = app("vote")
        at.text_area[0].set_value(STARRY).run()
        clean(at)
    kind = next(b for b in at.selectbox if b.label == "Answer kind")
    assert kind.value != "choice"
