"""Short cluster labels from the queries' words, c-TF-IDF style.

Each cluster's queries are joined into one document; a term's weight in a cluster is its
frequency there times `log(1 + A / f)`, where `A` is the mean number of words per cluster
and `f` the term's frequency over all clusters. Words common everywhere ("what", "the",
"answer") sink; words that mark one cluster ("house", "loafers") rise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TOKEN_PATTERN = r"(?u)\b[^\W\d_][^\W\d_]+\b"  # words of two or more letters, no digits


def cluster_terms(
    texts: Sequence[str], labels: Sequence[int] | np.ndarray, n_clusters: int, n_terms: int = 5
) -> list[list[str]]:
    """Top `n_terms` c-TF-IDF terms of each cluster `0..n_clusters-1` (empty for empty ones)."""
    from sklearn.feature_extraction.text import CountVectorizer

    labels = np.asarray(labels, dtype=int)
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    docs = [" " for _ in range(n_clusters)]
    for k in range(n_clusters):
        idx = np.flatnonzero(labels == k)
        if idx.size:
            docs[k] = " ".join(texts[i] for i in idx)
    vec = CountVectorizer(stop_words="english", token_pattern=TOKEN_PATTERN, lowercase=True)
    try:
        counts = vec.fit_transform(docs)
    except ValueError:  # no word at all in any text (digits or symbols only)
        return [[] for _ in range(n_clusters)]
    counts = counts.astype(np.float64).toarray()
    vocab = vec.get_feature_names_out()
    words_per_cluster = counts.sum(axis=1, keepdims=True)
    tf = np.divide(counts, words_per_cluster, out=np.zeros_like(counts),
                   where=words_per_cluster > 0)
    avg_words = max(float(words_per_cluster.mean()), 1.0)
    idf = np.log1p(avg_words / np.maximum(counts.sum(axis=0), 1.0))
    weights = tf * idf
    out: list[list[str]] = []
    for k in range(n_clusters):
        order = np.argsort(-weights[k], kind="stable")[:n_terms]
        out.append([str(vocab[j]) for j in order if weights[k, j] > 0])
    return out


def cluster_labels(
    texts: Sequence[str], labels: Sequence[int] | np.ndarray, n_clusters: int, n_terms: int = 3
) -> list[str]:
    """One short label per cluster, its top terms joined ("house · shoes · lives")."""
    terms = cluster_terms(texts, labels, n_clusters, n_terms=n_terms)
    return [" · ".join(t) if t else f"cluster {k}" for k, t in enumerate(terms)]
