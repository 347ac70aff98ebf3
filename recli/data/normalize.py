"""Normalisation of explicit ratings, fitted on one frame and applied to others.

Methods (``r`` a rating, statistics from the fitting frame, usually train):

- ``minmax``    ``(r - min) / (max - min)``; a constant column maps to 0.
- ``zscore``    ``(r - mean) / std`` (population std); a constant column maps to 0.
- ``user-mean`` ``r - mean_u`` with ``mean_u`` the user's mean; users absent from the
  fitting frame use the global mean.

The parameters are plain numbers (and, for ``user-mean``, a user → mean table) so a
later step can map predictions back: ``r = r' * scale + offset`` (+ ``mean_u``).
"""

from __future__ import annotations

import polars as pl

from recli.data.schema import RATING

UCODE = "_u"  # integer user code (see recli.data.clean)

METHODS = ("none", "minmax", "zscore", "user-mean")


def fit(df: pl.DataFrame, method: str) -> tuple[dict, pl.DataFrame | None]:
    """Statistics of ``df``'s ratings for ``method``: (parameters, per-user means or None).

    ``df`` has the integer user code ``_u``; the per-user means come keyed by it.
    """
    if method == "none" or RATING not in df.columns:
        return {"method": "none", "offset": 0.0, "scale": 1.0}, None
    r = df[RATING]
    if method == "minmax":
        lo, hi = float(r.min()), float(r.max())
        return {"method": method, "offset": lo, "scale": (hi - lo) or 1.0, "min": lo, "max": hi}, None
    if method == "zscore":
        mean, std = float(r.mean()), float(r.std(ddof=0))
        return {"method": method, "offset": mean, "scale": std or 1.0, "mean": mean, "std": std}, None
    if method == "user-mean":
        means = df.group_by(UCODE).agg(pl.col(RATING).mean().alias("mean")).sort(UCODE)
        return {"method": method, "offset": 0.0, "scale": 1.0, "global_mean": float(r.mean()),
                "n_users": means.height, "user_means_file": "user_means.csv"}, means
    return {"method": "none", "offset": 0.0, "scale": 1.0}, None


def apply(df: pl.DataFrame, params: dict, user_means: pl.DataFrame | None) -> pl.DataFrame:
    """Normalise ``df``'s ratings with parameters from :func:`fit`."""
    if params["method"] == "none" or RATING not in df.columns:
        return df
    if params["method"] == "user-mean":
        out = df.join(user_means, on=UCODE, how="left", maintain_order="left")
        out = out.with_columns((pl.col(RATING) - pl.col("mean").fill_null(params["global_mean"])).alias(RATING))
        return out.drop("mean")
    return df.with_columns(((pl.col(RATING) - params["offset"]) / params["scale"]).alias(RATING))
