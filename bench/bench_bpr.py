"""Benchmarks for the ``bpr`` and ``warp`` models.

quality  MovieLens 100K, the split of ``recli prep --split leave-random --test-size 0.2
         --seed 42`` (run in-process, ``bench/_ml100k.py``), relevant = every held-out
         row: NDCG@10 / precision@10 of recli bpr vs implicit 0.7.3's CPU
         BayesianPersonalizedRanking with the same settings, and recli warp (vs LightFM
         1.17 WARP when it is importable).
speed    generated 100k users x 20k items x 5M interactions (Zipf popularity), factors=64,
         same threads: seconds per BPR epoch, recli vs implicit, interleaved repetitions.

    python bench/bench_bpr.py quality
    python bench/bench_bpr.py speed --threads 2 --reps 7
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _ml100k import ml100k_split  # noqa: E402


# -- metrics ---------------------------------------------------------------------------
def top_k(scores: np.ndarray, train: sp.csr_matrix, k: int) -> np.ndarray:
    scores = scores.astype(np.float64, copy=True)
    for u in range(scores.shape[0]):
        scores[u, train.indices[train.indptr[u]:train.indptr[u + 1]]] = -np.inf
    part = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def ranking_metrics(recs: np.ndarray, test: sp.csr_matrix, k: int) -> dict[str, float]:
    """Mean NDCG@k and precision@k over users with at least one held-out row."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ndcg, prec = [], []
    for u in range(test.shape[0]):
        truth = test.indices[test.indptr[u]:test.indptr[u + 1]]
        if len(truth) == 0:
            continue
        hits = np.isin(recs[u, :k], truth)
        ideal = discounts[:min(len(truth), k)].sum()
        ndcg.append(float((hits * discounts).sum() / ideal))
        prec.append(float(hits.sum() / k))
    return {"ndcg@10": float(np.mean(ndcg)), "precision@10": float(np.mean(prec))}


# -- quality ---------------------------------------------------------------------------
def recli_scores(name: str, train: sp.csr_matrix, params: dict, threads: int) -> tuple[np.ndarray, float]:
    from recli.backend import get_backend
    from recli.models import get_model_class
    from recli.models.base import build_config

    cls = get_model_class(name)
    model = cls(build_config(cls.Config, params, name), get_backend("cpu", threads))
    t0 = time.perf_counter()
    model.fit(train)
    fit_s = time.perf_counter() - t0
    return model.score(np.arange(train.shape[0]), None), fit_s


def implicit_bpr_scores(train: sp.csr_matrix, p: dict, threads: int) -> tuple[np.ndarray, float]:
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    model = BayesianPersonalizedRanking(factors=p["factors"], learning_rate=p["learning_rate"],
                                        regularization=p["regularization"], iterations=p["iterations"],
                                        num_threads=threads, random_state=p["seed"])
    t0 = time.perf_counter()
    model.fit(train, show_progress=False)
    fit_s = time.perf_counter() - t0
    return model.user_factors @ model.item_factors.T, fit_s


def lightfm_warp_scores(train: sp.csr_matrix, p: dict, threads: int) -> tuple[np.ndarray, float]:
    from lightfm import LightFM  # only when LightFM 1.17 is installed

    model = LightFM(no_components=p["factors"], loss="warp", learning_rate=p["learning_rate"],
                    learning_schedule="adagrad", max_sampled=p["max_sampled"], random_state=p["seed"])
    t0 = time.perf_counter()
    model.fit(train.tocoo(), epochs=p["iterations"], num_threads=threads)
    fit_s = time.perf_counter() - t0
    return model.item_embeddings @ model.user_embeddings.T + model.item_biases[:, None], fit_s


def run_quality(args: argparse.Namespace) -> None:
    split = ml100k_split("leave-random", 0.2, 42, binary=True)  # = recli prep --split leave-random ...
    train, test = split.train, split.test
    print(f"ML-100K, recli prep --split leave-random --test-size 0.2 --seed 42: {train.shape[0]} users, "
          f"{train.shape[1]} items, train {train.nnz}, test {test.nnz}; threads={args.threads}")
    runs = []
    for lr in args.bpr_lr:
        bpr = {"factors": args.factors, "iterations": args.bpr_iterations, "learning_rate": lr,
               "regularization": args.bpr_reg, "seed": 0}
        runs += [("recli bpr", lambda p=bpr: recli_scores("bpr", train, p, args.threads), bpr),
                 ("implicit 0.7.3 bpr", lambda p=bpr: implicit_bpr_scores(train, p, args.threads), bpr)]
    warp = {"factors": args.factors, "iterations": args.warp_iterations, "learning_rate": args.warp_lr,
            "regularization": 0.0, "max_sampled": args.max_sampled, "schedule": "adagrad", "seed": 0}
    runs.append(("recli warp", lambda: recli_scores("warp", train, warp, args.threads), warp))
    try:
        import lightfm  # noqa: F401
        runs.append(("lightfm 1.17 warp", lambda: lightfm_warp_scores(train, warp, args.threads), warp))
    except ImportError as exc:
        print(f"lightfm not importable ({exc}); WARP has no peer in this run")
    for label, fn, params in runs:
        scores, fit_s = fn()
        scores = scores if scores.shape[0] == train.shape[0] else scores.T
        met = ranking_metrics(top_k(scores, train, 10), test, 10)
        print(f"{label:22s} ndcg@10={met['ndcg@10']:.4f} precision@10={met['precision@10']:.4f} "
              f"fit={fit_s:.2f}s  {params}", flush=True)



