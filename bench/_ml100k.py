"""MovieLens 100K train/test matrices made by recli's own ``prep`` stage (issues #4, #5).

The quality benchmarks all evaluate on the split ``recli prep`` writes, not on a NumPy
stand-in, so a figure in docs/benchmarks.md can be reproduced from the shell with
``recli prep … | recli train … | recli recommend … | recli eval``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ML100K = ROOT.parent / "shared" / "data" / "ml-100k" / "u.data"


@dataclass
class Split:
    """Train/test as CSR matrices (users × items, float32) over one shared index.

    ``users[u]`` / ``items[i]`` are the original id strings of row ``u`` / column ``i``;
    the index covers every user and item of train *and* test (test-only items are empty
    columns of ``train``). Values are the ratings, or 1 with ``binary=True``.
    """

    train: sp.csr_matrix
    test: sp.csr_matrix
    users: np.ndarray
    items: np.ndarray
    report: dict


def _vocab(*cols: pl.Series) -> np.ndarray:
    """Sorted unique ids of ``cols``; numerically when every id is an integer (ML-100K's are)."""
    ids = pl.concat(list(cols)).unique()
    as_int = ids.cast(pl.Int64, strict=False)
    if as_int.null_count() == 0:
        return ids.gather(as_int.arg_sort()).to_numpy().astype(str)
    return ids.sort().to_numpy().astype(str)


def _codes(col: pl.Series, vocab: np.ndarray) -> np.ndarray:
    lookup = pl.DataFrame({"id": vocab, "code": np.arange(len(vocab), dtype=np.int32)})
    return pl.DataFrame({"id": col}).join(lookup, on="id", how="left", maintain_order="left")["code"].to_numpy()


def _csr(frame: pl.DataFrame, users: np.ndarray, items: np.ndarray, binary: bool) -> sp.csr_matrix:
    rows, cols = _codes(frame["user"], users), _codes(frame["item"], items)
    vals = np.ones(frame.height, np.float32) if binary else frame["rating"].to_numpy().astype(np.float32)
    m = sp.csr_matrix((vals, (rows, cols)), shape=(len(users), len(items)), dtype=np.float32)
    m.sum_duplicates()  # none after prep's default --dedupe last; kept so the matrix is canonical
    m.sort_indices()
    return m


def ml100k_split(split: str = "leave-random", test_size: float = 0.2, seed: int = 42,
                 path: Path | str = ML100K, binary: bool = False) -> Split:
    """Run recli's ``prep`` stage in-process on ML-100K and return train/test CSR matrices.

    Equivalent to::

        recli prep ../shared/data/ml-100k/u.data --no-header \\
            --columns user,item,rating,timestamp --split leave-random --test-size 0.2 \\
            --seed 42 --out DIR

    (``split``, ``test_size`` and ``seed`` replace the corresponding flags; e.g. the
    ``mf`` RMSE figure uses ``split="random"``). The options are built exactly as
    ``recli/cli/prep.py`` builds them for those flags, every other option at its CLI
    default, and :func:`recli.stages.prep.prep` does the work, so the rows in
    ``train``/``test`` are the rows of ``DIR/train.csv``/``DIR/test.csv``.
    """
    from recli.data.clean import CleanOptions
    from recli.stages.prep import PrepOptions, prep

    opts = PrepOptions(has_header=False, columns=["user", "item", "rating", "timestamp"],
                       clean=CleanOptions(), split=split, test_size=test_size, seed=seed)
    result = prep(str(path), opts, has_output_dir=True)
    train, test = result.frames["train"], result.frames["test"]
    users = _vocab(train["user"], test["user"])
    items = _vocab(train["item"], test["item"])
    return Split(_csr(train, users, items, binary), _csr(test, users, items, binary), users, items, result.report)


if __name__ == "__main__":
    s = ml100k_split()
    print(f"train {s.train.shape} nnz {s.train.nnz}, test nnz {s.test.nnz}, "
          f"test users {int((np.diff(s.test.indptr) > 0).sum())}")
