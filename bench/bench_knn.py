"""Benchmarks for the neighbourhood models (issue #5).

1. quality: MovieLens 100K, the split of ``recli prep --split leave-random --test-size 0.2
   --seed 42`` (run in-process, ``bench/_ml100k.py``), relevant = all held-out rows,
   NDCG@10 with training items filtered: recli itemknn (cosine, BM25) vs implicit 0.7.3's
   CosineRecommender / BM25Recommender with the same K, plus EASE and implicit's ALS for
   reference. implicit's K counts the item itself, so recli's K-1 is also shown next to
   implicit's K: that is the same neighbourhood, and the scores agree to 4 decimals.
2. speed: similarity build on a generated 100k users × 20k items × 5M interactions set
   (Zipf item and user popularity), K=100: recli's itemknn ``fit`` (the item–item cosine
   similarity, transposes included) vs implicit's CosineRecommender.fit in the same
   process, interleaved repetitions, medians, ratio and peak memory (RSS growth during the
   call, sampled every 5 ms).

    python bench/bench_knn.py quality [--data ../shared/data/ml-100k/u.data]
    python bench/bench_knn.py speed [--reps 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
warnings.filterwarnings("ignore")  # implicit's "expects CSR" / threadpool warnings


# -- data ----------------------------------------------------------------------------
def generate(n_users=100_000, n_items=20_000, nnz=5_000_000, seed=0, item_exp=0.9, user_exp=0.5):
    """Zipf-popular items and users, unique (user, item) pairs, ratings 1..5."""
    rng = np.random.default_rng(seed)
    ip = 1.0 / np.arange(1, n_items + 1) ** item_exp
    up = 1.0 / np.arange(1, n_users + 1) ** user_exp
    ip = (ip / ip.sum())[rng.permutation(n_items)]
    up = (up / up.sum())[rng.permutation(n_users)]
    keys = np.empty(0, np.int64)
    while keys.size < nnz:
        m = int((nnz - keys.size) * 1.3) + 1000
        u = rng.choice(n_users, m, p=up)
        i = rng.choice(n_items, m, p=ip)
        keys = np.unique(np.concatenate([keys, u.astype(np.int64) * n_items + i]))
    u, i = np.divmod(rng.permutation(keys)[:nnz], n_items)
    data = rng.integers(1, 6, nnz).astype(np.float32)
    return sp.csr_matrix((data, (u, i)), shape=(n_users, n_items), dtype=np.float32)


# -- metrics -------------------------------------------------------------------------
def ndcg_at_k(top: np.ndarray, test: sp.csr_matrix, users: np.ndarray, k: int = 10) -> float:
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    vals = []
    for row, u in zip(top, users):
        rel = set(test.indices[test.indptr[u]:test.indptr[u + 1]].tolist())
        dcg = sum(disc[r] for r, i in enumerate(row[:k]) if i in rel)
        vals.append(dcg / disc[:min(k, len(rel))].sum())
    return float(np.mean(vals))


def top_from_scores(scores: np.ndarray, train_rows: sp.csr_matrix, k: int = 10) -> np.ndarray:
    scores = scores.astype(np.float64).copy()
    r = np.repeat(np.arange(train_rows.shape[0]), np.diff(train_rows.indptr))
    scores[r, train_rows.indices] = -np.inf
    order = np.lexsort((np.broadcast_to(np.arange(scores.shape[1]), scores.shape), -scores), axis=1)
    return order[:, :k]


def quality(args) -> None:
    from implicit.als import AlternatingLeastSquares
    from implicit.nearest_neighbours import BM25Recommender, CosineRecommender

    from recli.backend import get_backend
    from recli.models import get_model_class
    from recli.models.base import build_config

    from _ml100k import ml100k_split

    split = ml100k_split("leave-random", 0.2, 42, path=args.data)  # = recli prep --split leave-random ...
    train, test = split.train, split.test
    eval_users = np.flatnonzero(np.diff(test.indptr) > 0)
    print(f"ML-100K: {train.nnz} train / {test.nnz} test rows, {len(eval_users)} test users "
          f"(recli prep --split leave-random --test-size 0.2 --seed 42); input values = ratings; "
          f"NDCG@10 over all held-out rows")

    def recli_ndcg(name, **params):
        cls = get_model_class(name)
        model = cls(build_config(cls.Config, params, name), get_backend("cpu", args.threads))
        t = time.perf_counter()
        model.fit(train)
        fit_s = time.perf_counter() - t
        top = top_from_scores(model.score(eval_users), train[eval_users])
        return ndcg_at_k(top, test, eval_users), fit_s

    def implicit_ndcg(model):
        t = time.perf_counter()
        model.fit(train, show_progress=False)
        fit_s = time.perf_counter() - t
        ids, _ = model.recommend(eval_users, train[eval_users], N=10, filter_already_liked_items=True)
        return ndcg_at_k(ids, test, eval_users), fit_s

    rows = []
    for k in args.ks:
        cos = implicit_ndcg(CosineRecommender(K=k, num_threads=args.threads))
        bm25 = implicit_ndcg(BM25Recommender(K=k, num_threads=args.threads))
        rows.append((f"itemknn cosine K={k}", *recli_ndcg("itemknn", neighbours=k, similarity="cosine"),
                     f"implicit CosineRecommender K={k}", *cos))
        # implicit's K counts the item itself (its similarity rows keep i among i's K best),
        # so its K neighbourhood is recli's K-1: the same model, shown for comparison
        rows.append((f"itemknn cosine K={k - 1}", *recli_ndcg("itemknn", neighbours=k - 1, similarity="cosine"),
                     f"implicit CosineRecommender K={k}", *cos))
        rows.append((f"itemknn bm25+dot K={k}",
                     *recli_ndcg("itemknn", neighbours=k, similarity="dot", weighting="bm25"),
                     f"implicit BM25Recommender K={k}", *bm25))
        rows.append((f"itemknn bm25+dot K={k - 1}",
                     *recli_ndcg("itemknn", neighbours=k - 1, similarity="dot", weighting="bm25"),
                     f"implicit BM25Recommender K={k}", *bm25))
        rows.append((f"itemknn bm25+cosine K={k}",
                     *recli_ndcg("itemknn", neighbours=k, similarity="cosine", weighting="bm25"), "", None, None))
    for lam in args.lambdas:
        rows.append((f"ease lambda={lam:g}", *recli_ndcg("ease", lambda_=lam), "", None, None))
    als = AlternatingLeastSquares(factors=64, regularization=0.05, iterations=15, alpha=1.0,
                                  random_state=42, num_threads=args.threads)
    rows.append(("", None, None, "implicit ALS f=64 reg=0.05 it=15", *implicit_ndcg(als)))
    print("| recli | NDCG@10 | fit s | peer | NDCG@10 | fit s |\n|---|---:|---:|---|---:|---:|")
    for name, nd, ft, peer, pnd, pft in rows:
        fmt = lambda v, spec: "" if v is None else format(v, spec)  # noqa: E731
        print(f"| {name} | {fmt(nd, '.4f')} | {fmt(ft, '.2f')} | {peer} | {fmt(pnd, '.4f')} | {fmt(pft, '.2f')} |")


# -- speed -----------------------------------------------------------------------------
def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def release_free_memory() -> None:
    """Hand freed heap pages back to the OS (glibc ``malloc_trim``), so the next call's RSS
    growth counts its own allocations rather than reusing an earlier call's freed memory."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the figure is then a lower bound
        pass


