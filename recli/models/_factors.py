"""Shared pieces of the pairwise factor models (``bpr``, ``warp``): initialisation,
scoring, cosine similarity, thread control and CSR checks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from recli.errors import ArtifactError, ConfigError, InputError
from recli.models.base import Model

if TYPE_CHECKING:  # SciPy loads lazily: serving one user from a factor model never needs it
    import scipy.sparse as sp


def init_factors(n_rows: int, factors: int, rng: np.random.Generator,
                 counts: np.ndarray) -> np.ndarray:
    """Uniform ``(-0.5, 0.5) / factors`` (implicit's and LightFM's scheme), float32, with
    rows of entities that have no interactions set to zero (they then score 0)."""
    out = (rng.random((n_rows, factors), dtype=np.float32) - np.float32(0.5)) / np.float32(factors)
    out[counts == 0] = 0.0
    return out


def as_sorted_csr(user_items: Any, what: str = "user_items") -> sp.csr_matrix:
    """A CSR with int64 indptr, int32 sorted, duplicate-free indices and float32 data."""
    import scipy.sparse as sp

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
        import scipy.sparse as sp

        hist = as_sorted_csr(sp.csr_matrix(history)[new], "history")
    return known, new, hist


class PairwiseFactorModel(Model):
    """Common state and inference of ``bpr`` and ``warp``: user factors ``U``, item
    factors ``V`` and item biases ``b``; score ``U_u · V_i + b_i``; subclasses implement
    ``fit`` and ``_fold_in(history_csr)``."""

    can_fold_in: ClassVar[bool] = True

    def __init__(self, config: Any = None, backend: Any = None):
        super().__init__(config, backend)
        k = self.config.factors
        self.user_factors = np.zeros((0, k), dtype=np.float32)
        self.item_factors = np.zeros((0, k), dtype=np.float32)
        self.item_bias = np.zeros(0, dtype=np.float32)
        self.threads_used = 0

    def _init_state(self, m: sp.csr_matrix) -> None:
        """Deterministic initialisation from ``config.seed`` (users first, then items)."""
        self.n_users, self.n_items = m.shape
        rng = np.random.default_rng(self.config.seed)
        k = self.config.factors
        self.user_factors = init_factors(self.n_users, k, rng, np.diff(m.indptr))
        self.item_factors = init_factors(self.n_items, k, rng, np.bincount(m.indices, minlength=self.n_items))
        self.item_bias = np.zeros(self.n_items, dtype=np.float32)
        self.epoch_losses = []

    def _check_finite(self) -> None:
        if not (np.isfinite(self.user_factors).all() and np.isfinite(self.item_factors).all()
                and np.isfinite(self.item_bias).all()):
            raise ConfigError(f"{self.name} diverged: the factors contain NaN or infinity",
                              hint="lower --learning-rate or raise --regularization")

    def _fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        raise NotImplementedError

    def user_vectors(self, uidx: np.ndarray, history: Any) -> np.ndarray:
        """Factor rows for a batch: trained rows, or folded-in rows where ``uidx == -1``."""
        known, new, hist = split_known(uidx, history, self.n_users, self.name)
        out = np.zeros((len(known) + len(new), self.config.factors), dtype=np.float32)
        out[known] = self.user_factors[np.asarray(uidx, dtype=np.int64)[known]]
        if hist is not None:
            if hist.shape[1] != self.n_items:
                raise InputError(f"history has {hist.shape[1]} item columns, the model has {self.n_items} items",
                                 hint="build the history matrix with the model's item vocabulary")
            from recli.backend import threads_context

            with threads_context(self.backend.threads):
                out[new] = self._fold_in(hist)
        return out

    def score(self, uidx: np.ndarray, history: Any) -> np.ndarray:
        """``U_u · V_i + b_i`` for every item, float32 ``(len(uidx), n_items)``."""
        return dot_scores(self.user_vectors(uidx, history), self.item_factors, self.item_bias)

    def similar_items(self, iidx: np.ndarray) -> np.ndarray:
        """Cosine similarity over item factors (biases left out)."""
        return cosine_similar(self.item_factors, iidx)

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
