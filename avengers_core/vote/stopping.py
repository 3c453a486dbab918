"""When a vote may stop drawing samples: the early-stopping rules, as pure functions.

Self-consistency (Wang et al. 2023) draws N samples and keeps the most frequent answer. Two
papers stop earlier:

- Adaptive-Consistency (Aggarwal et al., EMNLP 2023, arXiv 2305.11860) samples one at a
  time and stops when the posterior probability that the current leader is the majority
  answer passes a threshold (their default 0.95), under a Dirichlet (or Beta) posterior
  over the answers seen;
- Early-Stopping Self-Consistency (Li et al., ICLR 2024, arXiv 2401.10480) stops when a
  window of consecutive samples agrees.

Neither says when stopping leaves the answer unchanged. The rules here:

- ``off``: draw every sample asked for.
- ``decided`` (:func:`is_decided`): stop when the leader can no longer be caught (not
  even tied) by the samples still to come. The answer is then the one all N samples would
  give, whatever the remaining samples say: fewer samples, same answer, by construction.
  (A tie that the arrival order would break for the leader is not counted as safe: the
  rule stays independent of how ties are broken.)
- ``confident`` (:func:`leader_probability`): stop once at least :data:`MIN_CONFIDENT`
  samples voted and the Dirichlet posterior probability that the leader is the majority
  answer reaches the confidence (Adaptive-Consistency's rule, with one extra "other"
  category for answers not seen yet); a decided vote stops too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

EARLY_STOPS = ("off", "decided", "confident")
"""The stopping rules, in order of how early they may stop."""
DEFAULT_EARLY_STOP = "decided"
DEFAULT_CONFIDENCE = 0.95
"""Adaptive-Consistency's default threshold (Aggarwal et al. 2023, §3)."""
MIN_CONFIDENT = 3
"""`confident` never stops before this many samples voted (issue 23)."""
GRID = 4001
"""Points of the quadrature in :func:`leader_probability` (error below 1e-6)."""


def check_early_stop(early_stop: str, confidence: float) -> None:
    """Raise ValueError unless `early_stop` is one of :data:`EARLY_STOPS` and
    `confidence` lies in (0, 1)."""
    if early_stop not in EARLY_STOPS:
        raise ValueError(f"unknown early stop {early_stop!r}; expected one of "
                         f"{', '.join(EARLY_STOPS)}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")


def is_decided(votes: Sequence[int], remaining: int) -> bool:
    """True when no outcome of the `remaining` samples can catch the leader.

    votes: the vote count of every answer seen, leader first. remaining: samples not
    finished yet that could still vote (in flight or not started). Another answer (one
    seen, or a new one with 0 votes) reaches at most its votes + remaining; the leader is
    safe when it stays strictly ahead of the best of them:
    votes[0] > max(votes[1:], default=0) + remaining.
    """
    if remaining <= 0:
        return True
    if not votes:
        return False
    runner_up = max(votes[1:], default=0)
    return votes[0] > runner_up + remaining


def leader_probability(votes: Sequence[int]) -> float:
    """Posterior probability that the leader (the first count) is the majority answer.

    votes: the vote counts of the answers seen, leader first. The answers' shares p have
    the posterior Dirichlet(v_1 + 1, …, v_k + 1, 1), the last category standing for every
    answer not seen yet (a uniform prior). The probability that p_1 exceeds every other
    share equals P(G_1 > G_j for all j) for independent G_j ~ Gamma(alpha_j, 1), that is
    the one-dimensional integral ∫ g_{alpha_1}(x) ∏_{j>1} F_{alpha_j}(x) dx with g the
    density and F the CDF, which this computes by Simpson's rule (the Gamma CDF of an
    integer shape a is 1 − e^{−x} Σ_{k<a} x^k / k!). Adaptive-Consistency (Aggarwal et
    al. 2023) integrates the same posterior numerically.
    Raises ValueError for a negative count.
    """
    if any(v < 0 for v in votes):
        raise ValueError("vote counts must not be negative")
    if not votes:
        return 0.0
    alphas = [int(v) + 1 for v in votes] + [1]
    lead, others = alphas[0], alphas[1:]
    top = lead + 12.0 * math.sqrt(lead) + 40.0  # the density is negligible beyond
    x = np.linspace(0.0, top, GRID)
    log_density = (lead - 1) * np.log(np.maximum(x, 1e-300)) - x - math.lgamma(lead)
    density = np.exp(log_density)
    if lead == 1:
        density[0] = 1.0
    product = np.ones_like(x)
    for a in others:
        product *= _gamma_cdf(a, x)
    y = density * product
    h = x[1] - x[0]
    total = h / 3.0 * (y[0] + y[-1] + 4.0 * y[1:-1:2].sum() + 2.0 * y[2:-1:2].sum())
    return float(min(1.0, max(0.0, total)))


def _gamma_cdf(a: int, x: np.ndarray) -> np.ndarray:
    """CDF of Gamma(a, 1) at x for an integer shape a ≥ 1 (the Erlang distribution)."""
    term = np.ones_like(x)
    acc = np.ones_like(x)
    for k in range(1, a):
        term = term * x / k
        acc = acc + term
    return 1.0 - np.exp(-x) * acc


def should_stop(
    early_stop: str,
    votes: Sequence[int],
    remaining: int,
    confidence: float = DEFAULT_CONFIDENCE,
) -> str | None:
    """The rule that stops the vote now (`decided` or `confident`), or None to go on.

    `off` never stops early; `decided` stops when :func:`is_decided`; `confident` stops
    when decided, or when at least :data:`MIN_CONFIDENT` samples voted and
    :func:`leader_probability` ≥ `confidence`. votes: counts, leader first; remaining:
    samples still to come.
    """
    if early_stop == "off" or remaining <= 0:
        return None
    if is_decided(votes, remaining):
        return "decided"
    if early_stop == "confident" and sum(votes) >= MIN_CONFIDENT:
        if leader_probability(votes) >= confidence:
            return "confident"
    return None


def expected_draws(accuracy: float, samples: int, early_stop: str,
                   confidence: float = DEFAULT_CONFIDENCE) -> float:
    """Expected samples drawn by a vote of `samples` one at a time, for a model whose
    samples are right with probability `accuracy` and, when wrong, each a different
    wrong answer (the simulation of the demo table; a pessimistic case for stopping,
    since wrong answers never agree). Exact: every sequence of right/wrong is summed.
    Raises ValueError for an unknown rule.
    """
    check_early_stop(early_stop, confidence)
    if early_stop == "off":
        return float(samples)
    total = 0.0
    states: dict[tuple[int, int], float] = {(0, 0): 1.0}  # (right, wrong) -> probability
    for drawn in range(samples):
        nxt: dict[tuple[int, int], float] = {}
        for (right, wrong), p in states.items():
            for ok, q in ((True, accuracy), (False, 1.0 - accuracy)):
                if q == 0.0:
                    continue
                r, w = right + ok, wrong + (not ok)
                votes = sorted([r] * bool(r) + [1] * w, reverse=True)
                if should_stop(early_stop, votes, samples - drawn - 1, confidence):
                    total += p * q * (drawn + 1)
                else:
                    nxt[(r, w)] = nxt.get((r, w), 0.0) + p * q
        states = nxt
    total += sum(states.values()) * samples
    return total
