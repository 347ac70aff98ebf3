"""The data a bench run works on, made once per data set and read by every child.

For each data set the parent writes a work folder:

* ``log.parquet``: the whole interaction log (what ``prep`` is measured on);
* ``train.npz``: the training CSR (``indptr``, ``indices``, ``data``, ``shape``) of a seeded
  leave-random holdout (``recli prep --split leave-random --test-size T --seed S``),
  with values 1: every library is benched on the same implicit-feedback matrix;
* ``users.parquet`` / ``items.parquet``: the training ids (row / column order);
* ``test.parquet``: the held-out ``user,item`` rows whose user and item are both in
  training, so every library ranks the same catalogue for the same users.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from recli.data.schema import ITEM, TIMESTAMP, USER
from recli.errors import InputError
from recli.stages.bench.spec import Dataset


@dataclass
class Prepared:
    """A data set's work folder and its sizes (training matrix)."""

    folder: Path
    users: int
    items: int
    nnz: int
    test_users: int
    has_time: bool


def read_log(ds: Dataset, read: object, seed: int) -> pl.DataFrame:
    """The interaction log: the DATA file (columns found as every command finds them), or
    the seeded generator's log at the data set's size."""
    if ds.path is None:
        from recli.data import synth

        return synth.interactions(ds.users, ds.items, ds.nnz, seed=seed)
    from recli.data.io import ReadOptions, read_interactions

    df = read_interactions(ds.path, read or ReadOptions())
    if df.height == 0:
        raise InputError(f"{ds.path} holds no interactions", hint="check the file holds user,item rows below the header")
    return df


def prepare(ds: Dataset, folder: Path, read: object, seed: int, test_size: float) -> Prepared:
    """Write ``folder`` for data set ``ds`` (see the module docstring)."""
    from recli.data.matrix import build_interactions
    from recli.stages.prep import PrepOptions, prep_table

    folder.mkdir(parents=True, exist_ok=True)
    log = read_log(ds, read, seed)
    keep = [c for c in (USER, ITEM, TIMESTAMP) if c in log.columns]
    log = log.select(keep)
    log.write_parquet(folder / "log.parquet")
    split = prep_table(log, PrepOptions(split="leave-random", test_size=test_size, seed=seed))
    train = build_interactions(split.frames["train"].select(USER, ITEM), what=ds.label)
    m = train.user_items
    np.savez(folder / "train.npz", indptr=m.indptr.astype(np.int64), indices=m.indices.astype(np.int32),
             data=m.data.astype(np.float32), shape=np.asarray(m.shape, dtype=np.int64))
    train.users.ids.to_frame("id").write_parquet(folder / "users.parquet")
    train.items.ids.to_frame("id").write_parquet(folder / "items.parquet")
    test = split.frames["test"].select(USER, ITEM).filter(
        pl.col(USER).is_in(train.users.ids.implode()) & pl.col(ITEM).is_in(train.items.ids.implode()))
    if test.height == 0:
        raise InputError(f"{ds.label}: the holdout leaves no test rows whose user and item are in training",
                         hint="bench on more interactions (a larger --synthetic size or a fuller file)")
    test.write_parquet(folder / "test.parquet")
    info = Prepared(folder, m.shape[0], m.shape[1], int(m.nnz), int(test[USER].n_unique()), TIMESTAMP in keep)
    (folder / "sizes.json").write_text(json.dumps({"users": info.users, "items": info.items, "nnz": info.nnz}))
    return info


@dataclass
class Loaded:
    """What a child reads before its clock starts: the training CSR and ids, the test rows."""

    user_items: object  # scipy.sparse.csr_matrix
    users: object  # Vocab
    items: object  # Vocab
    test: pl.DataFrame


def load(folder: str | Path) -> Loaded:
    """Read a work folder written by :func:`prepare`."""
    from recli.data.matrix import csr_from_arrays
    from recli.data.vocab import Vocab

    folder = Path(folder)
    z = np.load(folder / "train.npz")
    m = csr_from_arrays(z["indptr"], z["indices"], z["data"], tuple(int(x) for x in z["shape"]))
    users = Vocab(pl.read_parquet(folder / "users.parquet")["id"])
    items = Vocab(pl.read_parquet(folder / "items.parquet")["id"])
    return Loaded(m, users, items, pl.read_parquet(folder / "test.parquet"))
