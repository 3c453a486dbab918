"""The clusters that exist: empty and repeated K-means clusters dropped (issue 22).

A table of near-duplicate queries (case and spacing variants of a few questions) embeds to
fewer distinct vectors than the K asked for. K-means then returns clusters that hold no
query, their centroids copies of others (scikit-learn says so in a raw ConvergenceWarning),
and routing would give weight to clusters with no evidence. :func:`keep_distinct` keeps one
cluster per distinct centroid that holds queries, so the fitted K (the *effective* K) is
what the data supports; :func:`effective_k_note` says it in one line, and
:func:`quiet_fit` keeps the library's own warnings from reaching the user raw.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

SAME = 1e-6
"""Two unit centroids whose cosine is above 1 − SAME are the same cluster (float32 keeps
about 7 digits, so copies of one vector differ by less)."""
_DISTINCT = re.compile(r"Number of distinct clusters \((\d+)\) found smaller than n_clusters")


def keep_distinct(centroids: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop clusters that hold no query and merge clusters whose centroids coincide.

    `centroids`: (K, d) unit rows; `labels`: (N,) cluster of each query. Returns the kept
    centroids (K', d), in their original order, and the labels renumbered 0..K'−1. With no
    empty or repeated cluster, the inputs come back unchanged (same objects).
    """
    k = len(centroids)
    sizes = np.bincount(labels, minlength=k)
    target = np.arange(k)
    for c in range(k):  # a repeated centroid joins the first of its copies
        if sizes[c] == 0 or target[c] != c:
            continue
        same = centroids[c + 1 :] @ centroids[c] > 1.0 - SAME
        for other in np.flatnonzero(same) + c + 1:
            target[other] = c
    keep = [c for c in range(k) if sizes[c] > 0 and target[c] == c]
    if len(keep) == k:
        return centroids, labels
    new_id = np.full(k, -1)
    new_id[keep] = np.arange(len(keep))
    merged = np.where(sizes > 0, new_id[target], -1)
    return centroids[keep], merged[labels]


def quiet_fit(fit: Callable[[], T]) -> T:
    """Run `fit()` (a K-means fit) with the library's warnings caught: scikit-learn's
    "Number of distinct clusters (n) found smaller than n_clusters" is dropped, as the
    effective K says it (:func:`effective_k_note`); any other warning is re-issued once as
    a RuntimeWarning in our words, prefixed with "K-means:"."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fit()
    seen: set[str] = set()
    for w in caught:
        text = " ".join(str(w.message).split())
        if _DISTINCT.search(text) or text in seen:
            continue
        seen.add(text)
        warnings.warn(f"K-means: {text}", RuntimeWarning, stacklevel=3)
    return out


def effective_k_note(asked: int | None, fitted: int) -> str | None:
    """One line saying that fewer clusters than asked were fitted, or None when K clusters
    were (`asked` None: not known, as for profiles saved before issue 22)."""
    if asked is None or asked == fitted:
        return None
    return (f"effective K = {fitted} of the {asked} asked: the queries form only {fitted} "
            "distinct clusters (near-duplicate queries embed alike), so the empty or repeated "
            "ones were dropped")


def asked_k(router: Any) -> int | None:
    """The K a fitted router was asked for (`k_asked`), or None when not recorded."""
    return getattr(router, "k_asked", None)


DECIMALS = 4
"""Rows equal to this many decimals count as one distinct vector (the same text embedded
in batches of different padding differs in the 7th digit)."""


def distinct_rows(x: np.ndarray) -> int:
    """How many distinct rows `x` (N, d) holds, to :data:`DECIMALS` decimals."""
    return int(np.unique(np.round(np.asarray(x, dtype=np.float32), DECIMALS), axis=0).shape[0])


def refit_if_fewer(clustering: T, x: np.ndarray, refit: Callable[[int], T]) -> T:
    """`clustering` when it kept every cluster asked for; else, when `x` holds fewer distinct
    rows than asked, `refit(d)` with d the number of distinct rows (k-means++ then seeds one
    centre on each, where K-means with more clusters than points may merge two of them),
    recorded as asked for the original K."""
    from dataclasses import replace

    asked = clustering.asked  # type: ignore[attr-defined]
    if asked is None or clustering.k >= asked:  # type: ignore[attr-defined]
        return clustering
    d = distinct_rows(x)
    if d >= asked:
        return clustering
    return replace(refit(d), asked=asked)  # type: ignore[type-var]


def distinct(clustering: T, asked: int) -> T:
    """`clustering` (a `cluster.Clustering`) with :func:`keep_distinct` applied and `asked`
    recorded as the K asked for."""
    from dataclasses import replace

    centroids, labels = keep_distinct(clustering.centroids, clustering.labels)  # type: ignore[attr-defined]
    return replace(clustering, centroids=centroids, labels=labels, asked=asked)  # type: ignore[type-var]
