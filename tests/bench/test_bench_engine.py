"""The real-engine benchmark's report: every row, and what it says about `n`."""

from __future__ import annotations

from bench.bench_engine import section
from bench.common import spread


def result(notes: list[str]) -> dict:
    return {"samples": 10, "tokens": 32, "ttft_s": spread([0.05, 0.06, 0.07]),
            "tps": spread([70.0, 80.0, 90.0]), "n_notes": notes,
            "rows": [{"mode": "one after another", "wall_s": spread([4.0, 4.2])},
                     {"mode": "concurrent, 10 at once", "wall_s": spread([4.1, 4.3])},
                     {"mode": "one request with n = 10", "wall_s": spread([4.4, 4.6])}]}


def test_section_reports_every_figure_and_says_when_n_is_ignored():
    text = section(result(["http://x/v1 returned 1 of 10 choices asked (it ignores n)"]))
    assert "| time to first token | 60 ms (50–70, n=3) |" in text
    assert "| tokens per second after it | 80 tok/s (70–90, n=3) |" in text
    assert "| one request with n = 10 | 4.50 s (4.40–4.60, n=2) | 0.91× |" in text
    assert "ignores `n`" in text and "returned 1 of 10 choices" in text
    assert "honoured" not in text


def test_section_says_when_n_is_honoured():
    assert "The engine honoured `n`" in section(result([]))
