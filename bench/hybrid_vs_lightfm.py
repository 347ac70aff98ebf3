"""recli ``hybrid`` against LightFM (lightfm-next 1.19.0) on MovieLens 100K with item features.

    python bench/hybrid_vs_lightfm.py --data-dir ../shared/data/ml-100k \\
        --split warm --split cold --loss warp --threads 1 --epochs 30 --repeat 3

Both libraries get the same training matrix (values 1), the same item feature matrix (by
default the identity plus the 19 ``u.item`` genre flags, LightFM's convention; or a long
``item, feature, value`` file from ``recli prep`` with ``--item-features``), the same
factors, loss, learning rate, ``max_sampled``, epochs and threads.

Splits (seeded):

* ``warm``: leave-random, 20% of each user's rows held out (every test item is in training);
  NDCG@10 ranks every item, training items filtered.
* ``cold``: 20% of the items, with all their rows, held out (they have features but no
  training rows); NDCG@10 ranks the cold items only, for the users with a held-out row.

Time per epoch is the median over epochs of one ``fit_partial(epochs=1)`` call (LightFM)
and of recli's ``on_epoch`` ``elapsed`` (the kernel plus the representations); the first
epoch of each library is left out (compilation, caches). NDCG@10 is binary relevance
(every held-out row relevant), ideal DCG over ``min(|truth|, 10)``, averaged over users.
The libraries run interleaved, alternating who goes first. The output is one CSV row per
(split, library, repeat) on stdout, then medians and the time ratio on stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp


def load(data_dir: Path) -> tuple[np.ndarray, np.ndarray, int, int]:
    """``(user index, item index, n_users, n_items)`` of ``u.data`` (ids are 1-based)."""
    raw = np.loadtxt(data_dir / "u.data", dtype=np.int64, usecols=(0, 1))
    n_items = len((data_dir / "u.item").read_text(encoding="latin-1").splitlines())
    return raw[:, 0] - 1, raw[:, 1] - 1, int(raw[:, 0].max()), n_items


def genre_features(data_dir: Path, n_items: int) -> sp.csr_matrix:
    """Identity plus the 19 genre flags of ``u.item`` (row ``i`` = item id ``i + 1``)."""
    lines = (data_dir / "u.item").read_text(encoding="latin-1").splitlines()
    genres = np.array([[int(x) for x in line.split("|")[-19:]] for line in lines], np.float32)
    return sp.hstack([sp.identity(n_items, dtype=np.float32, format="csr"), sp.csr_matrix(genres)]).tocsr()


def long_features(path: Path, n_items: int) -> sp.csr_matrix:
    """A long ``item, feature, value`` file (CSV or Parquet) over item ids ``1..n_items``."""
    import polars as pl

    df = pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_csv(path)
    items = df["item"].cast(pl.Int64).to_numpy() - 1
    names, cols = np.unique(df["feature"].cast(pl.Utf8).to_numpy(), return_inverse=True)
    vals = df["value"].cast(pl.Float32).to_numpy() if "value" in df.columns else np.ones(df.height, np.float32)
    return sp.csr_matrix((vals, (items, cols)), shape=(n_items, len(names)), dtype=np.float32)


def write_long(features: sp.csr_matrix, path: Path) -> None:
    """The default features as the long file ``recli train --item-features`` reads."""
    import polars as pl

    coo = features.tocoo()
    names = [f"item:{i + 1}" for i in range(features.shape[0])] + [f"genre:{g}" for g in range(19)]
    pl.DataFrame({"item": coo.row + 1, "feature": [names[c] for c in coo.col], "value": coo.data}).write_parquet(path)


def split(users, items, n_users, n_items, kind: str, seed: int):
    """``(train CSR, test CSR, candidate items)`` of a seeded split (module docstring)."""
    rng = np.random.default_rng(seed)
    if kind == "warm":
        test = np.zeros(users.shape[0], dtype=bool)
        order = np.argsort(users, kind="stable")
        for rows in np.split(order, np.flatnonzero(np.diff(users[order])) + 1):
            test[rng.choice(rows, size=int(round(0.2 * len(rows))), replace=False)] = True
        candidates = np.arange(n_items)
    else:
        candidates = np.sort(rng.choice(n_items, size=n_items // 5, replace=False))
        test = np.isin(items, candidates)

    def csr(mask):
        return sp.csr_matrix((np.ones(mask.sum(), np.float32), (users[mask], items[mask])), shape=(n_users, n_items))

    return csr(~test), csr(test), candidates


def ndcg_at_10(scores: np.ndarray, train: sp.csr_matrix, test: sp.csr_matrix, candidates: np.ndarray) -> float:
    """Mean NDCG@10 over users with a test row, ranking ``candidates`` minus training items."""
    disc = 1.0 / np.log2(np.arange(2, 12))
    mask = np.full(scores.shape[1], -np.inf, np.float32)
    mask[candidates] = 0.0
    out = []
    for u in np.flatnonzero(np.diff(test.indptr)):
        s = scores[u] + mask
        s[train.indices[train.indptr[u]:train.indptr[u + 1]]] = -np.inf
        top = np.argsort(-s, kind="stable")[:10]
        truth = test.indices[test.indptr[u]:test.indptr[u + 1]]
        out.append((np.isin(top, truth) * disc).sum() / disc[:min(len(truth), 10)].sum())
    return float(np.mean(out))


def run_recli(train, features, args, seed):
    from recli.backend import get_backend
    from recli.data.side import SideFeatures
    from recli.models.base import build_config
    from recli.models.hybrid import Hybrid

    params = {"factors": args.factors, "iterations": args.epochs, "loss": args.loss, "seed": seed,
              "learning_rate": args.learning_rate, "max_sampled": args.max_sampled, "sampling": args.sampling}
    model = Hybrid(build_config(Hybrid.Config, params, "hybrid"), get_backend("cpu", args.threads))
    times: list[float] = []
    side = SideFeatures(features, np.array([str(j) for j in range(features.shape[1])]))
    model.fit(train, on_epoch=lambda info: times.append(info.elapsed), item_features=side)
    return model.score(np.arange(train.shape[0]), None), times


def run_lightfm(train, features, args, seed):
    from lightfm import LightFM

    model = LightFM(no_components=args.factors, loss=args.loss, learning_rate=args.learning_rate,
                    max_sampled=args.max_sampled, random_state=seed)
    coo, times = train.tocoo(), []
    for _ in range(args.epochs):
        t = time.perf_counter()
        model.fit_partial(coo, item_features=features, epochs=1, num_threads=args.threads)
        times.append(time.perf_counter() - t)
    _, users = model.get_user_representations()  # a user's bias does not change its ranking
    bias, items = model.get_item_representations(features)
    return users @ items.T + bias[None, :], times


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, default=Path("../shared/data/ml-100k"))
    ap.add_argument("--item-features", type=Path, help="long item,feature,value file (default: identity + genres)")
    ap.add_argument("--write-features", type=Path, help="write the default features as a long Parquet file")
    ap.add_argument("--split", action="append", choices=("warm", "cold"))
    ap.add_argument("--loss", default="warp", choices=("warp", "bpr"))
    ap.add_argument("--sampling", default="uniform", choices=("uniform", "popular"),
                    help="recli's negative sampling (LightFM's bpr samples popular, its warp uniform)")
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--learning-rate", type=float, default=0.05)
    ap.add_argument("--max-sampled", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args(argv)
    users, items, n_users, n_items = load(args.data_dir)
    features = (long_features(args.item_features, n_items) if args.item_features
                else genre_features(args.data_dir, n_items))
    if args.write_features:
        write_long(features, args.write_features)
    print("split,library,repeat,ndcg_at_10,s_per_epoch,epochs,threads,factors,loss")
    summary = []
    for kind in args.split or ["warm", "cold"]:
        train, test, candidates = split(users, items, n_users, n_items, kind, args.seed)
        rows: dict[str, list[tuple[float, float]]] = {"recli": [], "lightfm": []}
        for r in range(args.repeat):
            # interleaved, alternating who goes first, so a change of load hits both alike
            pair = [("recli", run_recli), ("lightfm", run_lightfm)]
            for library, runner in pair if r % 2 == 0 else pair[::-1]:
                scores, times = runner(train, features, args, args.seed + r)
                ndcg, per_epoch = ndcg_at_10(scores, train, test, candidates), float(np.median(times[1:] or times))
                rows[library].append((ndcg, per_epoch))
                print(f"{kind},{library},{r},{ndcg:.4f},{per_epoch:.4f},{args.epochs},{args.threads},"
                      f"{args.factors},{args.loss}", flush=True)
        summary += [(kind, lib, *np.median(np.array(v), axis=0)) for lib, v in rows.items()]
    for kind, library, ndcg, per_epoch in summary:
        print(f"{kind:5} {library:8} NDCG@10 {ndcg:.4f}  {per_epoch:.4f} s/epoch", file=sys.stderr)
    for (kind, _, ndcg, t), (_, _, peer_ndcg, peer_t) in zip(summary[::2], summary[1::2]):
        print(f"{kind:5} recli/lightfm: NDCG@10 {ndcg - peer_ndcg:+.4f}, time per epoch x{t / peer_t:.2f}",
              file=sys.stderr)


if __name__ == "__main__":
    main()
