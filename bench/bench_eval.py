"""Benchmark ``recli eval`` compute after load: 1M users x k=10 against a 5M-row test set.

Times, interleaved over repetitions (the machine may be shared, so medians are reported):

- ``recli stage``: ``recli.stages.evaluate.evaluate`` from loaded Polars frames to the
  results frame (id mapping, list building, duplicate check, default metrics at k).
- ``recli arrays``: ``recli.metrics.evaluate_arrays`` from CSR arrays, computing what
  implicit computes (precision, map, ndcg, auc with ``compat="implicit"``).
- ``implicit``: ``implicit.evaluation.ranking_metrics_at_k`` on the same lists and CSR
  (a model stub that returns the precomputed lists), the peer.

The two array-level runs must agree to 1e-9, which the script checks.

Run: ``python bench/bench_eval.py`` (options: ``--users --items --k --test-rows --reps``;
``--string-ids`` gives the stage string ids, as ``recli recommend`` writes them;
``--prefixed-ids`` ids like ``u17`` / ``i42``, as the synthetic generator names them).

``--cli DIR`` times ``recli eval DIR/recs.parquet --test DIR/test.parquet`` end to end
instead (a fresh process per run: imports, reading, id mapping, lists, metrics, output),
with the ids chosen as above.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def make_data(n_users: int, n_items: int, k: int, test_rows: int, seed: int = 0):
    """Popularity-skewed lists (distinct items per user) and test pairs, as frames."""
    import polars as pl

    rng = np.random.default_rng(seed)
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.8
    pop /= pop.sum()
    start = rng.choice(n_items, n_users, p=pop)
    step = rng.integers(1, 97, n_users)
    rec = ((start[:, None] + step[:, None] * np.arange(k)[None, :] * 7919) % n_items).astype(np.int32)
    # distinct per row when 7919*step is coprime-ish to n_items; repair the rare clashes
    srt = np.sort(rec, axis=1)
    bad = np.flatnonzero((srt[:, 1:] == srt[:, :-1]).any(axis=1))
    for u in bad:
        rec[u] = rng.choice(n_items, k, replace=False)
    test = pl.DataFrame({"user": rng.integers(0, n_users, test_rows), "item": rng.choice(n_items, test_rows, p=pop)})
    test = test.unique(maintain_order=True)
    recs = pl.DataFrame({"user": np.repeat(np.arange(n_users, dtype=np.int64), k),
                         "item": rec.ravel().astype(np.int64),
                         "rank": np.tile(np.arange(1, k + 1, dtype=np.int64), n_users)})
    return recs, test, rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--items", type=int, default=50_000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--test-rows", type=int, default=5_000_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--string-ids", action="store_true", help="ids as strings in the stage's frames")
    ap.add_argument("--prefixed-ids", action="store_true", help="ids as strings like u17 and i42")
    ap.add_argument("--cli", metavar="DIR", help="time `recli eval` end to end on Parquet files written to DIR")
    args = ap.parse_args()
    if args.cli:
        return run_cli(args)

    import numba
    import scipy.sparse as sp

    from recli.metrics import evaluate_arrays
    from recli.stages.evaluate import evaluate

    t0 = time.perf_counter()
    recs, test, rec = make_data(args.users, args.items, args.k, args.test_rows)
    csr = sp.csr_matrix((np.ones(test.height, dtype=np.float32), (test["user"].to_numpy(), test["item"].to_numpy())),
                        shape=(args.users, args.items))
    csr.sum_duplicates()
    train = sp.csr_matrix((args.users, args.items), dtype=np.float32)
    print(f"data: {args.users:,} users x k={args.k} ({recs.height:,} rec rows), {test.height:,} test rows, "
          f"{args.items:,} items; generated in {time.perf_counter() - t0:.1f}s; "
          f"{numba.get_num_threads()} numba threads, {os.cpu_count()} cpus", flush=True)

    names = ["precision", "map", "ndcg", "auc"]

    recs, test = with_ids(recs, test, args)

    def run_stage():
        return evaluate([("bench", recs)], test, ks=[args.k]).results

    def run_arrays():
        return evaluate_arrays(rec, csr.indptr, csr.indices, [args.k], names, n_items=args.items, compat="implicit")

    peer = _implicit_peer(rec, csr, train, args.k)
    # warm-up: JIT compile / cache load, untimed
    evaluate([("warm", recs.head(1000))], test.head(1000), ks=[args.k])
    run_arrays()
    times = {"recli stage (frames -> results)": [], "recli arrays (evaluate_arrays)": [], "implicit ranking_metrics_at_k": []}
    fns = list(zip(times, (run_stage, run_arrays, peer)))
    results = {}
    for rep in range(args.reps):
        order = fns if rep % 2 == 0 else fns[::-1]  # alternate the order: contention hits both
        for name, fn in order:
            t = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - t)
    ours, theirs = results["recli arrays (evaluate_arrays)"], results["implicit ranking_metrics_at_k"]
    for m in names:
        assert abs(ours[f"{m}@{args.k}"] - theirs[m]) < 1e-9, (m, ours, theirs)
    print("values agree with implicit to 1e-9:", {m: round(theirs[m], 6) for m in names})
    print(results["recli stage (frames -> results)"].select("metric", "k", "value", "users"))
    med = {name: statistics.median(ts) for name, ts in times.items()}
    for name, ts in times.items():
        print(f"{name:36s} median {med[name]:.3f}s  (runs: {', '.join(f'{t:.2f}' for t in ts)})")
    ratio = med["implicit ranking_metrics_at_k"] / med["recli arrays (evaluate_arrays)"]
    print(f"implicit / recli arrays: {ratio:.1f}x")


def with_ids(recs, test, args):
    """The frames with the id spelling the options ask for (integers by default)."""
    import polars as pl

    if args.prefixed_ids:
        return tuple(f.with_columns(pl.format("u{}", "user").alias("user"), pl.format("i{}", "item").alias("item"))
                     for f in (recs, test))
    if args.string_ids:
        return tuple(f.with_columns(pl.col("user", "item").cast(pl.Utf8)) for f in (recs, test))
    return recs, test


def run_cli(args) -> None:
    """Median wall time of ``recli eval`` on Parquet files, one fresh process per run."""
    import subprocess

    folder = Path(args.cli)
    folder.mkdir(parents=True, exist_ok=True)
    recs, test, _ = make_data(args.users, args.items, args.k, args.test_rows)
    recs, test = with_ids(recs, test, args)
    recs.write_parquet(folder / "recs.parquet")
    test.write_parquet(folder / "test.parquet")
    cmd = [sys.executable, "-m", "recli", "eval", str(folder / "recs.parquet"), "--test", str(folder / "test.parquet")]
    root = Path(__file__).resolve().parent.parent  # this checkout's recli, not an installed one
    subprocess.run(cmd, check=True, capture_output=True, cwd=root)  # warm-up: Numba's cache, the OS file cache
    times = []
    for _ in range(args.reps):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=root)
        times.append(time.perf_counter() - t)
    print(f"recli eval end to end: median {statistics.median(times):.2f}s (runs: {', '.join(f'{t:.2f}' for t in times)})")


def _implicit_peer(rec: np.ndarray, test, train, k: int):
    from implicit.evaluation import ranking_metrics_at_k
    from implicit.recommender_base import RecommenderBase

    class Precomputed(RecommenderBase):
        """Returns the precomputed lists, so only the evaluation itself is timed."""

        def recommend(self, userid, user_items, N=10, **_):
            ids = rec[np.atleast_1d(userid), :N]
            return ids, np.zeros(ids.shape, dtype=np.float32)

        fit = recalculate_user = recalculate_item = similar_items = similar_users = None
        save = load = to_cpu = to_gpu = None

    model = Precomputed()
    return lambda: ranking_metrics_at_k(model, train, test, K=k, show_progress=False, num_threads=0)


if __name__ == "__main__":
    main()
