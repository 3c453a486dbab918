"""One canonical vote key per answer (issue 11): equivalent forms of one answer always get the
same key, different values never share one, and grading compares the same keys."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from avengers_core.answers.extract import canonical_number, extract, normalize_text
from avengers_core.answers.grading import gold_answer, is_correct
from avengers_core.answers.kinds import LETTERS

fractions = st.builds(Fraction, st.integers(-999, 999), st.integers(1, 60))


def forms(value: Fraction) -> list[str]:
    """Ways a model writes one number (as GSM8K, LaTeX, markdown and plain sentences do)."""
    p, q = value.numerator, value.denominator
    minus = "\u2212" if p < 0 else ""
    out = [
        f"#### {p}/{q}" if q > 1 else f"#### {p}",
        f"#### {p} / {q}" if q > 1 else f"#### {p:,}",
        f"\\boxed{{\\frac{{{p}}}{{{q}}}}}",
        f"So the answer is {p}/{q}." if q > 1 else f"So the answer is {p}.",
        f"Work...\n\nThe final answer is $\\boxed{{{minus}{abs(p)}/{q}}}$",
        f"#### {minus}{abs(p)}/{q}",
    ]
    if q == 1:
        out += [f"Thus **{p}.0**\n\n**Answer:** {p}", f"It comes to {p} in all."]
    elif (q & (q - 1)) == 0 or 1000 % q == 0:  # a terminating decimal
        out.append(f"#### {float(value)}")
    return out


@settings(deadline=None, max_examples=60)
@given(fractions)
def test_equivalent_number_forms_share_one_key(value):
    keys = {text: extract(text, "number") for text in forms(value)}
    assert len(set(keys.values())) == 1, keys
    key = next(iter(keys.values()))
    assert key is not None
    assert canonical_number(key) == key  # the key is itself in canonical form


@settings(deadline=None, max_examples=60)
@given(fractions, fractions)
def test_different_values_never_share_a_key(a, b):
    ka, kb = extract(f"#### {a}", "number"), extract(f"#### {b}", "number")
    assert (ka == kb) == (a == b)


@settings(deadline=None, max_examples=40)
@given(fractions, fractions)
def test_grading_compares_the_vote_keys(reply_value, gold_value):
    reply = f"Some steps.\n#### {reply_value}"
    gold = f"The worked solution.\n#### {gold_value}"
    same = extract(reply, "number") == gold_answer(gold, "number")
    assert is_correct(reply, gold, "number") == same == (reply_value == gold_value)


CHOICE_FORMS = [
    "Answer: {}",
    "**Answer:** **{}**",
    "Answer: *{}*",
    "The correct option is ({})",
    "Final answer: \\boxed{{{}}}",
    "({}) is the one.",
    "So: **({})**",
    "{}",
]


@settings(deadline=None)
@given(st.integers(2, 10).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))),
       st.lists(st.sampled_from(CHOICE_FORMS), min_size=2, max_size=4))
def test_equivalent_choice_forms_share_one_key(n_and_index, templates):
    n, index = n_and_index
    options = [f"option number {i}" for i in range(n)]
    letter = LETTERS[index]
    listed = "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(options))
    replies = [f"Looking at the options:\n{listed}\n\n{t.format(letter)}" for t in templates]
    assert {extract(r, "choice", options) for r in replies} == {letter}
    assert all(is_correct(r, letter, "choice", options) for r in replies)


words = st.lists(st.text("abcdefghijklmnopqrstuvwxyz", min_size=3, max_size=8),
                 min_size=1, max_size=3).map(" ".join).filter(lambda s: normalize_text(s) == s)


@settings(deadline=None)
@given(words)
def test_equivalent_short_text_forms_share_one_key(answer):
    title = answer.title()
    replies = [f"The answer is {title}.", f"**Answer:** {title}", f"{title}",
               f"The answer is the {answer}!", f"Answer: {answer.upper()}.\nIt is well known."]
    keys = {extract(r, "text") for r in replies}
    assert keys == {normalize_text(answer)}
