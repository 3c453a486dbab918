"""c-TF-IDF cluster labels: distinctive words rise, shared words and digits sink."""

import numpy as np

from avengers_core.present.labels import cluster_labels, cluster_terms

TEXTS = [
    "How many apples does Tom have if he buys 3 apples?",
    "Sara buys apples and pears; how many apples are left?",
    "Which house does the person wearing loafers live in?",
    "The person wearing boots lives left of the house with pizza.",
    "Write a python function that returns the sum of a list.",
    "Write a python function to reverse a string.",
]
LABELS = [0, 0, 1, 1, 2, 2]


def test_top_terms_are_distinctive():
    terms = cluster_terms(TEXTS, LABELS, 3, n_terms=2)
    assert terms[0][0] == "apples"
    assert set(terms[1]) <= {"house", "person", "wearing", "lives", "loafers", "boots", "pizza"}
    assert "function" in terms[2] or "python" in terms[2] or "write" in terms[2]
    for t in terms:
        assert all(not any(ch.isdigit() for ch in w) for w in t)
        assert "the" not in t and "how" not in t


def test_empty_cluster_gets_a_fallback_label():
    labels = cluster_labels(TEXTS, LABELS, 4)
    assert len(labels) == 4
    assert labels[3] == "cluster 3"
    assert " · " in labels[0]


def test_numbers_only_texts_do_not_crash():
    assert cluster_terms(["1 + 1", "2 * 3"], np.array([0, 1]), 2) == [[], []]
    assert cluster_labels(["1 + 1", "2 * 3"], [0, 1], 2) == ["cluster 0", "cluster 1"]
