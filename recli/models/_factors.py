"""Shared pieces of the pairwise factor models (``bpr``, ``warp``): initialisation,
scoring, cosine similarity, thread control and CSR checks."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np
import scipy.sparse as sp

from recli.errors import ConfigError, InputError


def init_factors(n_rows: int, factors: int, rng: np.random.Generator,
                 counts: np.ndarray) -> np.ndarray:
    """Uniform ``(-0.5, 0.5) / factors`` (implicit's and LightFM's scheme), float32, with
    rows of entities that have no interactions set to zero (they then score 0)."""
    out = (rng.random((n_rows, factors), dtype=np.float32) - np.float32(0.5)) / np.float32(factors)
    out[counts == 0] = 0.0
    return out


def as_sorted_csr(user_items: Any, what: str = "user_items") -> sp.csr_matrix:
    """A CSR with int64 indptr, int32 sorted, duplicate-free indices and float32 data."""
    if not sp.issparse(user_items):
        raise InputError(f"{what} must be a scipy sparse matrix",
                         hint="pass the CSR built from the training interactions")
    m = sp.csr_matrix(user_items, dtype=np.float32)
    m.sum_duplicates()
    m.sort_indices()
    m.eliminate_zeros()
    m.indptr = m.indptr.astype(np.int64, copy=False)
    m.indices = m.indices.astype(np.int32, copy=False)
    return m


def check_trainable(m: sp.csr_matrix, model: str) -> None:
    if m.nnz == 0 or m.shape[0] == 0 or m.shape[1] == 0:
        raise InputError(f"cannot train {model}: the training set has no interactions",
                         hint="check the input file and any filters applied by recli prep")
    if m.shape[1] < 2:
        raise InputError(f"cannot train {model}: it ranks items against each other and needs at least 2 items",
                         hint="use a training set with more than one item")


@contextlib.contextmanager
def numba_threads(threads: int) -> Iterator[int]:
    """Run Numba kernels on ``threads`` threads (0 = every core), restoring the previous
    setting afterwards."""
    import numba

    from recli.backend import resolve_threads

    n = max(1, min(resolve_threads(threads), numba.config.NUMBA_NUM_THREADS))
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield n
    finally:
        numba.set_num_threads(previous)


def dot_scores(user_vecs: np.ndarray, item_factors: np.ndarray, item_bias: np.ndarray) -> np.ndarray:
    """``user · item + b_item`` as float32, shape ``(len(user_vecs), n_items)``."""
    out = user_vecs @ item_factors.T
    out += item_bias[None, :]
    return out.astype(np.float32, copy=False)


def cosine_similar(item_factors: np.ndarray, iidx: np.ndarray) -> np.ndarray:
    """Cosine similarity of items ``iidx`` to every item over the factor vectors; an item
    with a zero vector (never seen in training) has similarity 0 to everything."""
    norms = np.linalg.norm(item_factors, axis=1)
    safe = np.where(norms > 0, norms, 1.0).astype(np.float32)
    unit = item_factors / safe[:, None]
    iidx = np.asarray(iidx, dtype=np.int64)
    return (unit[iidx] @ unit.T).astype(np.float32, copy=False)


def split_known(uidx: np.ndarray, history: Any, n_users: int, model: str) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix | None]:
    """``(known rows, fold-in rows, their history CSR sorted)`` for a scoring batch."""
    uidx = np.asarray(uidx, dtype=np.int64)
    new = np.flatnonzero(uidx < 0)
    known = np.flatnonzero(uidx >= 0)
    if known.size and int(uidx[known].max()) >= n_users:
        raise InputError(f"user index {int(uidx[known].max())} is out of range for {model} ({n_users} users)",
                         hint="score users from the training vocabulary, or pass -1 with a history row")
    hist = None
    if new.size:
        if history is None:
            raise ConfigError(f"{model}: users marked -1 need a history row to fold in",
                              hint="pass --history FILE with their interactions")
        hist = as_sorted_csr(sp.csr_matrix(history)[new], "history")
    return known, new, hist
