"""Benchmark: top-10 for every user, recli vs implicit 0.7.3, same random factors.

Data: a generated 100k users x 20k items matrix with ~5M interactions (Zipf item
popularity, lognormal user activity), random float32 factors (factors=64). Both sides
filter each user's training items and return the 10 best items per user:

* recli: the ``recommend --all-users`` pipeline (``recli.stages.recommend``: batched BLAS
  scores through ``model.score``, then the parallel Numba top-k kernel reading the CSR in
  place), measured as arrays (``recli-arrays``) and with the id-mapped output frames
  (``recli-frames``, what the CLI writes);
* implicit: ``AlternatingLeastSquares.recommend(all users, user_items, N=10)``.

Runs alternate (recli, implicit, recli, ...) so the shared machine's load hits both
alike; medians and the throughput ratio are printed. Then ``recli recommend`` for one
user is timed as a real process on a warm Numba/page cache (median of 5).

    python bench/bench_recommend.py                 # full size
    python bench/bench_recommend.py --users 20000 --items 5000 --nnz 500000 --reps 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import polars as pl
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recli.artifacts import ModelFile, save_model  # noqa: E402
from recli.backend import threads_context  # noqa: E402
from recli.data.matrix import csr_arrays  # noqa: E402
from recli.data.vocab import Vocab  # noqa: E402
from recli.models.base import Model  # noqa: E402


def generate(n_users: int, n_items: int, nnz: int, seed: int = 0) -> sp.csr_matrix:
    """Zipf(1.0) item popularity, lognormal user activity; exactly ``nnz`` distinct cells
    (drawn with surplus, duplicates collapsed, then subsampled)."""
    rng = np.random.default_rng(seed)
    item_p = 1.0 / np.arange(1, n_items + 1) ** 1.0
    item_p /= item_p.sum()
    activity = rng.lognormal(0.0, 1.0, n_users)
    draw = int(nnz * 1.6)
    items = rng.permutation(n_items)[rng.choice(n_items, size=draw, p=item_p)]
    users = rng.choice(n_users, size=draw, p=activity / activity.sum())
    cells = np.unique(users.astype(np.int64) * n_items + items)
    if cells.shape[0] > nnz:
        cells = np.sort(rng.choice(cells, size=nnz, replace=False))
    m = sp.csr_matrix((np.ones(cells.shape[0], np.float32), (cells // n_items, cells % n_items)),
                      shape=(n_users, n_items))
    m.sort_indices()
    return m


@dataclass
class DotConfig:
    pass


class DotModel(Model):
    """Bench-only factor model: score = U[u] · Vᵀ (what every factor model's score does)."""

    name: ClassVar[str] = "dot"
    Config: ClassVar[type] = DotConfig

    def __init__(self, user_factors, item_factors):
        super().__init__(config=None)
        self.user_factors, self.item_factors = user_factors, item_factors

    def score(self, uidx, history=None):
        return self.user_factors[uidx] @ self.item_factors.T


def recli_all_users(mf: ModelFile, k: int, threads: int, batch_size: int, frames: bool):
    from recli.stages.recommend import UserPlan, recommend_batches, to_frame

    plan = UserPlan(mf.users.ids.to_list() if frames else [], np.arange(len(mf.users), dtype=np.int64), None)
    if not frames:
        plan.ids = range(len(mf.users))  # only len() is used without frames
    out = []
    with threads_context(threads):
        for pos, items, scores in recommend_batches(mf, plan, k, batch_size=batch_size):
            out.append(to_frame(plan.ids, mf.items, pos, items, scores) if frames else items)
    return out


def implicit_all_users(model, user_items: sp.csr_matrix, k: int, threads: int):
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads, user_api="blas"):
        ids, _ = model.recommend(np.arange(user_items.shape[0]), user_items, N=k, filter_already_liked_items=True)
    return ids


