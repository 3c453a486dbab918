"""The tour's pure pieces: K-means frames and the chance that a majority vote is right."""

from math import comb

import numpy as np
import pytest

from avengers_core.errors import InputError
from avengers_core.present.tour import kmeans_frames, majority_probability, moved


def test_majority_probability_is_the_binomial_tail():
    assert majority_probability(0.6, 1) == pytest.approx(0.6)
    # N = 3: right when 2 or 3 of 3 are right
    assert majority_probability(0.6, 3) == pytest.approx(3 * 0.6 ** 2 * 0.4 + 0.6 ** 3)
    # N = 2: both right, or a 1-1 tie broken by a coin
    assert majority_probability(0.7, 2) == pytest.approx(0.49 + 0.5 * 2 * 0.7 * 0.3)
    p, n = 0.55, 15
    tail = sum(comb(n, j) * p ** j * (1 - p) ** (n - j) for j in range(8, 16))
    assert majority_probability(p, n) == pytest.approx(tail)


def test_majority_grows_above_one_half_and_shrinks_below():
    up = [majority_probability(0.6, n) for n in (1, 5, 11, 41)]
    down = [majority_probability(0.4, n) for n in (1, 5, 11, 41)]
    assert up == sorted(up) and up[-1] > 0.9
    assert down == sorted(down, reverse=True) and down[-1] < 0.1
    assert majority_probability(0.5, 9) == pytest.approx(0.5)


@pytest.mark.parametrize("p,n", [(-0.1, 3), (1.2, 3), (0.5, 0)])
def test_majority_rejects_bad_input(p, n):
    with pytest.raises(ValueError):
        majority_probability(p, n)


def test_kmeans_frames_settle_on_separated_groups(toy):
    table, x = toy
    rows, frames = kmeans_frames(x, 2, iterations=5, seed=0)
    assert list(rows) == list(range(len(x))) and len(frames) == 6
    assert all(f.shape == (len(x),) and set(f) <= {0, 1} for f in frames)
    topic = np.array([int(t[-1]) for t in table.tasks])
    final = frames[-1]
    agree = max((final == topic).mean(), (final != topic).mean())
    assert agree > 0.95  # the two topics are found
    steps = moved(frames)
    assert len(steps) == 5 and steps[-1] == 0  # converged: nothing moves at the end


def test_kmeans_frames_sample_and_bad_k(toy):
    _, x = toy
    rows, frames = kmeans_frames(x, 3, iterations=2, seed=1, sample=50)
    assert len(rows) == 50 and len(set(rows)) == 50 and frames[0].shape == (50,)
    with pytest.raises(InputError, match="K = 60 for 50 queries"):
        kmeans_frames(x, 60, sample=50)
