"""``recommend --engine spark --all-users -k K -o DIR``: top-k for every user on Spark.

The factors of an ``als`` model file are cut into blocks on the driver (``--batch-size``
users, :data:`ITEM_BLOCK` items) and handed to Spark as Arrow. Every (user block, item
block) pair of the cross join is one task, which scores ``U_b · I_bᵀ`` with one matrix
product and keeps each user's best ``k + s`` items of the block, ``s`` the most seen items
of a user in the block: at most ``s`` seen items can outrank an unseen one, so the global
top-k of unseen items is among these candidates. Seen items are then removed by an
anti-join with the training pairs, and a window keeps each user's ``k`` best (score
descending, ties by the lower item index, as the local kernel). The result is written as
Parquet part files with the columns of the local ``recommend``: ``user, item, score, rank``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from recli.errors import ConfigError, OutputError
from recli.stages.spark.io import to_spark

ITEM_BLOCK = 8192
MODELS = ("als",)


def _blocks(factors: np.ndarray, size: int, prefix: str, seen: np.ndarray | None = None) -> Any:
    """One Arrow row per block of ``size`` rows: block number, first row, row count, the
    float32 factors as bytes and (users) the seen counts as int32 bytes."""
    import pyarrow as pa

    starts = np.arange(0, factors.shape[0], size)
    cols = {f"{prefix}b": pa.array(np.arange(starts.size, dtype=np.int32)),
            f"{prefix}start": pa.array(starts.astype(np.int32)),
            f"{prefix}mat": pa.array([np.ascontiguousarray(factors[s:s + size], np.float32).tobytes() for s in starts],
                                     pa.binary())}
    if seen is not None:
        cols["seen"] = pa.array([np.ascontiguousarray(seen[s:s + size], np.int32).tobytes() for s in starts], pa.binary())
    return pa.table(cols)


def _block_topk(k: int, rank: int):
    """The task run on each (user block, item block) row: candidates ``(_u, _i, score)``.
    Self-contained (NumPy and PyArrow only), so executors need no recli installed."""
    def run(batches):
        import numpy as np
        import pyarrow as pa

        for batch in batches:
            for row in batch.to_pylist():
                U = np.frombuffer(row["umat"], np.float32).reshape(-1, rank)
                V = np.frombuffer(row["imat"], np.float32).reshape(-1, rank)
                m = min(k + int(np.frombuffer(row["seen"], np.int32).max()), V.shape[0])
                S = U @ V.T
                top = np.argpartition(-S, m - 1, axis=1)[:, :m] if m < V.shape[0] else np.tile(np.arange(V.shape[0]), (U.shape[0], 1))
                users = np.repeat(np.arange(U.shape[0], dtype=np.int32) + row["ustart"], m)
                yield pa.RecordBatch.from_pydict({"_u": users, "_i": (top.reshape(-1) + row["istart"]).astype(np.int32),
                                                  "score": np.take_along_axis(S, top, axis=1).reshape(-1)})
    return run


def check_request(model: Any, request: Any) -> None:
    """``--engine spark`` serves ``--all-users`` of an ``als`` model to an ``-o DIR``, nothing else."""
    if model.name not in MODELS:
        raise ConfigError(f"recommend --engine spark serves {', '.join(MODELS)} models, not {model.name!r}",
                          hint="use --engine local for this model")
    others = [name for name, given in (("--users", request.users), ("--user", request.user), ("--history", request.history),
                                       ("--pairs", request.pairs), ("--similar-items", request.similar_items),
                                       ("--items-file", request.items_file), ("--explain", request.explain),
                                       ("--exclude-items", request.exclude_items), ("--only-items", request.only_items),
                                       ("--fallback", request.fallback)) if given]
    if not request.all_users or others:
        raise ConfigError("recommend --engine spark computes --all-users only" + (f"; drop {', '.join(others)}" if others else ""),
                          hint="use --engine spark --all-users -k K -o DIR, or --engine local for the other requests")
    if request.output in ("-", ""):
        raise ConfigError("recommend --engine spark writes a Parquet folder, not stdout", hint="pass -o DIR")


def _check_out(out: str, force: bool) -> str:
    """Spark's save mode for ``out``: refuse a non-empty local folder unless ``force``."""
    if "://" in out:
        return "overwrite" if force else "errorifexists"
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)) and not force:
        raise OutputError(f"-o {out!r} exists; refusing to replace it", hint="choose a new folder, or add --force")
    return "overwrite"


def recommend_all(spark: Any, mf: Any, k: int, out: str, *, batch_size: int = 1024, include_seen: bool = False,
                  force: bool = False) -> int:
    """Write every user's top ``k`` (see the module docstring); returns the rows written."""
    import pyarrow as pa
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    mode = _check_out(out, force)
    X, Y = mf.model.user_factors, mf.model.item_factors
    indptr, indices, _ = mf.train
    seen = np.zeros(X.shape[0], np.int32) if include_seen else np.diff(np.asarray(indptr)).astype(np.int32)
    users = to_spark(spark, _blocks(X, batch_size, "u", seen))
    items = to_spark(spark, _blocks(Y, ITEM_BLOCK, "i"))
    pairs = users.crossJoin(items).repartition(max(1, spark.sparkContext.defaultParallelism))
    cand = pairs.mapInArrow(_block_topk(k, X.shape[1]), "_u int, _i int, score float")
    if not include_seen and len(indices):
        rows = np.repeat(np.arange(X.shape[0], dtype=np.int32), np.diff(np.asarray(indptr)))
        train = to_spark(spark, pa.table({"_u": rows, "_i": np.asarray(indices, np.int32)}))
        cand = cand.join(train, ["_u", "_i"], "left_anti")
    ranked = cand.withColumn("rank", F.row_number().over(Window.partitionBy("_u").orderBy(F.desc("score"), "_i")))
    ids_u = to_spark(spark, pa.table({"_u": np.arange(X.shape[0], dtype=np.int32), "user": mf.users.ids.to_arrow()}))
    ids_i = to_spark(spark, pa.table({"_i": np.arange(Y.shape[0], dtype=np.int32), "item": mf.items.ids.to_arrow()}))
    recs = (ranked.where(F.col("rank") <= k).join(ids_u, "_u").join(F.broadcast(ids_i), "_i")
                  .select("user", "item", "score", F.col("rank").cast("int")).cache())
    recs.write.mode(mode).parquet(out)
    n = recs.count()
    recs.unpersist()
    return n
