"""``train --engine spark --model als``: MLlib ALS, written as a normal recli model.

recli's implicit ALS (Hu, Koren & Volinsky 2008) and MLlib's ``ALS(implicitPrefs=True)``
share the model: preference ``p = 1 if r > 0 else 0`` and confidence ``c = 1 + α·|r|``
per stored cell, unobserved cells ``p = 0, c = 1``; each row solve minimises

    Σᵢ cᵤᵢ (pᵤᵢ − xᵤ·yᵢ)² + λ·nᵤ·‖xᵤ‖²     (MLlib: nᵤ = the row's cells with r > 0)

MLlib always scales λ by the row's count (ALS-WR); recli's local ``als`` does so with
``scale_regularization = true`` (default: unscaled λ). recli's parameters map one to one:
``factors → rank``, ``iterations → maxIter``, ``regularization → regParam``, ``alpha →
alpha``, ``seed → seed``. Spark-only parameters (``--param``): ``nonnegative`` (NNLS
solves), ``checkpoint_dir`` and ``checkpoint_interval`` (cut the lineage of long runs),
``blocks`` (user and item blocks; default Spark's 10). Each MLlib row solve is exact, so
the model is recorded with ``solver = cholesky``.

Ids are mapped to int32 indices in recli's order (sorted id strings), so MLlib's ids are
the model file's row numbers. The factors, the vocabularies and the summed training
matrix (for seen-item filtering) come back to the driver as Arrow tables and are written
in the ordinary model format, which every local command reads.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from recli.console import log
from recli.data.io import ReadOptions
from recli.data.schema import ITEM, RATING, USER
from recli.data.vocab import Vocab
from recli.errors import ConfigError, InputError
from recli.stages.spark.io import read_interactions, to_arrow, to_spark

MODELS = ("als",)
INT32_MAX = 2**31 - 1
# Spark-only parameters of --engine spark (given with --param), with their types and defaults
SPARK_PARAMS: dict[str, tuple[type, Any]] = {"nonnegative": (bool, False), "checkpoint_dir": (str, None),
                                             "checkpoint_interval": (int, 10), "blocks": (int, 10)}
UIDX, IIDX, VALUE = "_u", "_i", "value"


@dataclass
class SparkTrainResult:
    """The recli model and what its file needs, plus MLlib's own model (``mllib``)."""

    model: Any
    users: Vocab
    items: Vocab
    user_items: Any
    meta: dict[str, Any]
    mllib: Any


def check_model(name: str | None) -> None:
    if name not in MODELS:
        from recli.models import registry

        local = ", ".join(n for n in registry() if n not in MODELS)
        raise ConfigError(f"--engine spark trains {', '.join(MODELS)} only, not {name!r}",
                          hint=f"use --model als with --engine spark; {local} train with --engine local")


