"""Benchmark recli ``fm`` (regression) against myfm 0.4.0 (Bayesian FM by Gibbs sampling)
and recli ``mf`` on MovieLens 100K ratings.

Data: ``u.data`` ratings, one seeded random 80/20 split (``recli prep --split random``'s
rule, :func:`recli.data.split.split_mask`); features: one-hot user, one-hot item and the
19 genre flags of ``u.item`` (item side features, value 1). Every item of ``u.item`` is
in the catalogue (an item only in test is a cold item scored from its genres); a test
user unseen in training gets each model's fallback. All predictions are clipped to the
training rating range (as ``recli recommend --pairs`` does) and scored by test RMSE.

Both FMs use the same rank and the same design matrix; myfm gets one prior group per
block (users, items, genres), as recli's mcmc solver has. recli ``fm`` runs twice: solver
``mcmc`` with as many Gibbs sweeps as myfm (the like-for-like comparison: both average
the predictions of every sample after 5 burn-in sweeps) and solver ``als`` (a point
estimate). Fit times are wall seconds of the fit alone: one thread for recli (its
solvers are serial), myfm at its defaults.

Run: ``python bench/fm_vs_myfm.py`` (options: ``--data --rank --seed --iterations
--myfm-iter --reg-linear --reg-factors``); ``--write-features FILE`` also writes the long
``item,feature,value`` genre table that ``recli train --item-features`` reads.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TQDM_DISABLE", "1")  # myfm's progress bar

from recli.backend import get_backend, threads_context  # noqa: E402
from recli.data.side import SideFeatures  # noqa: E402
from recli.data.split import parse_size, split_mask  # noqa: E402
from recli.models.base import build_config  # noqa: E402
from recli.models.fm import FM  # noqa: E402
from recli.models.mf import MF  # noqa: E402

GENRES = 19


def load(data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ratings rows: user id, item id, rating), item ids, genre flags (n_items, 19))``."""
    ratings = np.loadtxt(data / "u.data", dtype=np.int64, usecols=(0, 1, 2))
    lines = (data / "u.item").read_text(encoding="latin-1").splitlines()
    fields = [line.split("|") for line in lines if line]
    item_ids = np.array([int(f[0]) for f in fields])
    genres = np.array([[int(x) for x in f[-GENRES:]] for f in fields], dtype=np.float32)
    return ratings, item_ids, genres


def rmse(pred: np.ndarray, truth: np.ndarray, low: float, high: float) -> float:
    return float(np.sqrt(np.mean((np.clip(pred, low, high) - truth) ** 2)))


def run_recli(cls, params: dict, train: sp.csr_matrix, test_u: np.ndarray, test_i: np.ndarray, **fit_kw):
    model = cls(build_config(cls.Config, params, cls.name), get_backend("cpu", 1))
    with threads_context(1):
        start = time.perf_counter()
        model.fit(train, **fit_kw)
        seconds = time.perf_counter() - start
        known = (test_u >= 0) & (test_i >= 0)
        pred = np.empty(test_u.shape[0], np.float32)
        pred[known] = model.score_pairs(test_u[known], test_i[known])
        pred[~known] = model.fallback_pairs(test_u[~known], test_i[~known])
    return pred, seconds


