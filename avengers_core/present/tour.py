"""Teaching pieces for the app's "How it works" tour: K-means step by step, the chance that
a majority vote is right. Pure functions, plain arrays in and out (no Streamlit).
"""

from __future__ import annotations

from math import comb
from typing import Any

import numpy as np

from avengers_core.embed.base import normalise
from avengers_core.errors import InputError


def kmeans_frames(x: np.ndarray, k: int, iterations: int = 6, seed: int = 0,
                  sample: int | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
    """The first `iterations` steps of Lloyd's K-means on the unit vectors `x` (N, d).

    Seeded with k-means++ (sklearn's `kmeans_plusplus`, as `cluster.kmeans` uses through
    KMeans); each step assigns every query to its nearest centroid by cosine and moves each
    centroid to the (re-normalised) mean of its queries. Returns `(rows, frames)`: the rows
    of `x` used (all of them, or `sample` of them drawn with `seed`, to keep a figure
    light) and one (len(rows),) int array of cluster assignments per step; frame 0 is the
    assignment to the seeds. Raises InputError when K is not between 1 and the row count.
    """
    from sklearn.cluster import kmeans_plusplus

    x = normalise(np.asarray(x, dtype=np.float32))
    n = len(x)
    rng = np.random.default_rng(seed)
    rows = np.arange(n) if sample is None or sample >= n else np.sort(
        rng.choice(n, sample, replace=False))
    xs = x[rows]
    if not 1 <= k <= len(xs):
        raise InputError(f"K = {k} for {len(xs)} queries (expected 1 <= K <= {len(xs)})")
    centroids, _ = kmeans_plusplus(xs, k, random_state=seed)
    frames = []
    for _ in range(iterations + 1):
        assign = np.argmax(xs @ normalise(centroids).T, axis=1)
        frames.append(assign.astype(int))
        for c in range(k):
            members = xs[assign == c]
            if len(members):  # an emptied cluster keeps its centroid
                centroids[c] = members.mean(axis=0)
    return rows, frames


def moved(frames: list[np.ndarray]) -> list[int]:
    """How many queries changed cluster at each step after the first (len(frames) - 1)."""
    return [int((a != b).sum()) for a, b in zip(frames, frames[1:], strict=False)]


def majority_probability(p: float, n: int) -> float:
    """P(more than half of `n` independent samples are right) when each is right with
    probability `p`: the binomial tail sum_{j > n/2} C(n, j) p^j (1 - p)^(n - j); an even
    split counts half (a coin toss breaks the tie).

    This is the two-answer case of the paper's repeated sampling (Zhang et al., 2025,
    section 3.4): with many distinct wrong answers a plurality needs fewer right samples,
    so this is a lower bound on the vote's accuracy for independent samples. Raises
    ValueError for p outside [0, 1] or n < 1.
    """
    if not 0.0 <= p <= 1.0 or n < 1:
        raise ValueError(f"expected 0 <= p <= 1 and n >= 1, got p = {p}, n = {n}")
    total = sum(comb(n, j) * p ** j * (1 - p) ** (n - j) for j in range(n // 2 + 1, n + 1))
    if n % 2 == 0:
        total += 0.5 * comb(n, n // 2) * (p * (1 - p)) ** (n // 2)
    return float(total)


def sample_rows(result: Any) -> list[dict[str, Any]]:
    """One row per sample of a finished vote (`vote.tally.VoteResult`) for the tour's
    table: index, model, the answer it gave, or why it gave none (its error or the
    extractor's reason), and the start of its reply (200 characters)."""
    return [{"sample": s.index, "model": s.model, "answer": s.answer,
             "why no answer": s.error or s.no_answer if s.answer is None else "",
             "reply": " ".join((s.text or "").split())[:200]}
            for s in sorted(result.samples, key=lambda s: s.index)]


def no_votes_line(result: Any) -> str:
    """One line for a vote that ended without votes: how many samples failed or gave no
    answer of the vote's kind, and the commonest reasons (at most three)."""
    from collections import Counter

    samples = result.samples
    if not samples:
        return "The vote ended before any sample arrived."
    reasons = Counter(s.error or s.no_answer or "no answer" for s in samples)
    top = "; ".join(f"{r} (×{n})" if n > 1 else r for r, n in reasons.most_common(3))
    return (f"No votes: none of the {len(samples)} samples gave an answer of kind "
            f"{result.kind}. Why: {top}.")
