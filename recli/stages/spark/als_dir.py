"""Spark ``ALSModel`` directories ↔ recli model directories (``recli export --format spark``,
``recli import``), with PyArrow only: no JVM is started.

An ``ALSModel.save(DIR)`` directory holds ``metadata/`` (one JSON line: class, Spark
version, uid, params, ``rank``), ``userFactors/`` and ``itemFactors/`` (Parquet ``id int32,
features array<float>``). Spark ids are integers; recli's are strings, so the export uses
recli's row numbers as Spark ids and adds ``recliUserIds/`` and ``recliItemIds/`` (Parquet
``id int32, <user|item> string``), which Spark ignores and the import reads back. A
directory without them (saved by any Spark job) imports with the integer ids as strings.
The training matrix is not part of a Spark model: ``recli import --train FILE`` maps a
training file onto the imported ids for seen-item filtering; without it nothing is
filtered.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from recli.console import log
from recli.data.vocab import Vocab
from recli.errors import ArtifactError, ConfigError, InputError

CLASS = "org.apache.spark.ml.recommendation.ALSModel"
METADATA = "metadata/part-00000"
FACTORS = {"user": "userFactors", "item": "itemFactors"}
ID_TABLES = {"user": "recliUserIds", "item": "recliItemIds"}


def _factor_table(ids: np.ndarray, factors: np.ndarray) -> Any:
    import pyarrow as pa

    k = factors.shape[1]
    values = pa.array(np.ascontiguousarray(factors, dtype=np.float32).reshape(-1))
    offsets = pa.array(np.arange(0, (ids.shape[0] + 1) * k, k, dtype=np.int32))
    features = pa.ListArray.from_arrays(offsets, values, type=pa.list_(pa.field("element", pa.float32(), nullable=False)))
    schema = pa.schema([pa.field("id", pa.int32(), nullable=False), pa.field("features", features.type)])
    return pa.Table.from_arrays([pa.array(ids, pa.int32()), features], schema=schema)


def export_als(mf: Any, out: str, force: bool = False) -> int:
    """Write model file ``mf`` (an ``als`` model) as a Spark ``ALSModel`` directory; returns the rank."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from recli.data.outdir import staged_dir

    if mf.model.name != "als":
        raise ConfigError(f"--format spark exports als models; {str(mf.path)!r} holds {mf.model.name!r}",
                          hint="train the model with --model als (Spark's ALSModel has no biases or other structure)")
    rank = int(mf.model.user_factors.shape[1])
    meta = {"class": CLASS, "timestamp": int(time.time() * 1000), "sparkVersion": "4.0.0",
            "uid": f"ALS_{uuid.uuid4().hex[:12]}", "paramMap": {"userCol": "user", "itemCol": "item"},
            "defaultParamMap": {"blockSize": 4096, "coldStartStrategy": "nan", "itemCol": "item",
                                "predictionCol": "prediction", "userCol": "user"}, "rank": rank}
    with staged_dir(out, "spark-als", force=force, option="-o") as tmp:
        for role, factors, vocab in (("user", mf.model.user_factors, mf.users), ("item", mf.model.item_factors, mf.items)):
            ids = np.arange(len(vocab), dtype=np.int32)
            for folder, table in ((FACTORS[role], _factor_table(ids, factors)),
                                  (ID_TABLES[role], pa.table({"id": pa.array(ids), role: vocab.ids.to_arrow()}))):
                (tmp / folder).mkdir()
                pq.write_table(table, tmp / folder / "part-00000.parquet")
                (tmp / folder / "_SUCCESS").touch()
        (tmp / "metadata").mkdir()
        (tmp / METADATA).write_text(json.dumps(meta) + "\n", encoding="utf-8")
        (tmp / "metadata" / "_SUCCESS").touch()
    return rank


def read_metadata(path: Path) -> dict[str, Any]:
    """The JSON line in ``metadata/`` of a Spark ``ALSModel`` directory, checked."""
    folder = path / "metadata"
    parts = sorted(folder.glob("part-*")) if folder.is_dir() else []
    if not parts:
        raise ArtifactError(f"{str(path)!r} is not a Spark ALSModel directory (no metadata/part-* file)",
                            hint="pass the directory written by ALSModel.save() or 'recli export --format spark'")
    try:
        meta = json.loads(parts[0].read_text(encoding="utf-8").splitlines()[0])
    except (UnicodeDecodeError, json.JSONDecodeError, IndexError) as exc:
        raise ArtifactError(f"{str(parts[0])!r} is not Spark model metadata: {exc}", hint="copy the model again") from None
    if meta.get("class") != CLASS or not isinstance(meta.get("rank"), int):
        raise ArtifactError(f"{str(path)!r} holds a {meta.get('class')!r}, not a Spark ALSModel",
                            hint="only ALS models (org.apache.spark.ml.recommendation.ALSModel) import")
    return meta


