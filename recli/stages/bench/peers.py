"""Peer libraries measured at the same boundary as recli (``recli bench --against``).

Boundaries (documented in docs/benchmarks.md):

* **fit**: the same training CSR (values 1) already in memory, the same threads (the
  peer's ``num_threads``; BLAS capped at the same count), the same factors, iterations,
  regularization and learning rate. Seconds per epoch come from the time between the
  peer's epoch callbacks (implicit) or one ``fit_partial`` epoch at a time (LightFM).
* **recommend_all**: top-k for every training user with training items filtered, then the
  same ``user,item,score,rank`` CSV with the original string ids, written by the same
  writer recli's ``recommend --all-users`` uses.
* **recommend_one**: one user's top-k, written as the same CSV line block.
* **eval**: top-10 for every test user, then NDCG@10 and recall@10 by recli's evaluator on
  the same held-out rows (so quality is computed identically for every library).

Model mapping: implicit ``AlternatingLeastSquares`` (CG solver, alpha + 1: implicit's
confidence is ``alpha·r``, recli's ``1 + alpha·r``, equal on binary data),
``BayesianPersonalizedRanking``, ``CosineRecommender`` / ``BM25Recommender`` with K =
neighbours + 1 (implicit's K counts the item itself); LightFM ``warp`` and ``bpr`` losses, and
for ``hybrid`` (identity features: bench data has no side features) its loss, schedule and
alphas (k-OS and ``logistic`` are skipped: not the same algorithm in LightFM).
"""

from __future__ import annotations

import importlib
import pickle
import time
from typing import Any

import numpy as np

from recli.stages.bench.spec import PEER_INSTALL

PEER_MODELS = {"implicit": ("als", "bpr", "itemknn"), "lightfm": ("warp", "bpr", "hybrid")}


def installed(library: str) -> str | None:
    """The peer's version, or ``None`` when it does not import."""
    try:
        module = importlib.import_module(library)
    except Exception:
        return None
    from importlib.metadata import PackageNotFoundError, version

    for dist in (library, f"{library}-next"):
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    return str(getattr(module, "__version__", "unknown"))


def skip_reason(library: str, model: str, config: Any, device: str) -> str | None:
    """Why ``library`` cannot run this cell (``None``: it can)."""
    if installed(library) is None:
        return f"{library} is not installed: {PEER_INSTALL[library]}"
    if model not in PEER_MODELS[library]:
        return f"{library} has no {model} model"
    if device != "cpu":
        return f"peers run on the CPU only in recli bench ({library} on --device {device} is not measured)"
    if library == "lightfm" and model == "hybrid" and config.loss == "logistic":
        return "LightFM's logistic loss learns from explicit negative cells (-1), which bench data has none of"
    if library == "lightfm" and model == "hybrid" and config.kos_k > 0:
        return ("LightFM's warp-kos makes one step per user and epoch, recli's k-OS one per interaction: "
                "not the same work")
    if library == "implicit" and model == "itemknn" and _knn_class(config) is None:
        return (f"implicit has no itemknn with similarity={config.similarity} weighting={config.weighting} "
                "(it has cosine with no weighting, and bm25 weighting with dot)")
    if library == "implicit" and model == "als" and getattr(config, "solver", "cg") != "cg":
        return "implicit is benched with its CG solver only (use --param solver=cg)"
    return None


def _lightfm_params(model: str, config: Any) -> dict:
    """LightFM's parameters for recli's ``warp``/``bpr`` (one ``regularization`` for both
    alphas) or ``hybrid`` (its loss, schedule and alphas: the same names)."""
    if model != "hybrid":
        return {"no_components": config.factors, "loss": model, "learning_rate": config.learning_rate,
                "item_alpha": config.regularization, "user_alpha": config.regularization,
                "max_sampled": getattr(config, "max_sampled", 10)}
    return {"no_components": config.factors, "loss": config.loss, "learning_schedule": config.schedule,
            "learning_rate": config.learning_rate, "rho": config.rho, "epsilon": config.epsilon,
            "item_alpha": config.item_alpha, "user_alpha": config.user_alpha, "max_sampled": config.max_sampled}


