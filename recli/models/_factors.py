"""Shared pieces of the factor models (``als``, ``mf``, ``bpr``, ``warp``): cosine over
factor vectors, the fold-in of new users, and the state and inference of the pairwise
models (initialisation, scoring, CSR checks)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from recli.errors import ArtifactError, InputError
from recli.models.base import Model, split_batch

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


class FactorModel(Model):
    """A model that scores from user factor rows: trained rows for known users, rows
    folded in from ``history`` (subclasses implement ``fold_in(history_csr)``) for the
    rows marked ``-1``. ``user_factors`` is the trained ``(n_users, factors)`` array."""

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
        out[known] = self.user_factors[uidx[known]]
        if hist is not None:
            with threads_context(self.backend.threads):
                out[new] = self.fold_in(hist)
        return out


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
        xp = self.backend.xp
        state = [xp.asarray(a) for a in (self.user_factors, self.item_factors, self.item_bias)]
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
        """Expose the trained ``(U, V, b)`` as the model's host arrays (on the CPU they are
        those arrays already)."""
        self.user_factors, self.item_factors, self.item_bias = (self.backend.to_host(a) for a in state)

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

    def score(self, uidx: np.ndarray, history: Any) -> np.ndarray:
        """``U_u · V_i + b_i`` for every item, float32 ``(len(uidx), n_items)``."""
        return self.backend.kernels.dot_scores(self.user_vectors(uidx, history), self.item_factors, self.item_bias)

    def similar_items(self, iidx: np.ndarray) -> np.ndarray:
        """Cosine similarity over item factors (biases left out)."""
        return cosine_rows(self.item_factors, iidx)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors, "item_factors": self.item_factors,
                "item_bias": self.item_bias}

    @classmethod
    def from_arrays(cls, config: Any, arrays: dict[str, np.ndarray], backend: Any = None) -> "PairwiseFactorModel":
        model = cls(config, backend)
        try:
            U = np.ascontiguousarray(arrays["user_factors"], dtype=np.float32)
            V = np.ascontiguousarray(arrays["item_factors"], dtype=np.float32)
            b = np.ascontiguousarray(arrays["item_bias"], dtype=np.float32)
        except KeyError as exc:
            raise ArtifactError(f"{cls.name} model file lacks the array {exc.args[0]!r}",
                                hint="the file is corrupt or from another model; retrain it") from None
        k = model.config.factors
        if U.ndim != 2 or V.ndim != 2 or U.shape[1] != k or V.shape[1] != k or b.shape != (V.shape[0],):
            raise ArtifactError(f"{cls.name} model arrays have inconsistent shapes "
                                f"(user {U.shape}, item {V.shape}, bias {b.shape}, factors={k})",
                                hint="the file is corrupt; retrain the model")
        model.user_factors, model.item_factors, model.item_bias = U, V, b
        model.n_users, model.n_items = U.shape[0], V.shape[0]
        return model
