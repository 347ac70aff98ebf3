"""Shared pieces of the factor models (``als``, ``mf``, ``bpr``, ``warp``): cosine over
factor vectors, the fold-in of new users, and the state and inference of the pairwise
models (initialisation, scoring, CSR checks)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from recli.errors import ArtifactError, InputError, ModelFitError
from recli.kernels.precision import STORAGE, reduced, storage_matches, storage_of, to_float32, to_storage
from recli.models.base import Model, param, split_batch

if TYPE_CHECKING:  # SciPy loads lazily: serving one user from a factor model never needs it
    import scipy.sparse as sp


def cosine_rows(factors: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Cosine similarity of ``factors[rows]`` to every row of ``factors``: ``ûᵢ·ûⱼ`` with
    ``û = u / ‖u‖``; a zero vector (an item never seen in training) has similarity 0."""
    norms = np.linalg.norm(factors, axis=1)
    safe = np.where(norms > 0, norms, 1.0).astype(np.float32)
    unit = factors / safe[:, None]
    from recli.kernels.cpu import dot_scores  # fixed order: an item's row is the same bits in any batch

    return dot_scores(unit[np.asarray(rows, dtype=np.int64)], unit)


# How a factor model's config declares its storage dtype (``recli train --dtype``).
FACTOR_DTYPES = tuple(STORAGE)


def dtype_param() -> str:
    """The ``dtype`` config field of a model that stores factor matrices."""
    return param("float32", "how the factors are stored (the model file and memory); arithmetic is float32, "
                 "bfloat16 is kept as its uint16 bit pattern", choices=FACTOR_DTYPES)


def training_dtype(backend: Any, dtype: str) -> str:
    """How the factor matrices are held while training: in the storage form of ``dtype``
    on the GPU path (its kernels read rows upcast to float32 and round every row they
    write, :mod:`recli.kernels.sgd_xp`, :mod:`recli.kernels.als_xp`); in float32 on the
    CPU, whose Numba kernels update float32 in place (rounded once, when saved)."""
    return dtype if backend.device == "gpu" else "float32"


def held(backend: Any, values: np.ndarray, dtype: str) -> Any:
    """Initial factors (float32, host) as the backend's training arrays, in the form of
    :func:`training_dtype`."""
    form = training_dtype(backend, dtype)
    return backend.xp.asarray(values) if form == "float32" else to_storage(values, form, backend.xp)


def published(backend: Any, array: Any) -> np.ndarray:
    """A training array as a float32 host array (exact: storage values upcast)."""
    host = backend.to_host(array)
    return to_float32(host, storage_of(host)) if reduced(host) else host


def stored(values: np.ndarray, dtype: str, what: str) -> np.ndarray:
    """``values`` (float32, or already in storage form) in the storage form of ``dtype``
    (:mod:`recli.kernels.precision`); a finite value that does not fit the type is refused."""
    if storage_matches(values, dtype):
        return values
    out = to_storage(values, dtype)
    if dtype != "float32" and not np.isfinite(to_float32(out, dtype)).all():
        raise ModelFitError(f"the {what} do not fit in {dtype} (a value is beyond its range)",
                            hint="train with --dtype float32 (or bfloat16, which has float32's range)")
    return out


def loaded(arrays: dict[str, np.ndarray], name: str, dtype: str, model: str) -> np.ndarray:
    """Array ``name`` of a model file, checked to be in the storage form of ``dtype``."""
    try:
        array = arrays[name]
    except KeyError as exc:
        raise ArtifactError(f"{model} model file lacks the array {exc.args[0]!r}",
                            hint="the file is corrupt or from another model; retrain it") from None
    if not storage_matches(array, dtype):
        raise ArtifactError(f"{model} model array {name!r} is {array.dtype}, but the model says its factors are "
                            f"stored as {dtype}", hint="the model file is inconsistent; retrain it")
    return np.ascontiguousarray(array)


def loaded_items(arrays: dict[str, np.ndarray], dtype: str, model: str) -> np.ndarray:
    """A model file's item factors as float32 values, read-only: a loaded model never
    trains, so :meth:`FactorModel.scoring_side` may keep their transpose."""
    V = to_float32(loaded(arrays, "item_factors", dtype, model), dtype)
    V.flags.writeable = False
    return V


def factor_rows(factors: np.ndarray, rows: np.ndarray, dtype: str) -> np.ndarray:
    """``factors[rows]`` upcast to float32 (only the rows a batch reads)."""
    return np.ascontiguousarray(to_float32(factors[rows], dtype), dtype=np.float32)