def timed_peak(fn):
    """(wall seconds, peak RSS growth in bytes, process CPU seconds) of ``fn()``, sampling
    RSS every 5 ms. CPU time (all threads) is less distorted by other processes' load."""
    import gc

    gc.collect()
    release_free_memory()
    base = rss_bytes()
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(0.005)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t, cpu = time.perf_counter(), time.process_time()
    result = fn()
    elapsed, cpu = time.perf_counter() - t, time.process_time() - cpu
    done.set()
    th.join()
    peak[0] = max(peak[0], rss_bytes())
    del result
    return elapsed, peak[0] - base, cpu


def speed(args) -> None:
    import numba
    from implicit.nearest_neighbours import CosineRecommender

    from recli.backend import get_backend
    from recli.models import get_model_class
    from recli.models.base import build_config

    numba.set_num_threads(args.threads)
    t = time.perf_counter()
    x = generate()
    print(f"generated {x.shape[0]} users × {x.shape[1]} items × {x.nnz} interactions in {time.perf_counter() - t:.1f}s; "
          f"K=100, cosine, threads={args.threads}; load average before: {os.getloadavg()}")
    cls = get_model_class("itemknn")
    config = build_config(cls.Config, {"neighbours": 100, "similarity": "cosine"}, "itemknn")
    backend = get_backend("cpu", args.threads)
    cls(config, backend).fit(x[:3000])  # JIT warm-up (cached)

    def run_recli():  # what `recli train itemknn` runs, from the same user × item matrix
        return cls(config, backend).fit(x)

    def run_implicit():
        model = CosineRecommender(K=100, num_threads=args.threads)
        model.fit(x, show_progress=False)
        return model

    res = {"recli": [], "implicit": []}
    for rep in range(args.reps):
        order = [("recli", run_recli), ("implicit", run_implicit)]
        for name, fn in order if rep % 2 == 0 else order[::-1]:
            res[name].append(timed_peak(fn))
            wall, peak, cpu = res[name][-1]
            print(f"rep {rep} {name}: {wall:.2f}s wall, {cpu:.2f}s CPU, peak +{peak / 2**20:.0f} MiB", flush=True)
    med = {k: float(np.median([v[0] for v in vals])) for k, vals in res.items()}
    cpu = {k: float(np.median([v[2] for v in vals])) for k, vals in res.items()}
    mem = {k: max(v[1] for v in vals) / 2**20 for k, vals in res.items()}
    print(f"median recli {med['recli']:.2f}s (peak +{mem['recli']:.0f} MiB), implicit {med['implicit']:.2f}s "
          f"(peak +{mem['implicit']:.0f} MiB), ratio recli/implicit = {med['recli'] / med['implicit']:.2f}; "
          f"median CPU seconds recli {cpu['recli']:.2f}, implicit {cpu['implicit']:.2f}, "
          f"ratio {cpu['recli'] / cpu['implicit']:.2f}; "
          f"load average after: {os.getloadavg()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--data", default=str(Path(__file__).resolve().parent.parent.parent / "shared/data/ml-100k/u.data"))
    q.add_argument("--ks", type=int, nargs="+", default=[10, 20, 50, 100, 200])
    q.add_argument("--lambdas", type=float, nargs="+", default=[100.0, 500.0])
    q.add_argument("--threads", type=int, default=2)
    s = sub.add_parser("speed")
    s.add_argument("--reps", type=int, default=3)
    s.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    quality(args) if args.what == "quality" else speed(args)


if __name__ == "__main__":
    main()
