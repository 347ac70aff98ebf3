"""Neighbourhood models: ``itemknn`` and ``userknn`` on the sparse top-K similarity engine
(:mod:`recli.kernels.similarity`, driven by :mod:`recli.models._similarity`).

``itemknn``: ``score(u, i) = Σ_{h ∈ history(u)} r_uh · S[h, i]`` where row ``h`` of ``S``
holds item ``h``'s K nearest items (implicit's ItemItemRecommender convention). A user's
history is all it needs, so new users are scored from ``--history`` directly.

``userknn``: ``score(u, i) = Σ_{v ∈ N_K(u)} s_uv · r_vi`` over the K most similar training
users. A new user's neighbours are found by comparing the (weighted) history row with every
training user, with the same measure, weighting and shrinkage as in training.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from recli.errors import InputError
from recli.models._weighting import MEASURES, WEIGHTINGS
from recli.models.base import csr_from_prefix, csr_to_arrays, param
from recli.models.train_matrix import TrainMatrixModel


@dataclass
class KNNConfig:
    neighbours: int = param(100, "neighbours K kept per item (itemknn) or user (userknn)", min=1)
    similarity: str = param("cosine", "similarity measure", choices=MEASURES)
    weighting: str = param("none", "input weighting applied before the similarity", choices=WEIGHTINGS)
    shrink: float = param(0.0, "shrinkage λ added to the similarity denominator (0 = none)", min=0.0)
    alpha: float = param(0.5, "asymmetric_cosine exponent α (0.5 = cosine)", min=0.0, max=1.0)
    bm25_k1: float = param(1.2, "BM25 k1: term-frequency saturation", min=0.0)
    bm25_b: float = param(0.75, "BM25 b: length normalisation", min=0.0, max=1.0)


# How to get past the refusal of negative values by tfidf/bm25 (KNNModel._refuse_negative).
_TRAIN_HINT = "keep the positive values (recli prep --implicit --min-rating N), or use --param weighting=none"
_HISTORY_HINT = "leave the negative rows out of the history, as in the training data"


class KNNModel(TrainMatrixModel):
    """What ``itemknn`` and ``userknn`` share: the value rule. ``tfidf`` (√x) and ``bm25``
    (a saturating count) weight counts, so they need values >= 0; without a weighting any
    real value enters the similarity and the scores with its sign."""

    Config: ClassVar[type] = KNNConfig
    # the similarity build runs on the backend's kernels (blocked on a GPU); scoring is a
    # sparse product on the host, then the backend's top-k
    devices: ClassVar[tuple[str, ...]] = ("cpu", "gpu")
    can_explain: ClassVar[bool] = True
    accepts_note: ClassVar[str] = "nonnegative with weighting=tfidf or bm25"
    negative_values: ClassVar[str] = "enter the similarity and the scores with their sign"

    @classmethod
    def accepted_values(cls, config: Any) -> str:
        return "real" if config.weighting == "none" else "nonnegative"

    @classmethod
    def gpu_memory(cls, config: Any, user_items: Any) -> Any:
        """The similarity input and its transpose as float64 CSR (``2·(12·nnz)``) stay on
        the device; a block costs :data:`recli.kernels.similarity_xp.BYTES_PER_CELL` per
        (row, entity) cell, at least one row."""
        from recli.device_memory import MemoryEstimate
        from recli.kernels.similarity_xp import BYTES_PER_CELL

        n_users, n_items = user_items.shape
        entities = n_items if cls.name == "itemknn" else n_users
        return MemoryEstimate({"training matrix": 24 * int(user_items.nnz) + 4 * (n_users + n_items + 2)},
                              BYTES_PER_CELL * entities, 1, "row")

    def _refuse_negative(self, rows: sp.csr_matrix, what: str, hint: str) -> None:
        negative = int((rows.data < 0).sum())
        if negative and self.accepted_values(self.config) == "nonnegative":
            raise InputError(f"{what} has {negative} negative value{'s' * (negative != 1)}, but {self.name} with "
                             f"weighting={self.config.weighting} needs values >= 0", hint=hint)


class ItemKNN(KNNModel):
    name: ClassVar[str] = "itemknn"
    summary: ClassVar[str] = "item-based k-nearest neighbours on a sparse top-K item–item similarity"
    test_params: ClassVar[dict] = {"neighbours": 20}
    search_space: ClassVar[dict] = {
        "neighbours": {"type": "int", "low": 10, "high": 1000, "log": True},
        "similarity": {"type": "choice", "values": ["cosine", "jaccard", "asymmetric_cosine", "pearson"]},
        "weighting": {"type": "choice", "values": list(WEIGHTINGS)},
        "shrink": {"type": "float", "low": 0.0, "high": 100.0},
    }

    similarity: sp.csr_matrix

    def fit(self, user_items: Any, on_epoch: Any = None) -> "ItemKNN":
        from recli.models._similarity import build_similarity

        start = time.perf_counter()
        self._keep_train(user_items)
        self._refuse_negative(self.train, "the training data", _TRAIN_HINT)
        c = self.config
        # the similarity layer runs the kernel under backend.threads_context
        self.similarity = build_similarity(_transposed(self.train), c.neighbours, c.similarity, c.weighting,
                                           c.shrink, c.alpha, c.bm25_k1, c.bm25_b, self.backend.threads,
                                           features=self.train, backend=self.backend)
        self._report(on_epoch, 1, start, None)
        return self

    def score(self, uidx: np.ndarray, history: Any = None) -> np.ndarray:
        rows = self.batch_rows(uidx, history)
        return np.asarray((rows @ self.similarity).toarray(), dtype=np.float32)

    def similar_items(self, iidx: np.ndarray) -> np.ndarray:
        return np.asarray(self.similarity[np.asarray(iidx, np.int64)].toarray(), dtype=np.float32)

    def explain(self, uidx: int, history_items: np.ndarray, history_values: np.ndarray,
                items: np.ndarray) -> np.ndarray:
        """``C[j, h] = r_h · S[h, items[j]]``: rows sum to the scores of ``items``."""
        sub = self.similarity[np.asarray(history_items, np.int64)][:, np.asarray(items, np.int64)].toarray()
        return (sub * np.asarray(history_values, np.float64)[:, None]).T.astype(np.float32)

    @classmethod
    def stored_bytes(cls, config: Any, n_users: int, n_items: int) -> int:
        return 8 * n_items * int(config.neighbours)  # K (index, value) pairs per item

    def to_arrays(self) -> dict[str, np.ndarray]:
        return csr_to_arrays("similarity", self.similarity)  # train comes from the model file

    @classmethod
    def from_arrays(cls, config: Any, arrays: dict[str, np.ndarray], backend: Any = None) -> "ItemKNN":
        model = cls._with_train(config, arrays, backend)
        model.similarity = csr_from_prefix("similarity", arrays)
        return model


class UserKNN(KNNModel):
    name: ClassVar[str] = "userknn"
    summary: ClassVar[str] = "user-based k-nearest neighbours on a sparse top-K user–user similarity"
    test_params: ClassVar[dict] = {"neighbours": 20}
    search_space: ClassVar[dict] = ItemKNN.search_space

    similarity: sp.csr_matrix

    @classmethod
    def stored_bytes(cls, config: Any, n_users: int, n_items: int) -> int:
        return 8 * n_users * int(config.neighbours)  # K (index, value) pairs per user

    def fit(self, user_items: Any, on_epoch: Any = None) -> "UserKNN":
        from recli.models._similarity import similarity_topk
        from recli.models._weighting import prepare_rows

        start = time.perf_counter()
        self._keep_train(user_items)
        self._refuse_negative(self.train, "the training data", _TRAIN_HINT)
        c = self.config
        self._prepared, self._state = prepare_rows(self.train, c.similarity, c.weighting, c.bm25_k1, c.bm25_b)
        self.similarity = similarity_topk(self._prepared, c.neighbours, c.similarity, c.shrink, c.alpha,
                                          self.backend.threads, backend=self.backend)
        self._report(on_epoch, 1, start, None)
        return self

    # -- neighbours of new users -------------------------------------------------
    def _prepared_rows(self) -> sp.csr_matrix:
        if getattr(self, "_prepared", None) is None:
            from recli.models._weighting import transform_rows

            c = self.config
            self._prepared = transform_rows(self.train, c.similarity, c.weighting, self._state, c.bm25_k1, c.bm25_b)
        return self._prepared

    def _query_neighbours(self, hist: sp.csr_matrix, chunk: int = 256) -> sp.csr_matrix:
        """Top-K training users of each history row, scored exactly as in training; rows are
        processed in chunks so the dense chunk × n_users block stays small."""
        self._refuse_negative(hist, "the history", _HISTORY_HINT)
        parts = [self._query_chunk(hist[start:start + chunk]) for start in range(0, hist.shape[0], chunk)]
        return sp.vstack(parts).tocsr() if parts else sp.csr_matrix((0, self.n_users), dtype=np.float32)

    def _query_chunk(self, hist: sp.csr_matrix) -> sp.csr_matrix:
        from recli.kernels.similarity import measure_factors, topk_rows
        from recli.models._weighting import transform_rows

        c = self.config
        x = transform_rows(hist, c.similarity, c.weighting, self._state, c.bm25_k1, c.bm25_b)
        x = sp.csr_matrix(x, dtype=np.float32).astype(np.float64)
        prep = sp.csr_matrix(self._prepared_rows(), dtype=np.float32).astype(np.float64)
        d = np.asarray((x @ prep.T).toarray(), dtype=np.float64)
        a_q = np.asarray(x.multiply(x).sum(axis=1)).ravel()
        a_t = np.asarray(prep.multiply(prep).sum(axis=1)).ravel()
        q_row, _, shrink, jaccard = measure_factors(a_q, c.similarity, c.alpha, self.n_items, c.shrink)
        _, t_nbr, _, _ = measure_factors(a_t, c.similarity, c.alpha, self.n_items, c.shrink)
        den = (a_q[:, None] + a_t[None, :] - d + shrink) if jaccard else (q_row[:, None] * t_nbr[None, :] + shrink)
        ok = (d != 0) & (den != 0)
        s = np.full(d.shape, -np.inf, np.float32)
        s[ok] = (d[ok] / den[ok]).astype(np.float32)
        idx, val, counts = topk_rows(s, c.neighbours)
        keep = (np.arange(idx.shape[1])[None, :] < counts[:, None]) & np.isfinite(val)
        indptr = np.zeros(len(counts) + 1, np.int64)
        np.cumsum(keep.sum(axis=1), out=indptr[1:])
        return sp.csr_matrix((val[keep], idx[keep], indptr), shape=(hist.shape[0], self.n_users))

    def _neighbours(self, uidx: np.ndarray, history: Any) -> sp.csr_matrix:
        uidx = np.asarray(uidx, np.int64).ravel()
        known = uidx >= 0
        nbrs = self.similarity[np.where(known, uidx, 0)]
        if known.all():
            return nbrs
        rows = self.batch_rows(uidx, history)
        fresh = self._query_neighbours(rows[np.flatnonzero(~known)])
        out = sp.lil_matrix(nbrs)
        for pos, r in zip(np.flatnonzero(~known), range(fresh.shape[0])):
            out[pos] = fresh[r]
        return out.tocsr()

    def score(self, uidx: np.ndarray, history: Any = None) -> np.ndarray:
        return np.asarray((self._neighbours(uidx, history) @ self.train).toarray(), dtype=np.float32)

    def similar_items(self, iidx: np.ndarray) -> np.ndarray:
        """Cosine between item columns of the training matrix (userknn learns no item graph)."""
        cols = self.train[:, np.asarray(iidx, np.int64)].T.tocsr()
        norms = np.sqrt(np.asarray(self.train.multiply(self.train).sum(axis=0)).ravel())
        own = np.sqrt(np.asarray(cols.multiply(cols).sum(axis=1)).ravel())
        sims = (cols @ self.train).toarray()
        with np.errstate(divide="ignore", invalid="ignore"):
            out = sims / (own[:, None] * norms[None, :])
        return np.nan_to_num(out, nan=0.0, posinf=0.0).astype(np.float32)

    def explain(self, uidx: int, history_items: np.ndarray, history_values: np.ndarray,
                items: np.ndarray) -> np.ndarray:
        """Each neighbour ``v`` adds ``s_uv · r_vi`` to item ``i``; that amount is split over the
        history items ``h`` in proportion to their share ``x_uh · x_vh / d_uv`` of the dot
        product that made ``v`` a neighbour. Rows sum to the scores."""
        from recli.models._weighting import transform_rows

        c = self.config
        h_items = np.asarray(history_items, np.int64)
        hist = sp.csr_matrix((np.asarray(history_values, np.float32), h_items, [0, len(h_items)]),
                             shape=(1, self.n_items))
        self._refuse_negative(hist, "the history", _HISTORY_HINT)
        nbrs = self._neighbours(np.array([uidx]), hist)
        v, s_v = nbrs.indices, nbrs.data.astype(np.float64)
        x_u = transform_rows(hist, c.similarity, c.weighting, self._state, c.bm25_k1, c.bm25_b)
        x_u = sp.csr_matrix(x_u, dtype=np.float32).toarray().ravel()[h_items].astype(np.float64)
        x_v = sp.csr_matrix(self._prepared_rows(), dtype=np.float32)[v][:, h_items].toarray().astype(np.float64)
        share = x_v * x_u[None, :]
        total = share.sum(axis=1)
        weights = np.divide(s_v, total, out=np.zeros_like(s_v), where=total != 0)
        r_vi = self.train[v][:, np.asarray(items, np.int64)].toarray().astype(np.float64)
        return (r_vi.T @ (weights[:, None] * share)).astype(np.float32)

    def to_arrays(self) -> dict[str, np.ndarray]:
        state = {f"state_{k}": np.asarray(v, np.float64) for k, v in self._state.items()}
        return {**csr_to_arrays("similarity", self.similarity), **state}  # train: from the model file

    @classmethod
    def from_arrays(cls, config: Any, arrays: dict[str, np.ndarray], backend: Any = None) -> "UserKNN":
        model = cls._with_train(config, arrays, backend)
        model.similarity = csr_from_prefix("similarity", arrays)
        model._state = {k[len("state_"):]: np.asarray(v) for k, v in arrays.items() if k.startswith("state_")}
        model._prepared = None
        return model


def _transposed(m: sp.csr_matrix) -> sp.csr_matrix:
    """``m.T`` as a sorted CSR, built in parallel (:func:`recli.kernels.transpose.transpose_csr`)."""
    from recli.data.matrix import csr_arrays
    from recli.kernels.transpose import transpose_csr

    indptr, indices, data = transpose_csr(*csr_arrays(m), m.shape[1])
    return sp.csr_matrix((data, indices, indptr), shape=m.shape[::-1])
