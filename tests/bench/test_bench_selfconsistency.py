"""The self-consistency bench part (issue 23): its labeled set, replay and report."""

from __future__ import annotations

import pytest

from bench.bench_selfconsistency import questions, replay, section, summarise, wilson


def test_the_labeled_set_is_seeded_distinct_and_right():
    qs = questions(100)
    assert qs == questions(100) and len(set(qs)) == 100
    for q, gold in qs:
        a, op, b = q.split()
        assert str(int(a) + int(b) if op == "+" else int(a) - int(b)) == gold
        assert int(gold) >= 0


def test_wilson_interval():
    lo, hi = wilson(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)
    assert wilson(0, 10)[0] == 0.0


def test_replay_applies_the_rules_after_each_sample():
    six_four = ["42"] * 6 + ["41"] * 4
    assert replay(six_four, 10, "off") == ("42", 10)
    assert replay(six_four, 10, "decided") == ("42", 6)
    assert replay(six_four, 10, "confident") == ("42", 4)
    assert replay(["1", None, "2"], 3, "off") == ("1", 3)  # no answer does not vote


def _row(q: str, gold: str, direct: str, answers: list, live: bool) -> dict:
    row = {"question": q, "gold": gold, "direct": direct, "answers": answers, "errors": 0,
           "off": {"answer": replay(answers, 10, "off")[0], "drawn": 10, "wall_s": 2.0}}
    if live:
        for rule in ("decided", "confident"):
            a, n = replay(answers, 10, rule)
            row[f"live_{rule}"] = {"answer": a, "drawn": n, "wall_s": 0.2 * n,
                                   "stopped": rule}
    return row


def test_the_report_states_accuracy_samples_and_the_goal():
    rows = [_row("1 + 1", "2", "2", ["2"] * 10, True),
            _row("2 + 2", "4", "5", ["4", "5"] * 5, True),
            _row("3 + 3", "6", "6", ["7"] * 10, False)]
    res = {"questions": 3, "planned": 100, "budget_s": 2700, "seed": 23, "samples": 10,
           "live": 2, "max_tokens": 16, "temperature": 0.7, "confidence": 0.95,
           "prompt": "What is {q}?", "rows": rows,
           "simulated": [{"model": "m", "accuracy": 0.5, "off": 10.0, "decided": 8.2,
                          "confident": 8.0}]}
    s = summarise(res)
    assert s["direct"]["correct"] == 2 and s["sc10"]["correct"] == 2
    assert s["rules"]["decided"]["same_as_off"] == 3
    assert s["rules"]["decided"]["drawn"] == pytest.approx((6 + 10 + 6) / 3)
    assert s["rules"]["decided"]["live_match"] == 2
    text = section(res)
    assert "covers 3 of the 100 planned questions" in text
    assert "| decided |" in text and "| confident |" in text and "| m | 50% |" in text