def one_user_latency(model_dir: Path, user: str, threads: int, reps: int = 5,
                     exe: str | None = None) -> tuple[list[float], list[float]]:
    """Wall seconds and CPU seconds (user + sys of the child) of ``recli recommend --user``.

    ``exe``: an installed ``recli`` console script to time instead of this checkout's source."""
    import resource

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    prog = [sys.executable, "-m", "recli"]
    if exe:
        env.pop("PYTHONPATH")
        prog = [exe]
    cmd = [*prog, "recommend", str(model_dir), "--user", user, "-k", "10",
           "--threads", str(threads)]
    subprocess.run(cmd, env=env, capture_output=True, check=True)  # warm the Numba, checksum and page caches
    walls, cpus = [], []
    for _ in range(reps):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        res = subprocess.run(cmd, env=env, capture_output=True, check=True)
        walls.append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        assert res.stdout.count(b"\n") == 11, res.stdout
    baseline = []
    for _ in range(reps):  # the interpreter alone, for scale on a loaded machine
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        baseline.append(time.perf_counter() - t)
    return walls, cpus, baseline


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--nnz", type=int, default=5_000_000)
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--exe", default=None, help="time this installed recli executable for the one-user latency")
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--latency-only", action="store_true", help="skip the all-users comparison")
    args = ap.parse_args()

    t = time.perf_counter()
    ui = generate(args.users, args.items, args.nnz)
    rng = np.random.default_rng(1)
    U = rng.standard_normal((args.users, args.factors), dtype=np.float32)
    V = rng.standard_normal((args.items, args.factors), dtype=np.float32)
    print(f"data: {args.users} users x {args.items} items, {ui.nnz} interactions, factors={args.factors}, "
          f"threads={args.threads} ({time.perf_counter() - t:.1f}s to generate)", file=sys.stderr)

    users = Vocab(pl.Series([f"u{i:06d}" for i in range(args.users)]))
    items = Vocab(pl.Series([f"i{i:05d}" for i in range(args.items)]))
    mf = ModelFile(DotModel(U, V), users, items, csr_arrays(ui), {})

    from implicit.cpu.als import AlternatingLeastSquares

    imp = AlternatingLeastSquares(factors=args.factors, num_threads=args.threads, random_state=0)
    imp.user_factors, imp.item_factors = U, V

    # warm-up (JIT, caches) and a correctness check: same items on both sides
    from recli.stages.recommend import UserPlan, recommend_batches

    first = UserPlan(range(args.batch_size), np.arange(args.batch_size, dtype=np.int64), None)
    with threads_context(args.threads):
        ours = next(recommend_batches(mf, first, args.k, batch_size=args.batch_size))[1]
    theirs = implicit_all_users(imp, ui[: ours.shape[0]], args.k, args.threads)
    agree = float((ours == theirs).mean())
    print(f"top-{args.k} agreement with implicit on the first batch: {agree:.4%}", file=sys.stderr)

    timings = {"recli-arrays": [], "recli-frames": [], "implicit": []}
    for rep in range(0 if args.latency_only else args.reps):
        for name in (("recli-arrays", "implicit", "recli-frames") if rep % 2 == 0 else
                     ("implicit", "recli-frames", "recli-arrays")):
            t = time.perf_counter()
            if name == "implicit":
                implicit_all_users(imp, ui, args.k, args.threads)
            else:
                recli_all_users(mf, args.k, args.threads, args.batch_size, frames=name == "recli-frames")
            timings[name].append(time.perf_counter() - t)
            print(f"  rep {rep + 1} {name:13s} {timings[name][-1]:.2f}s", file=sys.stderr)

    result = {"users": args.users, "items": args.items, "interactions": int(ui.nnz), "factors": args.factors,
              "threads": args.threads, "k": args.k, "batch_size": args.batch_size, "reps": args.reps}
    if not args.latency_only:
        med = {name: statistics.median(v) for name, v in timings.items()}
        result.update({"median_seconds": {n: round(v, 3) for n, v in med.items()},
                       "users_per_second": {n: round(args.users / v) for n, v in med.items()},
                       "speedup_vs_implicit": {n: round(med["implicit"] / med[n], 2)
                                               for n in ("recli-arrays", "recli-frames")}})

    # one user through the real CLI, on a model file with the same training matrix
    from recli.models import registry

    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent) as tmp:
        models = registry()
        if "als" in models:
            cls = models["als"]
            model = cls.from_arrays(cls.Config(factors=args.factors), {"user_factors": U, "item_factors": V})
        else:  # before the factor models are merged: the baseline, same file layout and training CSR
            from recli.models.popular import Popular

            model = Popular().fit(ui)
        from recli.models.base import config_to_dict

        save_model(Path(tmp) / "m", model, users, items, ui, {"config": config_to_dict(model.config)})
        walls, cpus, bare = one_user_latency(Path(tmp) / "m", users.ids[12345 % args.users], args.threads,
                                                 exe=args.exe)
        result["one_user_cli"] = {"model": model.name, "median_wall_seconds": round(statistics.median(walls), 3),
                                  "median_cpu_seconds": round(statistics.median(cpus), 3),
                                  "median_bare_python_wall_seconds": round(statistics.median(bare), 3),
                                  "wall_runs": [round(x, 3) for x in walls]}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