def _read_factors(path: Path, role: str, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """``(ids int64, factors float32 (n, rank))`` of ``userFactors/`` or ``itemFactors/``."""
    import pyarrow.parquet as pq

    table = pq.read_table(path / FACTORS[role])
    if {"id", "features"} - set(table.column_names):
        raise ArtifactError(f"{str(path / FACTORS[role])!r} has no id and features columns",
                            hint="the Spark model directory is incomplete or not an ALSModel")
    ids = table["id"].to_numpy().astype(np.int64)
    values = table["features"].combine_chunks().flatten().to_numpy(zero_copy_only=False)
    if values.shape[0] != ids.shape[0] * rank:
        raise ArtifactError(f"{FACTORS[role]} rows do not all have rank {rank} features", hint="copy the model again")
    return ids, values.reshape(-1, rank).astype(np.float32)


def _ids_as_strings(path: Path, role: str, ids: np.ndarray) -> list[str]:
    """recli's string ids for Spark ids ``ids`` (from ``recliUserIds/``), else the numbers."""
    import pyarrow.parquet as pq

    folder = path / ID_TABLES[role]
    if not folder.is_dir():
        return [str(i) for i in ids.tolist()]
    table = pq.read_table(folder)
    lookup = dict(zip(table["id"].to_pylist(), table[role].to_pylist()))
    missing = [int(i) for i in ids if int(i) not in lookup]
    if missing:
        raise ArtifactError(f"{ID_TABLES[role]} lacks Spark id {missing[0]}", hint="copy the model again")
    return [lookup[int(i)] for i in ids]


def _vocab_and_rows(path: Path, role: str, rank: int) -> tuple[Vocab, np.ndarray]:
    import polars as pl

    ids, factors = _read_factors(path, role, rank)
    names = pl.Series("id", _ids_as_strings(path, role, ids), dtype=pl.Utf8)
    vocab = Vocab.from_values(names)
    if len(vocab) != names.len():
        raise ArtifactError(f"{FACTORS[role]} repeats an id", hint="copy the model again")
    out = np.empty_like(factors)
    out[vocab.index(names)] = factors
    return vocab, out


def import_als(path: str, config: Any, train: str | None = None, read: Any = None) -> tuple[Any, Vocab, Vocab, Any, dict]:
    """A Spark ``ALSModel`` directory as ``(model, users, items, user_items, meta)`` for
    :func:`recli.artifacts.save_model`. ``config`` is the ALS config; its ``factors`` is
    replaced by the stored rank."""
    import scipy.sparse as sp

    from recli.models.als import ALS
    from recli.models.base import config_to_dict

    p = Path(path)
    if not p.is_dir():
        raise InputError(f"{path!r} is not a directory", hint="pass a directory saved by ALSModel.save()")
    spark_meta = read_metadata(p)
    rank = spark_meta["rank"]
    users, X = _vocab_and_rows(p, "user", rank)
    items, Y = _vocab_and_rows(p, "item", rank)
    changes: dict[str, Any] = {"factors": rank, "solver": "cholesky"}
    if "scale_regularization" in {f.name for f in dataclasses.fields(config)}:
        changes["scale_regularization"] = True  # MLlib's objective (ALS-WR)
    config = dataclasses.replace(config, **changes)
    if train is None:
        log.warning("no --train given: the imported model has no training interactions, so recommend will not "
                    "filter seen items (pass --train FILE to keep them out)")
        user_items = sp.csr_matrix((len(users), len(items)), dtype=np.float32)
    else:
        from recli.data.io import read_interactions
        from recli.data.matrix import as_csr, to_csr

        user_items = as_csr(to_csr(read_interactions(train, read), users, items, what=train)[0])
    model = ALS.from_arrays(config, {"user_factors": X, "item_factors": Y})
    meta = {"config": config_to_dict(config), "seed": config.seed, "engine": "spark", "epoch_losses": [],
            "imported_from": os.path.abspath(path), "spark": {"version": spark_meta.get("sparkVersion"),
                                                              "uid": spark_meta.get("uid")},
            "train_source": train}
    return model, users, items, user_items, meta
