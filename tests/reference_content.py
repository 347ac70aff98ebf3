"""Slow, obviously-correct NumPy loops for the ``content`` model (dense arrays)."""

from __future__ import annotations

import numpy as np


def unit(rows: np.ndarray) -> np.ndarray:
    out = np.zeros_like(rows, dtype=np.float64)
    for i, row in enumerate(rows):
        n = np.sqrt(np.sum(row.astype(np.float64) ** 2))
        if n > 0:
            out[i] = row / n
    return out


def weights(values: np.ndarray, times: np.ndarray | None = None, half_life_days: float = 0.0,
            binary: bool = False) -> np.ndarray:
    """Dense user x item weights: value (or 1 for value > 0), times 0.5^(age / half-life)."""
    w = (values > 0).astype(np.float64) if binary else values.astype(np.float64)
    if half_life_days > 0:
        newest = times[values != 0].max()
        for u in range(w.shape[0]):
            for i in range(w.shape[1]):
                if values[u, i] != 0:
                    w[u, i] *= 0.5 ** ((newest - times[u, i]) / (half_life_days * 86400.0))
    return w


def scores(features: np.ndarray, w: np.ndarray, candidates: np.ndarray | None = None) -> np.ndarray:
    """``p_u · q_i`` for every user and candidate item (default: the catalogue itself)."""
    q = unit(features)
    cand = q if candidates is None else unit(candidates)
    out = np.zeros((w.shape[0], cand.shape[0]))
    for u in range(w.shape[0]):
        p = np.zeros(q.shape[1])
        for h in range(w.shape[1]):
            p += w[u, h] * q[h]
        n = np.sqrt(p @ p)
        if n > 0:
            p /= n
        for i in range(cand.shape[0]):
            out[u, i] = p @ cand[i]
    return out