def split_params(params: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Separate the Spark-only ``--param`` keys (:data:`SPARK_PARAMS`) from the model's."""
    from recli.stages.train import parse_param

    rest, spark = [], {k: default for k, (_, default) in SPARK_PARAMS.items()}
    for text in params:
        key, value = parse_param(text)
        key = key.replace("-", "_")
        if key not in SPARK_PARAMS:
            rest.append(text)
            continue
        kind = SPARK_PARAMS[key][0]
        if kind is bool:
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ConfigError(f"--param {key}={value} is not true or false", hint=f"e.g. --param {key}=true")
            spark[key] = value.lower() in ("true", "1", "yes")
        else:
            try:
                spark[key] = kind(value)
            except ValueError:
                raise ConfigError(f"--param {key}={value} is not {kind.__name__}", hint=f"e.g. --param {key}=10") from None
    if spark["checkpoint_interval"] < 1 or spark["blocks"] < 1:
        raise ConfigError("checkpoint_interval and blocks must be at least 1", hint="e.g. --param blocks=20")
    return rest, spark


def mllib_config(config: Any, cells: Any) -> Any:
    """The recli config the MLlib fit stands for: exact solves and, where recli has the
    option, ``scale_regularization = true`` (MLlib's objective); a warning when the
    requested objective is not MLlib's."""
    fields = {f.name for f in dataclasses.fields(config)}
    changes: dict[str, Any] = {"solver": "cholesky"}
    if "scale_regularization" in fields:
        changes["scale_regularization"] = True
    if not getattr(config, "scale_regularization", False):
        log.warning(f"MLlib scales regularization by each row's interaction count (λ·nᵤ, ALS-WR); "
                    f"regularization={config.regularization:g} is used that way. For the same objective locally "
                    "train with --param scale_regularization=true")
    if cells.where(cells[VALUE] <= 0).limit(1).count():
        log.warning("some training values are <= 0: MLlib counts only values > 0 in nᵤ, so its objective "
                    "differs from the local engine's on those rows")
    return dataclasses.replace(config, **changes)


def index_ids(spark: Any, df: Any, column: str, code: str) -> tuple[Vocab, Any]:
    """The sorted vocabulary of ``column`` (collected to the driver) and a Spark table
    ``column → code`` (int32 position in that vocabulary)."""
    import polars as pl
    import pyarrow as pa

    distinct = to_arrow(df.select(column).distinct())
    vocab = Vocab.from_values(pl.from_arrow(distinct)[column])
    if len(vocab) > INT32_MAX:
        raise InputError(f"{len(vocab):,} distinct {column} ids do not fit Spark's int32 ids, even mapped to 0..n-1",
                         hint="MLlib ALS indexes users and items with int32; split or sample the data")
    table = pa.table({column: vocab.ids.to_arrow(), code: pa.array(np.arange(len(vocab), dtype=np.int32))})
    return vocab, to_spark(spark, table)


def training_cells(spark: Any, source: str, read: ReadOptions | None) -> tuple[Any, Vocab, Vocab, int]:
    """Summed ``(_u, _i, value)`` cells over recli's vocabularies, cached; and the row count."""
    from pyspark.sql import functions as F

    df = read_interactions(spark, source, read)
    df = df.where(F.col(USER).isNotNull() & F.col(ITEM).isNotNull())
    value = F.col(RATING) if RATING in df.columns else F.lit(1.0)
    df = df.select(USER, ITEM, value.alias(VALUE)).cache()
    stats = df.agg(F.count(F.lit(1)).alias("n"),
                   F.sum((F.col(VALUE).isNull() | F.isnan(F.col(VALUE))).cast("long")).alias("bad")).first()
    if not stats["n"]:
        raise InputError(f"{source} is empty: no rows with both a user and an item",
                         hint="check the input holds interactions (user,item[,rating])")
    if stats["bad"]:
        raise InputError(f"{source}: {stats['bad']} rating values are not finite numbers",
                         hint="clean the ratings with recli prep (--on-invalid drop, --fill-rating)")
    users, user_codes = index_ids(spark, df, USER, UIDX)
    items, item_codes = index_ids(spark, df, ITEM, IIDX)
    cells = (df.join(user_codes, USER).join(item_codes, ITEM).groupBy(UIDX, IIDX)
               .agg(F.sum(VALUE).cast("float").alias(VALUE)).cache())
    return cells, users, items, int(stats["n"])


def factor_matrix(frame: Any, n: int, k: int) -> np.ndarray:
    """MLlib's ``(id, features)`` factor table as a float32 ``(n, k)`` array, row = id."""
    table = to_arrow(frame)
    ids = table["id"].to_numpy()
    values = table["features"].combine_chunks().flatten().to_numpy(zero_copy_only=False)
    out = np.zeros((n, k), dtype=np.float32)
    out[ids] = values.reshape(-1, k)
    return out


def cells_csr(cells: Any, shape: tuple[int, int]) -> Any:
    """The summed training cells as recli's canonical CSR."""
    import scipy.sparse as sp

    from recli.data.matrix import as_csr

    table = to_arrow(cells)
    u, i, v = (table[c].to_numpy() for c in (UIDX, IIDX, VALUE))
    return as_csr(sp.coo_matrix((v.astype(np.float32), (u, i)), shape=shape))


def train_als(spark: Any, source: str, read: ReadOptions | None, config: Any, spark_params: dict[str, Any]) -> SparkTrainResult:
    """Fit MLlib ALS on ``source`` and return the recli model (see the module docstring)."""
    from pyspark.ml.recommendation import ALS as MLlibALS

    from recli.data.matrix import matrix_fingerprint
    from recli.models.als import ALS
    from recli.models.base import config_to_dict

    cells, users, items, n_rows = training_cells(spark, source, read)
    config = mllib_config(config, cells)
    if spark_params["checkpoint_dir"]:
        spark.sparkContext.setCheckpointDir(spark_params["checkpoint_dir"])
    als = MLlibALS(rank=config.factors, maxIter=config.iterations, regParam=config.regularization, alpha=config.alpha,
                   implicitPrefs=True, nonnegative=spark_params["nonnegative"], seed=config.seed, userCol=UIDX,
                   itemCol=IIDX, ratingCol=VALUE, checkpointInterval=spark_params["checkpoint_interval"],
                   numUserBlocks=spark_params["blocks"], numItemBlocks=spark_params["blocks"])
    start = time.perf_counter()
    fitted = als.fit(cells)
    X = factor_matrix(fitted.userFactors, len(users), config.factors)
    Y = factor_matrix(fitted.itemFactors, len(items), config.factors)
    fit_seconds = time.perf_counter() - start
    user_items = cells_csr(cells, (len(users), len(items)))
    cells.unpersist()
    model = ALS.from_arrays(config, {"user_factors": X, "item_factors": Y})
    meta = {"config": config_to_dict(config), "seed": config.seed, "threads": spark.sparkContext.defaultParallelism,
            "device": "cpu", "engine": "spark", "fit_seconds": round(fit_seconds, 4), "epochs": config.iterations,
            "epoch_losses": [], "counts": {"rows": n_rows},
            "training_fingerprint": matrix_fingerprint(user_items, users.hash, items.hash),
            "spark": {"master": spark.sparkContext.master, "version": spark.version, **spark_params}}
    return SparkTrainResult(model, users, items, user_items, meta, fitted)
