"""``fm``: a factorisation machine (Rendle 2010) over users, items, their side features
and optional per-row context.

A training row is the feature vector ``x = [one-hot user | one-hot item | user
features | item features | context]`` and the model is

    ŷ(x) = w0 + Σⱼ wⱼ xⱼ + Σ_{j<l} ⟨vⱼ, vₗ⟩ xⱼ xₗ,

computed in O(k·n) (see :mod:`recli.kernels.fm`, which states the reformulation, the
gradients and both solvers). Tasks: ``regression`` fits the ratings (squared error; the
scores are predicted ratings), ``ranking`` fits implicit feedback with the BPR loss
against a negative item drawn, per positive, among the items with interactions.
Solvers: ``sgd`` (AdaGrad) for both tasks; for regression ``als`` (exact coordinate
descent with cached residuals, Rendle et al. 2011) and ``mcmc`` (Gibbs sampling of
Bayesian FM on the same caches, whose predictor averages the samples); ``auto`` picks
``als`` for regression.

Scoring every item for a user uses ``ŷ(u, i) = w0 + c(U) + c(I) + s(U)·s(I)``: the item
terms are computed once per model state, a user's scores are one dot product per item.
An item (or user) without interactions has zero one-hot parameters and is scored from
its features alone (cold start).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from recli.data.side import SideFeatures
from recli.errors import ArtifactError, ConfigError, InputError
from recli.models._factors import cosine_rows
from recli.models._fm_solve import Hyper, bpr_fold_in
from recli.models.base import EpochCallback, Model, param, split_batch

if TYPE_CHECKING:
    import scipy.sparse as sp

_SIDES = ("user_features", "item_features", "context")
_BLOCKS = ("users", "items", *_SIDES)  # the blocks of the feature space, in column order (mcmc: prior groups)


@dataclass
class FMConfig:
    task: str = param("regression", "regression (ratings, squared error) or ranking (implicit feedback, BPR loss)",
                      choices=("regression", "ranking"))
    solver: str = param("auto", "sgd (AdaGrad), als (coordinate descent), mcmc (Gibbs sampling, Bayesian FM; "
                        "als and mcmc: regression only) or auto (als for regression, sgd for ranking)",
                        choices=("auto", "sgd", "als", "mcmc"))
    factors: int = param(16, "latent factors per feature (the rank k)", min=1, max=4096)
    iterations: int = param(30, "epochs (sgd: a pass over the rows; als: a sweep over every parameter)", min=1)
    learning_rate: float = param(0.05, "AdaGrad step size (solver sgd)", min=0.0, exclusive_min=True, max=10.0)
    reg_linear: float | None = param(None, "L2 penalty on the linear weights, per row the weight occurs in "
                                     "(sgd, als; default 0.1 for regression, 0.01 for ranking)", min=0.0)
    reg_factors: float | None = param(None, "L2 penalty on the factor vectors, per row the feature occurs in "
                                      "(sgd, als; default 0.15 for regression, 0.01 for ranking)", min=0.0)
    init_std: float = param(0.1, "standard deviation of the normal factor initialisation", min=0.0)
    burn_in: int = param(5, "mcmc: sweeps drawn before the samples the predictor averages", min=0)
    negative_tries: int = param(8, "negative draws per positive (task ranking) before skipping it", min=1,
                                max=10_000)
    seed: int = param(42, "random seed (initialisation, row order, negatives)", min=0)


class FM(Model):
    """Factorisation machine; serial solvers, so bit-for-bit deterministic."""

    name: ClassVar[str] = "fm"
    summary: ClassVar[str] = "factorisation machine over users, items, side features and context (ratings or BPR)"
    Config: ClassVar[type] = FMConfig
    uses_features: ClassVar[bool] = True
    can_fold_in: ClassVar[bool] = True
    predicts_ratings: ClassVar[bool] = True  # task=regression; an instance with task=ranking sets it False
    accepts: ClassVar[str] = "ratings"
    accepts_note: ClassVar[str] = "binary with task=ranking"
    negative_values: ClassVar[str] = "are ratings like any other (task=regression)"
    implicit_hint: ClassVar[str] = "--param task=ranking"
    diverged_hint: ClassVar[str] = "lower --param learning_rate, or raise reg_linear / reg_factors"
    test_params: ClassVar[dict] = {"task": "ranking", "factors": 8, "iterations": 40, "learning_rate": 0.1,
                                   "reg_linear": 0.001, "reg_factors": 0.001}
    search_space: ClassVar[dict] = {
        "factors": {"type": "int", "low": 4, "high": 128, "log": True},
        "reg_linear": {"type": "float", "low": 1e-3, "high": 1.0, "log": True},
        "reg_factors": {"type": "float", "low": 1e-3, "high": 1.0, "log": True},
        "learning_rate": {"type": "float", "low": 1e-3, "high": 0.5, "log": True},
    }

    @classmethod
    def accepted_values(cls, config: Any) -> str:
        return "ratings" if config.task == "regression" else "binary"

    @classmethod
    def rates(cls, config: Any) -> bool:
        return config.task == "regression"

    def __init__(self, config: Any = None, backend: Any = None):
        super().__init__(config, backend)
        if self.config.task == "ranking" and self.config.solver in ("als", "mcmc"):
            raise ConfigError(f"fm: solver={self.config.solver} fits the squared error only (task=regression)",
                              hint="use --param solver=sgd (or auto) with task=ranking")
        self.predicts_ratings = self.config.task == "regression"
        k = self.config.factors
        self.w0 = 0.0
        self.w = np.zeros(0, np.float32)
        self.V = np.zeros((0, k), np.float32)
        # side matrices over their own vocabularies ((n_ids, n_features) CSR) and names
        self.sides: dict[str, Any] = dict.fromkeys(_SIDES)
        self.names: dict[str, np.ndarray] = {name: np.zeros(0, "<U1") for name in _SIDES}
        self.context_row: sp.csr_matrix | None = None  # the context of recommend requests
        self._item_terms: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def stored_bytes(cls, config: Any, n_users: int, n_items: int) -> int:
        """float32 weights and factors of the user and item one-hots (features come on
        top); mcmc keeps ``iterations − burn_in`` factor samples side by side."""
        samples = max(1, config.iterations - config.burn_in) if config.solver == "mcmc" else 1
        return 4 * (n_users + n_items) * (config.factors * samples + 1)

    @property
    def reg(self) -> tuple[float, float]:
        """``(reg_linear, reg_factors)``, the task's defaults where unset (BPR steps want
        far less shrinkage than squared-error ones)."""
        c = self.config
        lin, fac = (0.1, 0.15) if c.task == "regression" else (0.01, 0.01)
        return (lin if c.reg_linear is None else c.reg_linear), (fac if c.reg_factors is None else c.reg_factors)

    @property
    def solver(self) -> str:
        c = self.config
        return ("als" if c.task == "regression" else "sgd") if c.solver == "auto" else c.solver

    # -- the feature space ------------------------------------------------------
    def _width(self, name: str) -> int:
        return int(self.names[name].shape[0])

    def _block_size(self, block: str) -> int:
        return {"users": self.n_users, "items": self.n_items}.get(block) or self._width(block)

    def _offsets(self) -> dict[str, int]:
        """First column of each block: users, items, user features, item features, context."""
        out, at = {}, 0
        for block in _BLOCKS:
            out[block] = at
            at += self._block_size(block)
        out["end"] = at
        return out

    def _part(self, ids: str, side: str, idx: np.ndarray | None = None) -> sp.csr_matrix:
        """``(len(idx), p)`` CSR over the feature space: the one-hot column and the features
        of each id of ``idx`` (all ids when ``None``; an index -1 gives an empty row)."""
        import scipy.sparse as sp

        off = self._offsets()
        idx = np.arange(self._block_size(ids)) if idx is None else np.asarray(idx, np.int64)
        known = np.flatnonzero(idx >= 0)
        out = sp.csr_matrix((np.ones(known.size, np.float32), (known, off[ids] + idx[known])),
                            shape=(idx.shape[0], off["end"]))
        feats = self.sides[side]
        if feats is not None:
            rows = sp.diags((idx >= 0).astype(np.float32)) @ feats[np.maximum(idx, 0)]
            out = (out + _shifted(sp.csr_matrix(rows), off[side], off["end"])).tocsr()
        out.sort_indices()
        return out

    def _context_part(self, ctx: sp.csr_matrix | None, n_rows: int) -> sp.csr_matrix:
        import scipy.sparse as sp

        off = self._offsets()
        if ctx is None:
            return sp.csr_matrix((n_rows, off["end"]), dtype=np.float32)
        return _shifted(ctx, off["context"], off["end"])

    def _take_sides(self, user_items: Any, sides: dict[str, SideFeatures | None]) -> None:
        from recli.data.matrix import as_csr

        for name, feats in sides.items():
            if feats is None:
                self.sides[name], self.names[name] = None, np.zeros(0, "<U1")
                continue
            rows = {"user_features": user_items.shape[0], "item_features": user_items.shape[1],
                    "context": user_items.nnz}[name]
            if feats.matrix.shape[0] != rows:
                raise InputError(f"fm: {name} has {feats.matrix.shape[0]} rows, expected {rows}",
                                 hint="build the side features over the model's vocabulary (row i = id i)")
            self.sides[name] = as_csr(feats.matrix, what=name)
            self.names[name] = np.asarray(feats.names, dtype=str)

    # -- training ---------------------------------------------------------------
    def fit(self, user_items: Any, on_epoch: EpochCallback | None = None, *, item_features: SideFeatures | None = None,
            user_features: SideFeatures | None = None, context: SideFeatures | None = None) -> "FM":
        """Fit on ``user_items`` (ratings for regression; cells > 0 are positives for
        ranking). ``context``: per-cell context features, row ``c`` for the ``c``-th
        stored cell of ``user_items`` in canonical CSR order."""
        from recli.data.matrix import as_csr

        c = self.config
        ui = as_csr(user_items)
        self.n_users, self.n_items = ui.shape
        self._take_sides(ui, {"user_features": user_features, "item_features": item_features, "context": context})
        ctx = self._context_part(self.sides["context"], ui.nnz)
        if c.task == "ranking":  # the binary rule: cells <= 0 are not positives
            keep = ui.data > 0
            ctx, ui = ctx[keep], ui.copy()
            ui.data = keep.astype(np.float32)
            ui = as_csr(ui, drop_zeros=True)
        if ui.nnz == 0:
            raise InputError("the training matrix has no interactions", hint="check the training file is not empty")
        rows = np.repeat(np.arange(self.n_users), np.diff(ui.indptr))
        up, ip = self._part("users", "user_features"), self._part("items", "item_features")
        design = (up[rows] + ip[ui.indices] + ctx).tocsr()  # one row per cell: its feature vector x
        design.sort_indices()
        rng = np.random.default_rng(c.seed)
        self.V = (rng.standard_normal((design.shape[1], c.factors)) * c.init_std).astype(np.float32)
        self.V[design.getnnz(axis=0) == 0] = 0.0  # features no row has stay 0: cold ids score from their features
        self.w = np.zeros(design.shape[1], np.float32)
        self.epoch_losses, self._item_terms = [], None
        if c.task == "ranking":
            self.w0 = 0.0
            self._fit_bpr(ui, rows, up, ip, ctx, rng, on_epoch)
        else:
            y = ui.data.astype(np.float64)
            self.w0 = float(y.mean())
            fit = {"als": self._fit_als, "sgd": self._fit_sgd, "mcmc": self._fit_mcmc}[self.solver]
            fit(design, y, rng, on_epoch)
        return self

    def _epoch_done(self, on_epoch: EpochCallback | None, epoch: int, start: float, loss: float) -> bool:
        self.check_finite({"the training loss": loss, "the factors": self.V}, epoch)
        self._item_terms = None  # the model changed: item terms are recomputed on the next score
        return self._report(on_epoch, epoch, start, loss)

    def _fit_sgd(self, design: sp.csr_matrix, y: np.ndarray, rng: np.random.Generator,
                 on_epoch: EpochCallback | None) -> None:
        from recli.kernels.fm import sgd_regression_epoch

        c = self.config
        w0 = np.array([self.w0])
        G0, Gw, GV = np.zeros(1), np.zeros(self.w.shape[0]), np.zeros(self.V.shape)
        indptr, indices = design.indptr.astype(np.int64), design.indices.astype(np.int32)
        for epoch in range(1, c.iterations + 1):
            start = time.perf_counter()
            sse = sgd_regression_epoch(indptr, indices, design.data, y, rng.permutation(y.shape[0]), w0, self.w,
                                       self.V, G0, Gw, GV, c.learning_rate, *self.reg)
            self.w0 = float(w0[0])
            # loss: training RMSE, each row's error taken just before its step
            if self._epoch_done(on_epoch, epoch, start, float(np.sqrt(sse / y.shape[0]))):
                break

    def _fit_als(self, design: sp.csr_matrix, y: np.ndarray, rng: np.random.Generator,
                 on_epoch: EpochCallback | None) -> None:
        from recli.kernels.fm import cd_epoch, residuals

        c = self.config
        w0 = np.array([self.w0])
        e, q = np.empty(y.shape[0]), np.empty((y.shape[0], c.factors))
        residuals(design.indptr.astype(np.int64), design.indices.astype(np.int32), design.data, y, self.w0, self.w,
                  self.V, e, q)
        csc = design.tocsc()
        csc.sort_indices()
        cptr, crows = csc.indptr.astype(np.int64), csc.indices.astype(np.int32)
        for epoch in range(1, c.iterations + 1):
            start = time.perf_counter()
            mse = cd_epoch(cptr, crows, csc.data, e, q, w0, self.w, self.V, *self.reg)
            self.w0 = float(w0[0])
            if self._epoch_done(on_epoch, epoch, start, float(np.sqrt(mse))):  # loss: training RMSE after the sweep
                break

    def _fit_mcmc(self, design: sp.csr_matrix, y: np.ndarray, rng: np.random.Generator,
                  on_epoch: EpochCallback | None) -> None:
        """Gibbs sampling (:func:`recli.kernels.fm.gibbs_sweep`). The predictor is the
        posterior mean of ŷ over the samples after ``burn_in``: linear weights averaged,
        and the T factor samples side by side, ``V = [V¹ | … | Vᵀ] / √T``, so that the
        pairwise term of the stacked FM is the mean of the samples' pairwise terms."""
        from recli.kernels.fm import gibbs_sweep, residuals

        c = self.config
        w0, w, V = np.array([self.w0]), self.w.copy(), self.V.copy()  # the chain's current sample
        e, q = np.empty(y.shape[0]), np.empty((y.shape[0], c.factors))
        residuals(design.indptr.astype(np.int64), design.indices.astype(np.int32), design.data, y, w0[0], w, V, e, q)
        csc = design.tocsc()
        csc.sort_indices()
        cptr, crows = csc.indptr.astype(np.int64), csc.indices.astype(np.int32)
        group = np.repeat(np.arange(len(_BLOCKS)), [self._block_size(b) for b in _BLOCKS]).astype(np.int32)
        hyper = Hyper(len(_BLOCKS), c.factors, group, np.diff(cptr) > 0)
        kept: list[np.ndarray] = []
        w_sum, w0_sum = np.zeros(w.shape[0]), 0.0
        for epoch in range(1, c.iterations + 1):
            start = time.perf_counter()
            alpha = hyper.draw(rng, e, w, V)
            mse = gibbs_sweep(cptr, crows, csc.data, e, q, w0, w, V, alpha, group, hyper.mu_w, hyper.lam_w,
                              hyper.mu_v, hyper.lam_v, rng.standard_normal(), rng.standard_normal(w.shape[0]),
                              rng.standard_normal(V.shape))
            if epoch > c.burn_in:
                kept.append(V.copy())
                w_sum += w
                w0_sum += w0[0]
                self.w0, self.w = w0_sum / len(kept), (w_sum / len(kept)).astype(np.float32)
                self.V = np.ascontiguousarray(np.hstack(kept) / np.float32(np.sqrt(len(kept))), dtype=np.float32)
            else:
                self.w0, self.w, self.V = float(w0[0]), w.copy(), V.copy()
            # loss: training RMSE of the chain's current sample
            if self._epoch_done(on_epoch, epoch, start, float(np.sqrt(mse))):
                break

    def _fit_bpr(self, ui: sp.csr_matrix, rows: np.ndarray, up: sp.csr_matrix, ip: sp.csr_matrix,
                 ctx: sp.csr_matrix, rng: np.random.Generator, on_epoch: EpochCallback | None) -> None:
        from recli.kernels.fm import bpr_epoch

        c = self.config
        warm = np.flatnonzero(np.bincount(ui.indices, minlength=self.n_items) > 0).astype(np.int32)
        Gw, GV = np.zeros(self.w.shape[0]), np.zeros(self.V.shape)
        arrays = [a for m in (up, ip, ctx) for a in (m.indptr.astype(np.int64), m.indices.astype(np.int32),
                                                      m.data.astype(np.float32))]
        for epoch in range(1, c.iterations + 1):
            start = time.perf_counter()
            # negatives among warm items only: a cold item is never pushed down, its features score it
            candidates = warm[rng.integers(0, warm.shape[0], size=(ui.nnz, c.negative_tries))]
            total, steps = bpr_epoch(ui.indptr.astype(np.int64), ui.indices.astype(np.int32),
                                     rows.astype(np.int32), rng.permutation(ui.nnz), candidates, *arrays, self.w,
                                     self.V, Gw, GV, c.learning_rate, *self.reg)
            # loss: mean BPR loss −ln σ(ŷ⁺ − ŷ⁻) over the epoch's pairs, before their steps
            if self._epoch_done(on_epoch, epoch, start, float(-total / max(steps, 1))):
                break

    # -- inference --------------------------------------------------------------
    def _terms(self, part: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        """``(c(P), s(P))`` per row of a part matrix (:func:`recli.kernels.fm.part_sums`)."""
        from recli.kernels.fm import part_sums

        c_out = np.empty(part.shape[0], np.float64)
        s_out = np.empty((part.shape[0], self.V.shape[1]), np.float64)  # mcmc: the stacked samples
        part_sums(part.indptr.astype(np.int64), part.indices.astype(np.int32), part.data.astype(np.float32), self.w,
                  self.V, c_out, s_out)
        return c_out, s_out

    def item_terms(self) -> tuple[np.ndarray, np.ndarray]:
        """``(c(I), s(I))`` of every item, computed once per model state."""
        if self._item_terms is None:
            self._item_terms = self._terms(self._part("items", "item_features"))
        return self._item_terms

    def user_terms(self, uidx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(w0 + c(U), s(U))`` of known users (with the recommend context, if set); an
        index -1 gets the context alone (an unknown user)."""
        import scipy.sparse as sp

        uidx = np.asarray(uidx, dtype=np.int64)
        part = self._part("users", "user_features", uidx)
        if self.context_row is not None:
            part = part + self._context_part(sp.csr_matrix(np.repeat(self.context_row.toarray(), uidx.shape[0], 0)),
                                             uidx.shape[0])
        part = sp.csr_matrix(part, dtype=np.float32)
        part.eliminate_zeros()
        part.sort_indices()
        c_u, s_u = self._terms(part)
        return c_u + self.w0, s_u

    def fold_in(self, history: Any) -> tuple[np.ndarray, np.ndarray]:
        """The one-hot weight ``w_u`` and vector ``v_u`` of new users from their history
        rows (CSR over the catalogue), everything else fixed; a user's row is then
        ``ŷ(u, i) = w0 + w_u + c(I) + v_u·s(I)``, linear in ``(w_u, v_u)``.

        - regression: the ridge regression ``min Σᵢ (rᵢ − w0 − c(Iᵢ) − w_u − v_u·s(Iᵢ))² +
          n(λ_w w_u² + λ_v‖v_u‖²)`` over the user's n ratings, solved exactly (where SGD
          on them settles, as for ``mf``).
        - ranking: the BPR loss of the positives against ``negative_tries`` warm items each
          (drawn from a stream seeded by the seed and the history, so a user's result does
          not depend on the batch), ``w_u`` cancelling: a logistic regression in ``v_u``
          with penalty ``λ_v·n_pairs‖v_u‖²``, solved by Newton's method.
        """
        from recli.data.matrix import as_csr

        h = as_csr(history, n_cols=self.n_items, what="history")
        c_i, s_i = self.item_terms()
        bias, vecs = np.zeros(h.shape[0]), np.zeros((h.shape[0], s_i.shape[1]))
        for row in range(h.shape[0]):
            items, vals = h.indices[h.indptr[row]:h.indptr[row + 1]], h.data[h.indptr[row]:h.indptr[row + 1]]
            if self.predicts_ratings and items.size:
                F = np.hstack([np.ones((items.size, 1)), s_i[items]])
                reg_w, reg_v = self.reg
                penalty = items.size * np.r_[reg_w, np.full(s_i.shape[1], reg_v)]
                # a tiny ridge keeps the system solvable when both penalties are 0
                sol = np.linalg.solve(F.T @ F + np.diag(penalty + 1e-9), F.T @ (vals - self.w0 - c_i[items]))
                bias[row], vecs[row] = sol[0], sol[1:]
            elif not self.predicts_ratings and (vals > 0).any():
                vecs[row] = bpr_fold_in(self.config, self.reg[1], items[vals > 0], c_i, s_i, self._warm_items())
        return bias, vecs

    def _warm_items(self) -> np.ndarray:
        """Items with trained one-hot parameters (the negatives BPR drew from)."""
        off = self._offsets()["items"]
        return np.flatnonzero((self.w[off:off + self.n_items] != 0) | self.V[off:off + self.n_items].any(axis=1))

    def _user_side(self, uidx: np.ndarray, history: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(w0 + c(U), s(U))`` of a scoring batch: known users from their terms, new users
        (index -1 with a history row) folded in: ``c = c(ctx) + w_u + v_u·s(ctx)``,
        ``s = s(ctx) + v_u``, ctx the recommend context (empty without one)."""
        uidx, new, hist = split_batch(uidx, history, self.n_users, self.n_items)
        c_u, s_u = self.user_terms(uidx)
        if hist is not None:
            bias, vecs = self.fold_in(hist)
            c_u[new] += bias + np.einsum("nf,nf->n", vecs, s_u[new])
            s_u[new] += vecs
        return c_u, s_u

    def score(self, uidx: np.ndarray, history: Any = None) -> np.ndarray:
        """``ŷ(u, i) = w0 + c(U) + c(I) + s(U)·s(I)`` for every item (the module docstring)."""
        c_u, s_u = self._user_side(uidx, history)
        c_i, s_i = self.item_terms()
        scores = self.backend.kernels.dot_scores(s_u.astype(np.float32), s_i.astype(np.float32))
        scores += c_i.astype(np.float32)[None, :]
        scores += c_u.astype(np.float32)[:, None]
        return np.ascontiguousarray(scores, dtype=np.float32)

    def feature_names(self, side: str) -> np.ndarray | None:
        """The ``item`` or ``user`` feature vocabulary of the fit, or ``None`` without one."""
        names = self.names[f"{side}_features"]
        return names if names.shape[0] else None

    def score_new_items(self, uidx: np.ndarray, history: Any, item_features: SideFeatures) -> np.ndarray:
        """Items outside the catalogue from their features alone: ``ŷ = w0 + c(U) + c(I) +
        s(U)·s(I)`` with the item part I holding only the features (no one-hot)."""
        n = self._width("item_features")
        if n == 0 or item_features.matrix.shape[1] != n:
            raise InputError(f"fm: new items need the {n} item features of the fit, got "
                             f"{item_features.matrix.shape[1]}", hint="train fm with --item-features")
        off = self._offsets()
        part = _shifted(item_features.matrix, off["item_features"], off["end"])
        part.sort_indices()
        c_i, s_i = self._terms(part)
        c_u, s_u = self._user_side(uidx, history)
        return (c_u[:, None] + c_i[None, :] + s_u @ s_i.T).astype(np.float32)

    def score_pairs(self, uidx: np.ndarray, iidx: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """``ŷ(u, i)`` per pair without scoring every item."""
        uidx, iidx = np.asarray(uidx, np.int64), np.asarray(iidx, np.int64)
        users, inverse = np.unique(uidx, return_inverse=True)
        c_u, s_u = self.user_terms(users)
        c_i, s_i = self.item_terms()
        out = c_u[inverse] + c_i[iidx] + np.einsum("pf,pf->p", s_u[inverse], s_i[iidx])
        return out.astype(np.float32)

    def fallback_pairs(self, uidx: np.ndarray, iidx: np.ndarray) -> np.ndarray:
        """Regression: the FM prediction with the unknown side's features absent: an
        unknown user gets ``w0 + c(I)``, an unknown item ``w0 + c(U)``, both ``w0``."""
        if not self.predicts_ratings:
            return super().fallback_pairs(uidx, iidx)
        uidx, iidx = np.asarray(uidx, np.int64), np.asarray(iidx, np.int64)
        c_u, _ = self.user_terms(np.where(uidx >= 0, uidx, -1))
        c_i, _ = self.item_terms()
        return (c_u + np.where(iidx >= 0, c_i[np.maximum(iidx, 0)], 0.0)).astype(np.float32)

    def similar_items(self, iidx: np.ndarray) -> np.ndarray:
        """Cosine of the items' factor sums ``s(I)`` (one-hot and features)."""
        return cosine_rows(self.item_terms()[1].astype(np.float32), np.asarray(iidx, dtype=np.int64))

    def set_context(self, values: dict[str, str]) -> None:
        """The context of the next scores: ``{column: value}`` selects the one-hot context
        features named ``column=value`` (the names training gave them)."""
        import scipy.sparse as sp

        names = self.names["context"]
        if names.shape[0] == 0:
            raise InputError("this fm model was trained without context columns",
                             hint="drop --context, or retrain with --context-col")
        cols = []
        for col, value in values.items():
            hit = np.flatnonzero(names == f"{col}={value}")
            if hit.size == 0:
                known = sorted({n.split("=", 1)[0] for n in names.tolist()})
                raise InputError(f"context {col}={value} was not seen in training",
                                 hint=f"context columns of this model: {', '.join(known)}")
            cols.append(int(hit[0]))
        self.context_row = sp.csr_matrix((np.ones(len(cols), np.float32), (np.zeros(len(cols)), cols)),
                                         shape=(1, names.shape[0]))

    # -- persistence ------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        out = {"w0": np.array([self.w0], np.float64), "w": self.w, "V": self.V,
               "shape": np.array([self.n_users, self.n_items], np.int64)}
        out["context_names"] = self.names["context"]  # per-cell context is training data: its names only
        for name in ("user_features", "item_features"):
            if self.sides[name] is not None:
                out.update(SideFeatures(self.sides[name], self.names[name]).to_arrays(name))
        return out

    @classmethod
    def from_arrays(cls, config: Any, arrays: dict[str, np.ndarray], backend: Any = None) -> "FM":
        model = cls(config, backend)
        try:
            model.w0 = float(np.asarray(arrays["w0"]).ravel()[0])
            model.w = np.ascontiguousarray(arrays["w"], dtype=np.float32)
            model.V = np.ascontiguousarray(arrays["V"], dtype=np.float32)
            model.n_users, model.n_items = (int(x) for x in arrays["shape"])
            model.names["context"] = np.asarray(arrays["context_names"], dtype=str)
            for name in ("user_features", "item_features"):
                side = SideFeatures.from_arrays(name, arrays)
                if side is not None:
                    model.sides[name], model.names[name] = side.matrix, np.asarray(side.names, dtype=str)
        except KeyError as exc:
            raise ArtifactError(f"the model file lacks the array {exc}", hint="retrain the model") from None
        if (model.V.shape[0] != model._offsets()["end"] or model.V.shape[1] % config.factors
                or model.w.shape[0] != model.V.shape[0]):
            raise ArtifactError("stored fm parameters do not match the stored feature space", hint="retrain the model")
        return model


def _shifted(m: sp.csr_matrix, offset: int, width: int) -> sp.csr_matrix:
    """``m`` with its columns moved to ``offset…`` of a ``width``-column feature space."""
    import scipy.sparse as sp

    return sp.csr_matrix((np.asarray(m.data, np.float32), np.asarray(m.indices, np.int64) + offset,
                          np.asarray(m.indptr, np.int64)), shape=(m.shape[0], width))

