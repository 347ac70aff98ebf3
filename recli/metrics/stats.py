"""Paired significance tests and seeded bootstrap confidence intervals."""

from __future__ import annotations

import numpy as np


def paired_tests(base, other) -> tuple[float, float]:
    """Two-sided p-values ``(paired t-test, Wilcoxon signed-rank)`` of ``other - base``.

    ``base`` and ``other`` are per-user values of the same users in the same order; pairs
    with a NaN on either side are dropped. Both p-values are 1.0 when every difference
    is zero (the models agree on every user), NaN with fewer than 2 pairs. Wilcoxon uses
    scipy's defaults (``zero_method="wilcox"``: zero differences are dropped).
    """
    from scipy import stats

    a = np.asarray(base, dtype=np.float64)
    b = np.asarray(other, dtype=np.float64)
    ok = ~(np.isnan(a) | np.isnan(b))
    a, b = a[ok], b[ok]
    if a.shape[0] < 2:
        return float("nan"), float("nan")
    d = b - a
    if not np.any(d != 0):
        return 1.0, 1.0
    p_t = float(stats.ttest_rel(b, a).pvalue)
    p_w = float(stats.wilcoxon(b, a).pvalue)
    return p_t, p_w


def bootstrap_ci(values, weights=None, n_resamples: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap CIs of the (weighted) mean of every column, users resampled.

    ``values`` is ``[n_users, n_cols]`` (NaN = user left out of that column). Each resample
    draws ``n_users`` users with replacement from ``np.random.default_rng(seed)`` and the
    same draw serves every column, so the same seed gives the same intervals. Returns
    ``(low, high)`` arrays; NaN for a column with no value.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=np.float64).reshape(v.shape)
    ok = ~np.isnan(v)
    wv = np.where(ok, v * w, 0.0)
    ww = np.where(ok, w, 0.0)
    n = v.shape[0]
    nan = np.full(v.shape[1], np.nan)
    if n == 0 or n_resamples <= 0:
        return nan, nan.copy()
    rng = np.random.default_rng(seed)
    stats = np.empty((n_resamples, v.shape[1]))
    for b in range(n_resamples):
        counts = np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
        num = counts @ wv
        den = counts @ ww
        with np.errstate(invalid="ignore", divide="ignore"):
            stats[b] = num / den
    alpha = (1.0 - level) / 2.0
    with np.errstate(invalid="ignore"):
        low = np.nanquantile(stats, alpha, axis=0) if np.isfinite(stats).any() else nan
        high = np.nanquantile(stats, 1.0 - alpha, axis=0) if np.isfinite(stats).any() else nan.copy()
    return np.asarray(low), np.asarray(high)
