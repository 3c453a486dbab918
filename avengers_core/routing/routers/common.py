"""Pieces shared by the routers of this package."""

from __future__ import annotations

import numpy as np


def filled_targets(scores: np.ndarray) -> np.ndarray:
    """(N, M) scores with each missing one replaced by its model's mean (regression target)."""
    seen = ~np.isnan(scores)
    mean = np.where(seen, scores, 0.0).sum(0) / np.maximum(seen.sum(0), 1)
    return np.where(seen, scores, mean)


def routed_score(pred: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(N,) score of the model `pred` (N, M) prefers, among those scored (missing = 0)."""
    pick = np.where(np.isnan(scores), -np.inf, pred).argmax(axis=1)
    return np.nan_to_num(scores[np.arange(len(pick)), pick], nan=0.0)
