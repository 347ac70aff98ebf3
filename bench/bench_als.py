"""Benchmark recli ``als`` / ``mf`` against implicit 0.7.3 (quality and speed).

Quality (MovieLens 100K, ``../shared/data/ml-100k/u.data``):
  * ``als`` vs implicit ``AlternatingLeastSquares``: the split of ``recli prep --split
    leave-random --test-size 0.2 --seed 42`` (run in-process, ``bench/_ml100k.py``), binary
    training interactions, relevant = every held-out row, NDCG@10 with training items
    filtered, same factors/regularization/alpha/iterations.
  * ``mf``: test RMSE on the split of ``recli prep --split random --test-size 0.2 --seed 42``.
Speed (generated data, default 100k users × 20k items × 5M interactions, Zipf item
popularity): ALS-CG seconds per iteration, recli vs implicit, same threads, interleaved
repetitions; medians and the ratio.

    python bench/bench_als.py quality
    python bench/bench_als.py speed --threads 2 --reps 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

sys.path.insert(0, str(Path(__file__).resolve().parent))

import recli.kernels  # noqa: E402,F401  (NUMBA_CACHE_DIR)
from _ml100k import ml100k_split  # noqa: E402
from recli.backend import get_backend  # noqa: E402
from recli.models.als import ALS, ALSConfig  # noqa: E402

SEEDS = (42, 43, 44)


# -- data -------------------------------------------------------------------
def zipf_interactions(n_users: int, n_items: int, nnz: int, exponent: float = 0.8, seed: int = 0) -> sp.csr_matrix:
    """``nnz`` distinct (user, item) pairs: users uniform, items Zipf(exponent) over a
    random permutation of the catalogue; values 1."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_items + 1) ** exponent
    p /= p.sum()
    perm = rng.permutation(n_items).astype(np.int64)
    keys = np.empty(0, np.int64)
    while keys.shape[0] < nnz:
        m = int((nnz - keys.shape[0]) * 1.15) + 1000
        u = rng.integers(0, n_users, m, dtype=np.int64)
        i = perm[rng.choice(n_items, m, p=p)]
        keys = np.unique(np.concatenate([keys, u * n_items + i]))
    keys = rng.permutation(keys)[:nnz]
    m = sp.csr_matrix((np.ones(nnz, np.float32), (keys // n_items, keys % n_items)), shape=(n_users, n_items))
    m.sort_indices()
    return m


# -- metrics ----------------------------------------------------------------
def ndcg_at_k(top: np.ndarray, test: sp.csr_matrix, k: int = 10) -> float:
    """Binary-relevance NDCG@k averaged over users with at least one test row."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    scores = []
    for u in range(test.shape[0]):
        rel = set(test.indices[test.indptr[u]:test.indptr[u + 1]].tolist())
        if not rel:
            continue
        gains = np.array([1.0 if i in rel else 0.0 for i in top[u, :k]])
        ideal = discounts[:min(len(rel), k)].sum()
        scores.append(float((gains * discounts[:gains.shape[0]]).sum() / ideal))
    return float(np.mean(scores))


def recli_top(model: ALS, train: sp.csr_matrix, k: int = 10) -> np.ndarray:
    scores = model.score(np.arange(train.shape[0]), None)
    scores[train.nonzero()] = -np.inf
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, 1), axis=1, kind="stable")
    return np.take_along_axis(top, order, 1)


def quality(args: argparse.Namespace) -> None:
    split = ml100k_split("leave-random", 0.2, 42, binary=True)  # = recli prep --split leave-random ...
    train, test = split.train, split.test
    print(f"ML-100K, recli prep --split leave-random --test-size 0.2 --seed 42: {train.shape[0]} users, "
          f"{train.shape[1]} items, train {train.nnz}, test {test.nnz} rows")
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        _quality(args, train, test, train.shape)
    mf_quality(args)


def _recli_ndcg(args, train, test, alpha, solver) -> float:
    ndcgs = []
    for seed in SEEDS:
        cfg = ALSConfig(factors=args.factors, regularization=args.regularization, alpha=alpha,
                        iterations=args.iterations, solver=solver, seed=seed)
        model = ALS(cfg, get_backend("cpu", args.threads)).fit(train)
        ndcgs.append(ndcg_at_k(recli_top(model, train), test))
    return float(np.mean(ndcgs))


def _implicit_ndcg(args, train, test, alpha) -> float:
    from implicit.cpu.als import AlternatingLeastSquares

    ndcgs = []
    for seed in SEEDS:
        imp = AlternatingLeastSquares(factors=args.factors, regularization=args.regularization, alpha=alpha,
                                      iterations=args.iterations, num_threads=args.threads, random_state=seed)
        imp.fit(train, show_progress=False)
        top, _ = imp.recommend(np.arange(train.shape[0]), train, N=10, filter_already_liked_items=True)
        ndcgs.append(ndcg_at_k(top, test))
    return float(np.mean(ndcgs))


def _quality(args, train, test, shape) -> None:
    print(f"settings: factors={args.factors} regularization={args.regularization} iterations={args.iterations}; "
          f"NDCG@10 is the mean over seeds {SEEDS}")
    # implicit's confidence is alpha·r (its solve uses c − 1); recli's is 1 + alpha·r, so
    # implicit at alpha + 1 optimises exactly recli's objective on binary data.
    print(f"  {'alpha':>5}  {'recli cg':>9}  {'recli chol':>10}  {'implicit (same alpha)':>21}  "
          f"{'implicit (alpha+1 = same confidence)':>36}")
    for alpha in args.alphas:
        cg = _recli_ndcg(args, train, test, alpha, "cg")
        chol = _recli_ndcg(args, train, test, alpha, "cholesky")
        same, matched = _implicit_ndcg(args, train, test, alpha), _implicit_ndcg(args, train, test, alpha + 1)
        print(f"  {alpha:5g}  {cg:9.4f}  {chol:10.4f}  {same:21.4f}  {matched:36.4f}", flush=True)


def mf_quality(args) -> None:
    try:
        from recli.models.mf import MF, MFConfig
    except ImportError:
        return
    split = ml100k_split("random", 0.2, 42)  # = recli prep --split random --test-size 0.2 --seed 42
    model = MF(MFConfig(), get_backend("cpu", 1)).fit(split.train)
    test = split.test.tocoo()
    pred = model.predict(test.row, test.col)
    rmse = float(np.sqrt(np.mean((pred - test.data) ** 2)))
    print(f"mf (defaults {MFConfig()}) on recli prep --split random --test-size 0.2 --seed 42 "
          f"(train {split.train.nnz}, test {test.nnz}): test RMSE = {rmse:.4f} (goal <= 0.93)")


# -- speed ------------------------------------------------------------------
def time_recli(m: sp.csr_matrix, factors: int, iterations: int, threads: int) -> list[float]:
    times: list[float] = []
    cfg = ALSConfig(factors=factors, iterations=iterations, regularization=0.05, solver="cg", cg_steps=3)
    ALS(cfg, get_backend("cpu", threads)).fit(m, on_epoch=lambda info: times.append(info.elapsed))
    return times


def time_implicit(m: sp.csr_matrix, factors: int, iterations: int, threads: int) -> list[float]:
    from implicit.cpu.als import AlternatingLeastSquares

    times: list[float] = []
    imp = AlternatingLeastSquares(factors=factors, iterations=iterations, regularization=0.05, use_cg=True,
                                  num_threads=threads, random_state=42)
    imp.fit(m, show_progress=False, callback=lambda it, elapsed, loss: times.append(elapsed))
    return times


def speed(args: argparse.Namespace) -> None:
    from threadpoolctl import threadpool_limits

    t = time.perf_counter()
    m = zipf_interactions(args.users, args.items, args.nnz, seed=0)
    print(f"generated {m.shape[0]} users x {m.shape[1]} items, {m.nnz} interactions (Zipf 0.8) "
          f"in {time.perf_counter() - t:.1f}s; factors={args.factors}, threads={args.threads}, cg_steps=3")
    time_recli(m[:1000], args.factors, 1, args.threads)  # warm the Numba cache / JIT
    recli_t, impl_t = [], []
    with threadpool_limits(limits=1, user_api="blas"):  # implicit wants single-threaded BLAS too
        for rep in range(args.reps):
            # interleave, alternating who goes first, so load changes hit both sides
            pair = [("recli", time_recli), ("implicit", time_implicit)]
            for name, fn in (pair if rep % 2 == 0 else pair[::-1]):
                per_it = fn(m, args.factors, args.iterations, args.threads)
                (recli_t if name == "recli" else impl_t).extend(per_it)
                print(f"  rep {rep} {name:8s} s/iteration: {' '.join(f'{x:.3f}' for x in per_it)}", flush=True)
    r, i = statistics.median(recli_t), statistics.median(impl_t)
    paired = [statistics.median(recli_t[j:j + args.iterations]) / statistics.median(impl_t[j:j + args.iterations])
              for j in range(0, len(recli_t), args.iterations)]
    print(f"median s/iteration: recli {r:.3f}  implicit {i:.3f}  ratio recli/implicit = {r / i:.2f} (goal <= 0.67)")
    print(f"per-repetition ratios: {' '.join(f'{x:.2f}' for x in paired)}")
    print(f"load average at end: {os.getloadavg()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--factors", type=int, default=64)
    q.add_argument("--regularization", type=float, default=0.05)
    q.add_argument("--alphas", type=lambda t: [float(x) for x in t.split(",")], default=[1.0, 2.0, 5.0],
                   help="comma-separated alpha values to compare at")
    q.add_argument("--iterations", type=int, default=15)
    q.add_argument("--threads", type=int, default=2)
    s = sub.add_parser("speed")
    s.add_argument("--users", type=int, default=100_000)
    s.add_argument("--items", type=int, default=20_000)
    s.add_argument("--nnz", type=int, default=5_000_000)
    s.add_argument("--factors", type=int, default=64)
    s.add_argument("--iterations", type=int, default=3)
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    quality(args) if args.what == "quality" else speed(args)


if __name__ == "__main__":
    main()