# -- speed -----------------------------------------------------------------------------
def run_speed(args: argparse.Namespace) -> None:
    """Interleaved per-epoch timings: recli ``bpr_epoch`` vs implicit's ``bpr_update``
    (the function implicit's ``fit`` calls once per epoch), on the same CSR, same
    factors and threads, each on its own factor arrays; then one short ``fit`` of each
    through the public APIs as a cross-check."""
    import numba
    from implicit.cpu.bpr import RNGVector, bpr_update

    from _synth import zipf_interactions
    from recli.kernels.bpr import balanced_bounds, bpr_epoch

    t0 = time.perf_counter()
    m = zipf_interactions(args.users, args.items, args.nnz, seed=0)
    print(f"generated {m.shape[0]} users x {m.shape[1]} items, {m.nnz} interactions (Zipf) "
          f"in {time.perf_counter() - t0:.1f}s; factors={args.factors}, threads={args.threads}")
    k = args.factors
    rng = np.random.default_rng(0)
    U = (rng.random((m.shape[0], k), dtype=np.float32) - 0.5) / k
    V = (rng.random((m.shape[1], k), dtype=np.float32) - 0.5) / k
    b = np.zeros(m.shape[1], dtype=np.float32)
    indptr, indices = m.indptr.astype(np.int64), m.indices.astype(np.int32)
    order = np.arange(m.shape[0], dtype=np.int64)
    numba.set_num_threads(args.threads)
    bounds = balanced_bounds(indptr, args.threads)
    # implicit's layout: factors + 1 columns, the last one the item bias (1 for users).
    X = (rng.random((m.shape[0], k + 1), dtype=np.float32) - 0.5) / k
    X[:, k] = 1.0
    Y = (rng.random((m.shape[1], k + 1), dtype=np.float32) - 0.5) / k
    userids = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr)).astype(m.indices.dtype)
    rngv = RNGVector(args.threads, m.nnz - 1, np.arange(1, args.threads + 1, dtype=np.int64))
    bpr_epoch(indptr, indices, order, bounds, U, V, b, 0.01, 0.01, 0, 0)  # JIT warm-up
    ours, theirs, skipped = [], [], 0.0
    for rep in range(args.reps):
        t = time.perf_counter()
        bpr_epoch(indptr, indices, order, bounds, U, V, b, 0.01, 0.01, 0, rep + 1)
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        _, skip = bpr_update(rngv, userids, m.indices, m.indptr, X, Y, 0.01, 0.01, args.threads, True)
        theirs.append(time.perf_counter() - t)
        skipped = skip / m.nnz
        print(f"  rep {rep}: recli {ours[-1]:.3f}s  implicit {theirs[-1]:.3f}s", flush=True)
    mo, mt = statistics.median(ours), statistics.median(theirs)
    print(f"BPR epoch median: recli {mo:.3f}s, implicit 0.7.3 {mt:.3f}s, ratio {mo / mt:.3f} "
          f"(both draw {m.nnz} triples; implicit skipped {100 * skipped:.1f}% of its draws whose "
          f"negative was a positive, recli redraws them and updates all {m.nnz})")
    fit_crosscheck(m, args)


def fit_crosscheck(m: sp.csr_matrix, args: argparse.Namespace, iterations: int = 3) -> None:
    """Seconds per epoch of a whole ``fit`` (setup included) through both public APIs."""
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    from recli.backend import get_backend
    from recli.models.bpr import BPR, BPRConfig

    cfg = BPRConfig(factors=args.factors, iterations=iterations, learning_rate=0.01, regularization=0.01)
    t = time.perf_counter()
    BPR(cfg, get_backend("cpu", args.threads)).fit(m)
    ours = (time.perf_counter() - t) / iterations
    peer = BayesianPersonalizedRanking(factors=args.factors, iterations=iterations, learning_rate=0.01,
                                       regularization=0.01, num_threads=args.threads, random_state=0)
    t = time.perf_counter()
    peer.fit(m, show_progress=False)
    theirs = (time.perf_counter() - t) / iterations
    print(f"whole fit({iterations} epochs) per epoch: recli {ours:.3f}s, implicit {theirs:.3f}s, "
          f"ratio {ours / theirs:.3f}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    q = sub.add_parser("quality", help="ML-100K NDCG@10 / precision@10")
    q.add_argument("--threads", type=int, default=2)
    q.add_argument("--factors", type=int, default=64)
    q.add_argument("--bpr-iterations", type=int, default=100)
    q.add_argument("--bpr-lr", type=float, nargs="+", default=[0.05, 0.01],
                   help="one comparison per value (0.05: recli default, 0.01: implicit default)")
    q.add_argument("--bpr-reg", type=float, default=0.01)
    q.add_argument("--warp-iterations", type=int, default=30)
    q.add_argument("--warp-lr", type=float, default=0.05)
    q.add_argument("--max-sampled", type=int, default=10)
    s = sub.add_parser("speed", help="seconds per BPR epoch on generated Zipf data")
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--factors", type=int, default=64)
    s.add_argument("--reps", type=int, default=7)
    s.add_argument("--users", type=int, default=100_000)
    s.add_argument("--items", type=int, default=20_000)
    s.add_argument("--nnz", type=int, default=5_000_000)
    args = ap.parse_args(argv)
    run_quality(args) if args.what == "quality" else run_speed(args)


if __name__ == "__main__":
    main()