class FactorModel(Model):
    """A model that scores from user factor rows: trained rows for known users, rows
    folded in from ``history`` (subclasses implement ``fold_in(history_csr)``) for the
    rows marked ``-1``. ``user_factors`` is the trained ``(n_users, factors)`` array, in
    the storage form of ``config.dtype`` once loaded (rows are upcast per batch)."""

    can_fold_in: ClassVar[bool] = True
    user_factors: np.ndarray

    def fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        """Factor rows of new users from their history rows (a canonical CSR)."""
        raise NotImplementedError

    def user_vectors(self, uidx: np.ndarray, history: Any) -> np.ndarray:
        """Factor rows for a scoring batch (see :func:`recli.models.base.split_batch`)."""
        from recli.backend import threads_context

        uidx, new, hist = split_batch(uidx, history, self.n_users, self.n_items)
        out = np.zeros((uidx.shape[0], self.config.factors), dtype=np.float32)
        known = uidx >= 0
        out[known] = factor_rows(self.user_factors, uidx[known], self.config.dtype)
        if hist is not None:
            with threads_context(self.backend.threads):
                out[new] = self.fold_in(hist)
        return out

    def item_side(self) -> tuple[np.ndarray, np.ndarray | None]:
        """``(V, b)``: the scores are ``U·Vᵀ + b`` (``b`` None: no item bias)."""
        return self.item_factors, None

    def scoring_side(self) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`item_side` for the fixed-order kernels, which read the rows of ``Vᵀ``.

        With read-only item factors (a loaded model file) on the CPU, ``V`` comes back as the
        transposed view of a C-contiguous ``Vᵀ`` made once and kept, so the kernels copy
        nothing: one user's scores then read ``n_items·f`` values instead of first copying
        ``V`` (25 MB for 100k items × 64 factors) on every call. Writable factors (a model
        training in this process, whose ``V`` may change in place) are returned as they are."""
        V, b = self.item_side()
        if self.backend.name != "cpu" or V.flags.writeable or V.dtype != np.float32:
            return V, b
        kept = self.__dict__.get("_items_t")
        if kept is None or kept[0] is not V:
            kept = (V, np.ascontiguousarray(V.T))
            self._items_t = kept
        return kept[1].T, b

    def score(self, uidx: np.ndarray, history: Any = None) -> np.ndarray:
        """``U_u·Vᵀ (+ b)`` for every item, float32 ``(len(uidx), n_items)``; ``uidx == -1``
        rows are folded in from ``history``."""
        return self.backend.kernels.dot_scores(self.user_vectors(uidx, history), *self.scoring_side())

    def score_unordered(self, uidx: np.ndarray) -> np.ndarray:
        """:meth:`score` of known users by one BLAS product ``U_u·Vᵀ (+ b)`` on the CPU.
        Faster, but BLAS sums in an order that depends on the batch's shape, so the last
        bits of a user's scores may differ from :meth:`score`'s: for rankings that are
        only measured (``recli tune``'s validation), never for lists that are served."""
        if self.backend.name != "cpu":
            return self.score(uidx, None)
        V, b = self.item_side()
        out = self.user_vectors(uidx, None) @ np.asarray(V, dtype=np.float32).T
        if b is not None:
            out += np.asarray(b, dtype=np.float32)
        return out

    def top_k(self, uidx: np.ndarray, history: Any, k: int, rows: Any = None, indptr: Any = None,
              indices: Any = None, banned: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """``kernels.topk(self.score(uidx, history), k, rows, indptr, indices, banned)``; a
        large CPU batch by :func:`screened_top_k`: the same result, bit for bit."""
        if not screens(self, uidx):
            return self.backend.kernels.topk(self.score(uidx, history), k, rows, indptr, indices, banned)
        return screened_top_k(self.user_vectors(uidx, history), *self.item_side(), k, rows, indptr, indices, banned)


# Blocks of users per worker thread in one batch of the fused top-k: enough that the
# workers finish the batch close together.
BLOCKS_PER_WORKER = 4


def screens(model: Any, uidx: np.ndarray) -> bool:
    """Whether a factor model's top-k of this batch runs :func:`screened_top_k`: a CPU batch
    of more than ``SMALL_BATCH_CELLS`` scores (smaller ones take the NumPy twins)."""
    from recli.kernels.cpu import SMALL_BATCH_CELLS

    return model.backend.name == "cpu" and np.shape(uidx)[0] * model.n_items > SMALL_BATCH_CELLS


def screen_batch_rows(model: Any, batch_size: int) -> int:
    """Users per batch for a model's fused top-k: ``batch_size``, or on the CPU enough that
    every worker thread of :func:`screened_top_k` takes several of its tall blocks (a
    batch's memory is its ``users × k`` results, so a larger batch costs little)."""
    if model.backend.name != "cpu":
        return batch_size
    import numba

    from recli.kernels.dot_screen import BLOCK_ROWS

    return max(batch_size, BLOCKS_PER_WORKER * BLOCK_ROWS * numba.get_num_threads())


def screened_top_k(U: np.ndarray, V: np.ndarray, b: np.ndarray | None, k: int, rows: Any, indptr: Any, indices: Any,
                   banned: Any, user_bias: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of ``U·Vᵀ (+ b) (+ user_bias)`` summed in the fixed order, at BLAS speed
    (:func:`recli.kernels.dot_screen.screened_topk`: a BLAS screen, then the fixed-order
    sum for the few items near the cut), with one tile of scores per worker thread in
    memory, never the batch's score matrix. ``--threads`` workers (Numba's thread count,
    set by :func:`recli.backend.threads_context`), one BLAS thread each."""
    import numba

    from recli.backend import single_threaded_blas
    from recli.kernels.dot_screen import screened_topk

    with single_threaded_blas() as single:
        # where BLAS keeps several threads (the limit did not hold), one worker: its BLAS
        # products use those threads, and the cores are not oversubscribed
        return screened_topk(U, V, b, k, rows, indptr, indices, banned, user_bias=user_bias,
                             workers=numba.get_num_threads() if single else 1)


def init_factors(n_rows: int, factors: int, rng: np.random.Generator,
                 counts: np.ndarray) -> np.ndarray:
    """Uniform ``(-0.5, 0.5) / factors`` (implicit's and LightFM's scheme), float32, with
    rows of entities that have no interactions set to zero (they then score 0)."""
    out = (rng.random((n_rows, factors), dtype=np.float32) - np.float32(0.5)) / np.float32(factors)
    out[counts == 0] = 0.0
    return out


def positive_csr(matrix: Any, **as_csr_args: Any) -> sp.csr_matrix:
    """The canonical CSR of ``matrix`` (:func:`recli.data.matrix.as_csr`) keeping only the
    cells with a value > 0: the positives of a model that accepts ``"binary"`` values
    (see :data:`recli.models.base.VALUE_KINDS`; a zero or a dislike is not a positive)."""
    from recli.data.matrix import as_csr

    m = as_csr(matrix, **as_csr_args)
    if (m.data <= 0).any():
        m.data[m.data < 0] = 0.0
        m = as_csr(m, drop_zeros=True)  # as_csr again: eliminate_zeros may narrow indptr to int32
    return m


def trainable_csr(user_items: Any, model: str) -> sp.csr_matrix:
    """The training positives of a pairwise model (:func:`positive_csr`), refused when it
    cannot rank anything."""
    m = positive_csr(user_items)
    if m.nnz == 0 or m.shape[0] == 0 or m.shape[1] == 0:
        raise InputError(f"cannot train {model}: the training set has no interactions with a value > 0",
                         hint="check the input file and any filters applied by recli prep")
    if m.shape[1] < 2:
        raise InputError(f"cannot train {model}: it ranks items against each other and needs at least 2 items",
                         hint="use a training set with more than one item")
    return m


class PairwiseFactorModel(FactorModel):
    """Common state, training loop and inference of ``bpr`` and ``warp``: user factors
    ``U``, item factors ``V`` and item biases ``b``; score ``U_u · V_i + b_i``. Subclasses
    implement ``_epoch_runner`` (their SGD kernel for one epoch) and ``_fold_in(history_csr)``."""

    diverged_hint: ClassVar[str] = "lower --learning-rate or raise --regularization"
    accepts: ClassVar[str] = "binary"
    # mini-batch SGD on the GPU, Hogwild on the CPU: the GPU reproduces the NumPy mini-batch
    gpu_reference: ClassVar[str] = "xp-numpy"

    def __init__(self, config: Any = None, backend: Any = None):
        super().__init__(config, backend)
        k = self.config.factors
        self.user_factors = np.zeros((0, k), dtype=np.float32)
        self.item_factors = np.zeros((0, k), dtype=np.float32)
        self.item_bias = np.zeros(0, dtype=np.float32)
        self.threads_used = 0

    def _init_state(self, m: sp.csr_matrix) -> None:
        """Deterministic initialisation from ``config.seed`` (users first, then items)."""
        from recli.data.csr import item_counts

        self.n_users, self.n_items = m.shape
        rng = np.random.default_rng(self.config.seed)
        k = self.config.factors
        self.user_factors = init_factors(self.n_users, k, rng, np.diff(m.indptr))
        self.item_factors = init_factors(self.n_items, k, rng, item_counts(m.indices, self.n_items))
        self.item_bias = np.zeros(self.n_items, dtype=np.float32)
        self.epoch_losses = []

    def fit(self, user_items: Any, on_epoch: Any = None) -> "PairwiseFactorModel":
        """Train on a user x item CSR (cells > 0 are interactions): ``iterations`` epochs of
        the backend's SGD kernel (CPU: Hogwild over users in row chunks balanced by
        non-zeros, one chunk per thread; GPU: mini-batches of atomic updates)."""
        import time

        from recli.backend import threads_context

        m = trainable_csr(user_items, self.name)
        self._init_state(m)
        dtype = self.training_dtype = training_dtype(self.backend, self.config.dtype)
        state = [held(self.backend, a, dtype) for a in (self.user_factors, self.item_factors)]
        state.append(self.backend.xp.asarray(self.item_bias))
        with threads_context(self.backend.threads) as threads:
            self.threads_used = threads
            run = self._epoch_runner(self.backend.kernels.sgd_plan(m.indptr, m.indices, threads=threads), *state)
            for epoch in range(self.config.iterations):  # 0-based: the kernels' random streams and schedules
                start = time.perf_counter()
                loss = run(epoch)
                if on_epoch is not None:
                    self._publish(state)  # the callback may score, fold in or snapshot
                if self._report(on_epoch, epoch + 1, start, loss):
                    break
        self._publish(state)
        self.check_finite(self.to_arrays())
        return self

    def _publish(self, state: list) -> None:
        """Expose the trained ``(U, V, b)`` as the model's float32 host arrays (on the CPU
        they are those arrays already)."""
        self.user_factors, self.item_factors, self.item_bias = (published(self.backend, a) for a in state)

    def _epoch_runner(self, plan: Any, U: Any, V: Any, b: Any):
        """``run(epoch) -> loss``: one epoch of the subclass's SGD kernel, on the backend's
        ``plan`` (:func:`recli.kernels.cpu.sgd_plan`), updating ``U``, ``V``, ``b`` in place."""
        raise NotImplementedError

    def fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        """Fold in with the subclass's SGD kernel (``_fold_in``) on the history's positives
        (cells with a value > 0, as in training)."""
        return self._fold_in(positive_csr(history))

    def _fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        raise NotImplementedError

    def item_side(self) -> tuple[np.ndarray, np.ndarray]:
        """``(V, b)``: the score is ``U_u · V_i + b_i``."""
        return self.item_factors, self.item_bias

    def similar_items(self, iidx: np.ndarray) -> np.ndarray:
        """Cosine similarity over item factors (biases left out)."""
        return cosine_rows(self.item_factors, iidx)

    def to_arrays(self) -> dict[str, np.ndarray]:
        dtype = self.config.dtype
        return {"user_factors": stored(self.user_factors, dtype, "user factors"),
                "item_factors": stored(self.item_factors, dtype, "item factors"), "item_bias": self.item_bias}

    @classmethod
    def from_arrays(cls, config: Any, arrays: dict[str, np.ndarray], backend: Any = None) -> "PairwiseFactorModel":
        model = cls(config, backend)
        dtype = model.config.dtype
        U = loaded(arrays, "user_factors", dtype, cls.name)  # kept as stored: rows are upcast per batch
        V = loaded_items(arrays, dtype, cls.name)  # float32 once: every batch reads all items
        b = np.ascontiguousarray(loaded(arrays, "item_bias", "float32", cls.name))
        k = model.config.factors
        if U.ndim != 2 or V.ndim != 2 or U.shape[1] != k or V.shape[1] != k or b.shape != (V.shape[0],):
            raise ArtifactError(f"{cls.name} model arrays have inconsistent shapes "
                                f"(user {U.shape}, item {V.shape}, bias {b.shape}, factors={k})",
                                hint="the file is corrupt; retrain the model")
        model.user_factors, model.item_factors, model.item_bias = U, V, b
        model.n_users, model.n_items = U.shape[0], V.shape[0]
        return model