def _knn_class(config: Any) -> str | None:
    if config.weighting == "none" and config.similarity == "cosine" and not config.shrink:
        return "CosineRecommender"
    if config.weighting == "bm25" and config.similarity == "dot" and not config.shrink:
        return "BM25Recommender"
    return None


def build(library: str, model: str, config: Any, threads: int) -> Any:
    """The peer's model object for recli's ``config``."""
    if library == "lightfm":
        from lightfm import LightFM

        return LightFM(**_lightfm_params(model, config), random_state=config.seed)
    if model == "als":
        from implicit.cpu.als import AlternatingLeastSquares

        return AlternatingLeastSquares(factors=config.factors, regularization=config.regularization,
                                       alpha=config.alpha + 1.0, iterations=config.iterations, use_cg=True,
                                       num_threads=threads, random_state=config.seed)
    if model == "bpr":
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        return BayesianPersonalizedRanking(factors=config.factors, learning_rate=config.learning_rate,
                                           regularization=config.regularization, iterations=config.iterations,
                                           num_threads=threads, random_state=config.seed)
    import implicit.nearest_neighbours as nn

    name = _knn_class(config)
    extra = {"K1": config.bm25_k1, "B": config.bm25_b} if name == "BM25Recommender" else {}
    return getattr(nn, name)(K=config.neighbours + 1, num_threads=threads, **extra)


def fit(library: str, obj: Any, user_items: Any, config: Any, threads: int) -> list[float]:
    """Fit ``obj``; seconds per epoch (one entry for a one-pass fit)."""
    if library == "lightfm":
        coo = user_items.tocoo()
        times = []
        for _ in range(config.iterations):
            t = time.perf_counter()
            obj.fit_partial(coo, epochs=1, num_threads=threads)
            times.append(time.perf_counter() - t)
        return times
    stamps = [time.perf_counter()]
    if not hasattr(config, "iterations"):
        obj.fit(user_items, show_progress=False)
        return [time.perf_counter() - stamps[0]]
    obj.fit(user_items, show_progress=False, callback=lambda *a: stamps.append(time.perf_counter()))
    return list(np.diff(stamps))


def topk(library: str, obj: Any, uidx: np.ndarray, user_items: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` (items, scores) of users ``uidx`` with their training items filtered."""
    if library == "implicit":
        items, scores = obj.recommend(uidx, user_items[uidx], N=k, filter_already_liked_items=True)
        return np.asarray(items, dtype=np.int32), np.asarray(scores, dtype=np.float32)
    # LightFM has no top-k call: its representations' dot products (what predict computes),
    # ranked in batches of users so that the scores of all users never sit in memory at once
    _, user_emb = obj.get_user_representations()  # a user's bias does not change its ranking
    item_bias, item_emb = obj.get_item_representations()
    parts = [_lightfm_topk(user_emb[uidx[b:b + 4096]], item_emb, item_bias, user_items[uidx[b:b + 4096]], k)
             for b in range(0, uidx.shape[0], 4096)]
    if not parts:
        return np.empty((0, k), np.int32), np.empty((0, k), np.float32)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _lightfm_topk(user_emb: np.ndarray, item_emb: np.ndarray, item_bias: np.ndarray, rows: Any,
                  k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` of ``user_emb · item_embᵀ + item_bias`` per row, the CSR ``rows``' items left out."""
    scores = user_emb @ item_emb.T + item_bias[None, :]
    scores[np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr)), rows.indices] = -np.inf
    kk = min(k, scores.shape[1])
    part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
    order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1, kind="stable")
    items = np.take_along_axis(part, order, 1).astype(np.int32)
    values = np.take_along_axis(scores, items, 1).astype(np.float32)
    items[~np.isfinite(values)] = -1
    return items, values


def save(obj: Any, path: str) -> None:
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)


def load(path: str) -> Any:
    with open(path, "rb") as fh:
        return pickle.load(fh)  # noqa: S301 - a file this bench run wrote itself


