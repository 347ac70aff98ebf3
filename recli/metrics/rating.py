"""Rating-prediction errors over aligned arrays."""

from __future__ import annotations

import numpy as np


def rating_errors(predicted, actual) -> dict[str, float]:
    """``{"rmse": sqrt(mean((p - r)^2)), "mae": mean(|p - r|)}`` over aligned pairs.

    NaN for both when there is no pair (the caller reports the coverage).
    """
    p = np.asarray(predicted, dtype=np.float64)
    r = np.asarray(actual, dtype=np.float64)
    if p.shape != r.shape:
        raise ValueError("predicted and actual must have the same shape")
    if p.size == 0:
        return {"rmse": float("nan"), "mae": float("nan")}
    d = p - r
    return {"rmse": float(np.sqrt(np.mean(d * d))), "mae": float(np.mean(np.abs(d)))}
