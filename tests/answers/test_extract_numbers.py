"""Issue 22, answers: dash forms of minus and approximate results are read as stated."""

from __future__ import annotations

import pytest

from avengers_core.answers.extract import canonical_number, extract, extract_with_reason
from avengers_core.vote.tally import Sample, count_votes


@pytest.mark.parametrize("dash", ["\u2013", "\u2012", "\u2014", "\u2212"])
def test_dash_before_a_number_is_minus(dash):
    reply = f"2 {dash} 9 = {dash}7 #### {dash}7"
    assert extract(reply, "number") == "-7"
    assert extract(f"So the answer is {dash}7.", "number") == "-7"
    assert extract(f"The answer is \\boxed{{{dash}3.5}}", "number") == "-3.5"
    assert canonical_number(f"{dash}12") == "-12"


def test_en_dash_replies_vote_for_the_negative_number():
    replies = ["2 \u2013 9 = \u20137 #### \u20137"] * 4 + ["#### 7"]
    samples = []
    for i, text in enumerate(replies):
        s = Sample(i, "m", 0, i, text=text, arrival=i)
        s.answer = extract(text, "number")
        samples.append(s)
    tally = count_votes(samples, "number")
    assert tally.winner == "-7" and tally.votes["-7"] == 4


def test_dash_as_punctuation_is_not_minus():
    assert extract("The total \u2014 42 apples.", "number") == "42"
    assert extract("Pages 2\u20139 cover it; the answer is 5.", "number") == "5"
    assert extract("The answer\u201442.", "number") == "42"


@pytest.mark.parametrize("reply", [
    "So the answer is 42 + 82 \u2248 124.",
    "So the answer is 42 + 82 ~ 124.",
    "So the answer is 42 + 82 = about 124.",
    "So the answer is 42 + 82, about 124.",
    "The answer is 42 + 82 \u2248 124 apples.",
    "Answer: 42 + 82 approximately 124",
    "The answer is about 124.",
    "The answer is ~124.",
])
def test_approximate_chain_states_its_last_number(reply):
    assert extract_with_reason(reply, "number") == ("124", None)