def run_myfm(rank: int, n_iter: int, seed: int, X_train, y_train, X_test, groups):
    import myfm

    model = myfm.MyFMRegressor(rank=rank, random_seed=seed)
    start = time.perf_counter()
    model.fit(X_train, y_train, n_iter=n_iter, group_shapes=groups)
    seconds = time.perf_counter() - start
    return model.predict(X_test), seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/ml-100k")
    ap.add_argument("--rank", type=int, default=10)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--iterations", type=int, default=30, help="fm sweeps with solver als")
    ap.add_argument("--reg-linear", type=float, default=0.1)
    ap.add_argument("--reg-factors", type=float, default=0.15)
    ap.add_argument("--myfm-iter", type=int, default=200,
                    help="Gibbs sweeps of myfm and of fm solver mcmc (the first 5 not averaged, both)")
    ap.add_argument("--write-features", type=Path, help="also write item,feature,value genre rows here (CSV)")
    args = ap.parse_args()

    ratings, item_ids, genres = load(args.data)
    users_all = np.unique(ratings[:, 0], return_inverse=True)[1]
    test, _ = split_mask("random", parse_size(0.2), users_all, None, np.random.default_rng(args.seed))
    train_users = np.unique(ratings[~test, 0])
    u_code = np.searchsorted(train_users, ratings[:, 0])
    u_code = np.where(train_users[np.minimum(u_code, train_users.size - 1)] == ratings[:, 0], u_code, -1)
    i_code = np.searchsorted(item_ids, ratings[:, 1])
    y = ratings[:, 2].astype(np.float32)
    n_u, n_i = train_users.size, item_ids.size
    train = sp.csr_matrix((y[~test], (u_code[~test], i_code[~test])), shape=(n_u, n_i))
    train.sort_indices()
    low, high = float(y[~test].min()), float(y[~test].max())
    names = np.array([f"genre{g}" for g in range(GENRES)])
    if args.write_features:
        rows, cols = np.nonzero(genres)
        lines = ["item,feature,value"] + [f"{item_ids[r]},{names[c]},1" for r, c in zip(rows, cols)]
        args.write_features.write_text("\n".join(lines) + "\n")

    tu, ti, ty = u_code[test], i_code[test], y[test]
    results = []
    item_features = SideFeatures(sp.csr_matrix(genres), names)
    mcmc = {"solver": "mcmc", "factors": args.rank, "iterations": args.myfm_iter, "seed": args.seed}
    pred, sec = run_recli(FM, mcmc, train, tu, ti, item_features=item_features)
    results.append((f"recli fm (mcmc, {args.myfm_iter} sweeps)", rmse(pred, ty, low, high), sec))
    als = {"solver": "als", "factors": args.rank, "iterations": args.iterations, "reg_linear": args.reg_linear,
           "reg_factors": args.reg_factors, "seed": args.seed}
    pred, sec = run_recli(FM, als, train, tu, ti, item_features=item_features)
    results.append((f"recli fm (als, {args.iterations} sweeps)", rmse(pred, ty, low, high), sec))
    pred, sec = run_recli(MF, {"seed": args.seed}, train, tu, ti)
    results.append(("recli mf (defaults)", rmse(pred, ty, low, high), sec))

    def design(rows):
        ones = np.ones(rows.sum(), np.float32)
        uu = sp.csr_matrix((ones, (np.arange(rows.sum()), np.maximum(u_code[rows], 0))), shape=(rows.sum(), n_u))
        uu = sp.diags((u_code[rows] >= 0).astype(np.float32)) @ uu  # an unknown user: no user column
        ii = sp.csr_matrix((ones, (np.arange(rows.sum()), i_code[rows])), shape=(rows.sum(), n_i))
        return sp.hstack([uu, ii, sp.csr_matrix(genres[i_code[rows]])]).tocsr()

    pred, sec = run_myfm(args.rank, args.myfm_iter, args.seed, design(~test), y[~test], design(test),
                         [n_u, n_i, GENRES])
    results.append((f"myfm 0.4.0 (Gibbs, {args.myfm_iter} iter)", rmse(pred, ty, low, high), sec))

    print(f"MovieLens 100K, random 80/20 split (seed {args.seed}), rank {args.rank}, "
          f"{int((~test).sum())} train / {int(test.sum())} test ratings")
    print(f"{'model':<32} {'test RMSE':>10} {'fit s':>8}")
    for name, score, sec in results:
        print(f"{name:<32} {score:>10.4f} {sec:>8.2f}")
    fm_rmse, _, mf_rmse, myfm_rmse = (r[1] for r in results)
    print(f"fm (mcmc) / myfm RMSE ratio: {fm_rmse / myfm_rmse:.4f} (target <= 1.01); "
          f"fm (mcmc) <= mf: {fm_rmse <= mf_rmse}")


if __name__ == "__main__":
    main()