def run_peer(job: dict, data: Any) -> dict:
    """The peer's side of one measure (see the module docstring for the boundaries)."""
    from threadpoolctl import threadpool_limits

    from recli.stages.bench.child import clock, fit_result, job_config, latency

    library, threads, k = job["library"], job["threads"], job["k"]
    _, config = job_config(job)
    ui = data.user_items
    path = f"{job['model_dir']}.{library}.pickle"
    from recli.stages.bench.machine import cores

    with threadpool_limits(limits=max(1, threads or cores()), user_api="blas"):
        if job["measure"] == "fit":
            obj = build(library, job["model"], config, threads)
            wall, cpu, epochs = clock(lambda: fit(library, obj, ui, config, threads))
            save(obj, path)
            return fit_result(epochs if hasattr(config, "iterations") else [], wall, cpu, None)
        obj = load(path)
        if job["measure"] == "recommend_all":
            return _recommend_all(library, obj, data, job)
        if job["measure"] == "recommend_one":
            u = np.asarray([ui.shape[0] // 2])
            return latency(lambda: _write(library, obj, u, data, k, job["output"]), job["calls"])
        return _eval(library, obj, data, k)


def _write(library: str, obj: Any, uidx: np.ndarray, data: Any, k: int, output: str) -> int:
    """Top-k of ``uidx`` written as recli writes it (same columns, ids and writer)."""
    import polars as pl

    from recli.data.stream import write_stream
    from recli.stages.recommend import RECS_SCHEMA, to_frame

    items, scores = topk(library, obj, uidx, data.user_items, k)
    ids = data.users.ids.gather(uidx).to_list()
    frame = to_frame(ids, data.items, np.arange(uidx.shape[0]), items, scores)
    return write_stream(iter([frame]), output, "csv", pl.DataFrame(schema=RECS_SCHEMA))


def _recommend_all(library: str, obj: Any, data: Any, job: dict) -> dict:
    from recli.stages.bench.child import clock

    n = data.user_items.shape[0]
    wall, cpu, _ = clock(lambda: _write(library, obj, np.arange(n), data, job["k"], job["output"]))
    return {"value": n / wall, "unit": "users/s", "total_s": wall, "cpu_s": cpu, "compile_s": None}


def _eval(library: str, obj: Any, data: Any, k: int) -> dict:
    from recli.stages.bench.child import clock

    def run(users: int | None = None) -> dict:
        return quality_of(lambda uidx: topk(library, obj, uidx, data.user_items, 10)[0], data, users)

    compile_s, _, _ = clock(lambda: run(50))  # recli's evaluator compiles (or loads) its kernels once
    wall, cpu, q = clock(run)
    return {"value": wall, "unit": "s", "total_s": wall, "cpu_s": cpu, "compile_s": compile_s, **q}


def quality_of(top10: Any, data: Any, n_users: int | None = None) -> dict:
    """NDCG@10 and recall@10 of the lists ``top10(uidx)`` for every test user (the first
    ``n_users`` test rows' users with ``n_users``), by recli's
    :class:`~recli.metrics.Evaluator` (binary relevance, as ``recli eval``)."""
    from recli.metrics import Evaluator

    test = data.test
    if n_users is not None:
        test = test.filter(test["user"].is_in(test["user"].unique(maintain_order=True).head(n_users).implode()))
    users = data.users.index(test["user"]).astype(np.int64)
    items = data.items.index(test["item"]).astype(np.int64)
    test_users = np.unique(users)
    row = np.searchsorted(test_users, users)
    order = np.lexsort((items, row))
    indptr = np.zeros(test_users.shape[0] + 1, dtype=np.int64)
    np.add.at(indptr, row + 1, 1)
    ev = Evaluator(np.cumsum(indptr), items[order].astype(np.int32), [10], ["ndcg", "recall"],
                   n_items=data.user_items.shape[1])
    for start in range(0, test_users.shape[0], 4096):
        batch = test_users[start:start + 4096]
        ev.add(top10(batch), np.arange(start, start + batch.shape[0], dtype=np.int64))
    res = ev.result()
    return {"ndcg_at_10": float(res.values["ndcg@10"]), "recall_at_10": float(res.values["recall@10"])}

