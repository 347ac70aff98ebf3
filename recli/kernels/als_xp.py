"""Array-module (``xp``) twins of the ALS kernels in :mod:`recli.kernels.als`.

The same equations, vectorised over a batch of rows instead of looping per row, so
the code runs unchanged on NumPy (the CI-tested "GPU-shaped" path) and on CuPy.
Batches are sized by their number of non-zeros so the gathered ``(nnz, k)`` (CG) or
``(nnz, k, k)`` (exact) temporaries stay bounded in memory.

Per-row sums over a row's non-zeros are a sparse indicator matrix times a dense
matrix (``segment @ values``), which both SciPy and CuPy implement with fast kernels.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from recli.kernels import CG_EPS


def sparse_module(xp: Any) -> Any:
    """SciPy's sparse module for NumPy, ``cupyx.scipy.sparse`` for CuPy (the other ``*_xp``
    kernels use it too)."""
    if xp is np:
        import scipy.sparse as sparse
    else:
        import cupyx.scipy.sparse as sparse
    return sparse


def to_host(xp: Any, array: Any) -> np.ndarray:
    """``array`` as a host NumPy array (a no-op for NumPy)."""
    return np.asarray(array) if xp is np else xp.asnumpy(array)


def _batches(indptr_host: np.ndarray, budget: int, max_rows: int | None = None) -> Iterator[tuple[int, int]]:
    """Contiguous row ranges holding at most ``budget`` non-zeros and ``max_rows`` rows
    (at least one row)."""
    n = indptr_host.shape[0] - 1
    lo = 0
    while lo < n:
        hi = int(np.searchsorted(indptr_host, indptr_host[lo] + budget, side="right")) - 1
        hi = min(max(hi, lo + 1), n, lo + max_rows if max_rows else n)
        yield lo, hi
        lo = hi


class _Batch:
    """The interactions of rows ``lo:hi``: gathered item factors, confidences, and the
    indicator matrix that sums per-non-zero values into per-row values."""

    def __init__(self, xp, indptr, indices, data, Y, alpha, lo, hi, lam=None):
        sparse = sparse_module(xp)
        start, end = int(indptr[lo]), int(indptr[hi])
        # Batches hold far fewer than 2³¹ non-zeros, so int32 offsets (all CuPy accepts).
        local = (np.asarray(indptr[lo:hi + 1]) - start).astype(np.int32)
        counts = np.diff(local)
        nnz = end - start
        self.segment = sparse.csr_matrix(
            (xp.ones(nnz, dtype=xp.float32), xp.arange(nnz, dtype=xp.int32), xp.asarray(local)),
            shape=(hi - lo, nnz))
        self.row = xp.asarray(np.repeat(np.arange(hi - lo, dtype=np.int64), counts))
        values = xp.asarray(data[start:end])
        self.Yg = Y[xp.asarray(indices[start:end])]
        self.c1 = (alpha * xp.abs(values)).astype(xp.float32)
        self.pc = xp.where(values > 0, 1.0 + self.c1, 0.0).astype(xp.float32)
        self.empty = xp.asarray(counts == 0)
        # the rows' own λ (per-row λ), or None when A0 carries one λ for every row
        self.lam = None if lam is None else xp.asarray(lam[lo:hi], dtype=xp.float32)

    def rowsum(self, per_nnz):
        return self.segment @ per_nnz

    def b(self):
        """YᵀCᵤp(u) for every row of the batch."""
        return self.rowsum(self.pc[:, None] * self.Yg)

    def matvec(self, A0, V):
        """(A0 + λᵤI + Yᵀ(Cᵤ − I)Y) vᵤ for every row of the batch."""
        d = (V[self.row] * self.Yg).sum(axis=1)
        out = V @ A0 + self.rowsum((self.c1 * d)[:, None] * self.Yg)
        if self.lam is not None:
            out += self.lam[:, None] * V
        return out


def xp_gram(xp, Y, regularization=0.0):
    A0 = Y.T @ Y
    A0 = A0 + xp.float32(regularization) * xp.eye(Y.shape[1], dtype=xp.float32)
    return A0.astype(xp.float32)


def xp_cg_rows(xp, batch: _Batch, A0, x, cg_steps: int):
    """Warm-started CG on every row of a batch at once; the per-row early stop of the
    Numba kernel becomes a mask (a converged row takes zero-length steps)."""
    r = batch.b() - batch.matvec(A0, x)
    p = r.copy()
    rsold = (r * r).sum(axis=1)
    active = rsold >= CG_EPS
    for _ in range(cg_steps):
        if not bool(active.any()):
            break
        Ap = batch.matvec(A0, p)
        pAp = (p * Ap).sum(axis=1)
        a = xp.where(active, rsold / xp.where(active, pAp, 1), 0).astype(xp.float32)
        x += a[:, None] * p
        r -= a[:, None] * Ap
        rsnew = (r * r).sum(axis=1)
        beta = xp.where(active, rsnew / xp.where(active, rsold, 1), 0).astype(xp.float32)
        active = active & (rsnew >= CG_EPS)
        p = r + beta[:, None] * p
        rsold = rsnew
    x[batch.empty] = 0
    return x


def xp_cholesky_solve(xp, A, b):
    """Solve ``A[r] z[r] = b[r]`` for a batch of symmetric positive-definite ``A`` (``(B, k, k)``,
    ``b``: ``(B, k)``): the batched Cholesky factor ``A = L Lᵀ`` (``xp.linalg.cholesky``,
    cuSOLVER's batched potrf on CuPy), then ``L y = b`` and ``Lᵀ z = y`` by substitution,
    one column at a time over the whole batch (``k`` steps each way, as in
    :func:`recli.kernels.als._cholesky_solve` per row). Float64 throughout."""
    L = xp.linalg.cholesky(A)
    k = A.shape[-1]
    z = b.copy()
    for i in range(k):  # forward: L y = b
        z[:, i] = (z[:, i] - (L[:, i, :i] * z[:, :i]).sum(axis=1)) / L[:, i, i]
    for i in range(k - 1, -1, -1):  # backward: Lᵀ z = y
        z[:, i] = (z[:, i] - (L[:, i + 1:, i] * z[:, i + 1:]).sum(axis=1)) / L[:, i, i]
    return z


def xp_exact_rows(xp, batch: _Batch, A0):
    """Exact solve: forms each row's k×k matrix ``A0 + Yᵀ(Cᵤ − I)Y`` (batched) and solves it
    by batched Cholesky (:func:`xp_cholesky_solve`)."""
    outer = (batch.c1[:, None, None] * batch.Yg[:, :, None] * batch.Yg[:, None, :])
    k = A0.shape[0]
    A = A0[None] + batch.rowsum(outer.reshape(outer.shape[0], k * k)).reshape(-1, k, k)
    if batch.lam is not None:
        A = A + batch.lam[:, None, None] * xp.eye(k, dtype=xp.float32)[None]
    x = xp_cholesky_solve(xp, A.astype(xp.float64), batch.b().astype(xp.float64)).astype(xp.float32)
    x[batch.empty] = 0
    return x


def _observed(xp, batch: _Batch, x) -> float:
    """Σ over the batch's pairs of c·(p − s)² − s², s = xᵤ·yᵢ (see ``als_loss``)."""
    s = (x[batch.row] * batch.Yg).sum(axis=1).astype(xp.float64)
    pref = (batch.pc > 0).astype(xp.float64)
    return float(((1.0 + batch.c1) * (pref - s) ** 2 - s * s).sum())


def nnz_bytes(k: int, solver: str) -> int:
    """Device bytes per non-zero of a batch: 32 for its CSR slice, confidences and row
    map, the gathered ``Yg`` and two ``(nnz, k)`` float32 temporaries of a CG matrix
    product (``4·3k``), and for ``cholesky`` the ``(nnz, k, k)`` float32 outer products (``4k²``)."""
    return 4 * (3 * k + 8) + (4 * k * k if solver == "cholesky" else 0)


def row_bytes(k: int, solver: str) -> int:
    """Device bytes per row of a batch: CG's half a dozen float32 ``k``-vectors (``x``, ``r``,
    ``p``, ``A·p``, ``b``, a product), or for ``cholesky`` the ``k×k`` system in float32
    and float64, its float64 factor and a float64 temporary (``4k² + 3·8k²``)."""
    return 4 * 6 * k if solver == "cg" else 28 * k * k + 16 * k


def batch_limits(batch_bytes: int, k: int, solver: str) -> tuple[int, int]:
    """``(non-zeros, rows)`` per batch: half of ``batch_bytes`` for each kind of term, so
    a batch within both limits fits ``batch_bytes`` (a batch still holds one whole row)."""
    half = max(1, int(batch_bytes) // 2)
    return max(1, half // nnz_bytes(k, solver)), max(1, half // row_bytes(k, solver))


def xp_als_sweep(xp, indptr, indices, data, X, Y, regularization, alpha, solver="cg", cg_steps=3,
                 nnz_budget=1 << 20, max_rows=None, cuda=False, quadratic=False):
    """Recompute every row of ``X`` (an ``xp`` array, in place) against ``Y``.

    ``indptr``/``indices``/``data`` are host CSR arrays; only one batch is moved to the
    device at a time. Same contract and return value (the loss's observed term) as
    :func:`recli.kernels.als.als_sweep`. ``X`` and ``Y`` may be in a storage form of
    :mod:`recli.kernels.precision` (``train --dtype``): the fixed ``Y`` is upcast to float32
    once, each batch of ``X`` rows is upcast, solved in float32 and rounded back when
    written; the observed term is that of the rounded rows. With ``cuda`` (a real GPU,
    see :func:`recli.kernels.cuda.launchable`) the CG solve of a batch is the
    :mod:`recli.kernels.cuda.cg` kernel, one thread per row (per-row λ: the ``xp`` CG).
    With ``quadratic``, returns the pair (observed term, Σᵤ xᵤᵀ(YᵀY + λᵤI)xᵤ at the
    stored rows), as :func:`recli.kernels.als.quadratic_term`.
    """
    from recli.kernels.precision import storage_of, to_float32, to_storage

    indptr = np.asarray(indptr)
    dtype = storage_of(X)
    Y = to_float32(Y, storage_of(Y), xp)
    per_row = np.ndim(regularization) > 0  # per-row λ (host array): added row by row
    A0 = xp_gram(xp, Y, 0.0 if per_row else regularization)
    lam = np.asarray(regularization, dtype=np.float32) if per_row else None
    observed = 0.0
    for lo, hi in _batches(indptr, nnz_budget, max_rows):
        batch = _Batch(xp, indptr, indices, data, Y, xp.float32(alpha), lo, hi, lam)
        if solver != "cg":
            x = xp_exact_rows(xp, batch, A0)
        else:  # warm start: the rows as they are, upcast
            x = xp.array(to_float32(X[lo:hi], dtype, xp), dtype=xp.float32, copy=True)
            if cuda and lam is None:
                _cuda_cg_rows(xp, indptr, indices, data, lo, hi, x, Y, A0, alpha, cg_steps)
            else:
                x = xp_cg_rows(xp, batch, A0, x, cg_steps)
        X[lo:hi] = to_storage(x, dtype, xp)
        observed += _observed(xp, batch, to_float32(X[lo:hi], dtype, xp))
    if quadratic:
        X64 = to_float32(X, dtype, xp).astype(xp.float64)
        quad = float(((X64 @ A0.astype(xp.float64)) * X64).sum())
        if lam is not None:
            quad += float((xp.asarray(lam.astype(np.float64)) * (X64 ** 2).sum(axis=1)).sum())
        return observed, quad
    return observed


def _cuda_cg_rows(xp, indptr, indices, data, lo, hi, x, Y, A0, alpha, cg_steps) -> None:
    """CG steps on rows ``lo:hi`` (``x``: their float32 rows, in place) by the
    :func:`recli.kernels.cuda.cg.cg_sweep` kernel, given the batch's CSR slice and a
    ``(3, rows, k)`` scratch (within the CG row bytes of :func:`row_bytes`)."""
    from recli.kernels.cuda.cg import cg_sweep

    start, end = int(indptr[lo]), int(indptr[hi])
    local = xp.asarray((indptr[lo:hi + 1] - start).astype(np.int64))
    scratch = xp.empty((3,) + tuple(x.shape), dtype=xp.float32)
    cg_sweep(local, xp.asarray(np.asarray(indices[start:end], dtype=np.int32)),
             xp.asarray(np.asarray(data[start:end], dtype=np.float32)), x, Y, A0, alpha, cg_steps, scratch)


def penalty(xp, regularization, X64, Y64) -> float:
    """λ(‖X‖² + ‖Y‖²), or Σᵤ λᵤ‖xᵤ‖² + Σᵢ λᵢ‖yᵢ‖² for a pair of per-row λ arrays."""
    if not isinstance(regularization, tuple):
        return regularization * (float((X64 ** 2).sum()) + float((Y64 ** 2).sum()))
    lam_x, lam_y = (xp.asarray(np.asarray(lam, dtype=np.float64)) for lam in regularization)
    return float((lam_x * (X64 ** 2).sum(axis=1)).sum()) + float((lam_y * (Y64 ** 2).sum(axis=1)).sum())


def xp_loss_from_observed(xp, observed, X, Y, data, regularization, alpha, quadratic=None) -> float:
    """``loss_from_observed`` on device arrays (float32 or a storage form, upcast):
    tr(XᵀX·YᵀY) + λ(‖X‖² + ‖Y‖²) + observed (``regularization``: λ, or the pair of
    per-row λ arrays of :func:`penalty`). With ``quadratic`` (the sweep that solved ``Y``
    returned tr(XᵀX·YᵀY) plus ``Y``'s penalty), only ``X``'s penalty is added."""
    from recli.kernels.precision import storage_of, to_float32

    weight = float(alpha * np.abs(np.asarray(data)).sum(dtype=np.float64)) + X.shape[0] * Y.shape[0]
    X64 = to_float32(X, storage_of(X), xp).astype(xp.float64)
    if quadratic is not None:
        per_row = isinstance(regularization, tuple)
        norms = (X64 ** 2).sum(axis=1)
        reg = float((xp.asarray(np.asarray(regularization[0], np.float64)) * norms).sum()) if per_row \
            else regularization * float(norms.sum())
        return (observed + quadratic + reg) / weight
    Y64 = to_float32(Y, storage_of(Y), xp).astype(xp.float64)
    all_pairs = float(((X64.T @ X64) * (Y64.T @ Y64)).sum())
    reg = penalty(xp, regularization, X64, Y64)
    return (observed + all_pairs + reg) / weight


def xp_als_loss(xp, indptr, indices, data, X, Y, regularization, alpha, nnz_budget=1 << 20) -> float:
    """Same value as :func:`recli.kernels.als.als_loss`, vectorised over row batches."""
    indptr = np.asarray(indptr)
    observed = 0.0
    for lo, hi in _batches(indptr, nnz_budget):
        batch = _Batch(xp, indptr, indices, data, Y, xp.float32(alpha), lo, hi)
        observed += _observed(xp, batch, X[lo:hi])
    return xp_loss_from_observed(xp, observed, X, Y, data, regularization, alpha)
