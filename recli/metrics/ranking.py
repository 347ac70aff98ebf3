"""Score integer-encoded top-k lists against CSR truth: no frames, no Polars.

:class:`Evaluator` holds the truth (and optional TRAIN / item features) once and takes
recommendation lists in batches, so a model can be scored while it recommends (the
train command's early stopping, ``recli eval --model``) without materialising a
recommendations table. :func:`evaluate_arrays` is the one-call form.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recli.data import csr
from recli.errors import ConfigError, InputError
from recli.metrics.registry import DEFAULT_METRICS, METRICS, metric_key

PER_USER_BEYOND = ("novelty", "popularity", "ild")


def _csr(indptr, indices, n_rows: int | None, what: str, data=None):
    """Checked int64 indptr / int32 indices, each row sorted and unique (sorted if not)."""
    indptr = np.ascontiguousarray(indptr, dtype=np.int64)
    indices = np.ascontiguousarray(indices, dtype=np.int32)
    if indptr.ndim != 1 or indptr.shape[0] < 1 or indptr[0] != 0 or indptr[-1] != indices.shape[0] \
            or np.any(np.diff(indptr) < 0):
        raise InputError(f"{what}: indptr is not a valid CSR row pointer",
                         hint="indptr must start at 0, never decrease and end at len(indices)")
    if n_rows is not None and indptr.shape[0] - 1 != n_rows:
        raise InputError(f"{what} has {indptr.shape[0] - 1} rows, expected {n_rows}",
                         hint="truth, train and item-feature rows must share one index space")
    if data is not None:
        data = np.ascontiguousarray(data, dtype=np.float64)
        if data.shape != indices.shape:
            raise InputError(f"{what}: gains and indices differ in length", hint="pass one gain per truth entry")
    from recli.kernels.metrics import rows_sorted_unique

    ok = np.empty(indptr.shape[0] - 1, dtype=np.bool_)
    rows_sorted_unique(indptr, indices, ok)
    if not ok.all():
        row_of = np.repeat(np.arange(indptr.shape[0] - 1), np.diff(indptr))
        order = np.lexsort((indices, row_of))
        indices = indices[order]
        data = data[order] if data is not None else None
        rows_sorted_unique(indptr, indices, ok)
        if not ok.all():
            raise InputError(f"{what} repeats an item within a row", hint="deduplicate (user, item) pairs first")
    return indptr, indices, data


@dataclass
class EvalResult:
    """What :meth:`Evaluator.result` returns.

    ``values[key]`` / ``users[key]`` for ``key = "ndcg@10"``: the aggregate and how many
    users it averages. ``per_user`` (when kept) is ``[n_evaluated, len(per_user_keys)]``
    with NaN where a user is left out of that metric, ``per_user_weights`` the matching
    weights of the aggregate (1 except ``--compat implicit`` precision), ``user_rows``
    the truth-row index of each evaluated user.
    """

    values: dict[str, float]
    users: dict[str, int]
    per_user_keys: list[str] = field(default_factory=list)
    per_user: np.ndarray | None = None
    per_user_weights: np.ndarray | None = None
    user_rows: np.ndarray | None = None
    n_evaluated: int = 0
    n_without_recs: int = 0
    n_seen_items: int = 0
    n_users_with_seen: int = 0


class Evaluator:
    """Accumulate ranking and beyond-accuracy metrics over batches of top-k lists.

    Parameters
    ----------
    truth_indptr, truth_indices : CSR of relevant items per user (int64 / int32); a row
        with no entry is not evaluated (skipped by :meth:`add`).
    ks : cutoffs, e.g. ``[5, 10, 20]``.
    metrics : names from :data:`recli.metrics.registry.METRICS` of kind ranking or beyond.
    n_items : catalogue size (item indices are ``0..n_items-1``); used by AUC and coverage.
    truth_gain : float gains aligned with ``truth_indices`` (graded NDCG); ``None`` = binary.
    train_indptr, train_indices : the users' TRAIN items (same rows as the truth): AUC
        candidates and the seen-item count.
    item_counts, n_train_users : TRAIN users per item and TRAIN user count for novelty and
        popularity; derived from the TRAIN CSR when omitted.
    item_features : ``(indptr, indices)`` CSR of feature ids per item, for ``ild``.
    compat : ``None`` or ``"implicit"`` (see ``recli eval --list-metrics``).
    keep_per_user : keep per-user values (significance, bootstrap, ``--per-user``).
    """

    def __init__(self, truth_indptr, truth_indices, ks, metrics=DEFAULT_METRICS, *, n_items: int,
                 truth_gain=None, train_indptr=None, train_indices=None, item_counts=None,
                 n_train_users: int | None = None, item_features=None, compat: str | None = None,
                 keep_per_user: bool = False):
        self.ks = np.asarray(sorted({int(k) for k in ks}), dtype=np.int64)
        if self.ks.size == 0 or self.ks[0] <= 0:
            raise ConfigError("every k must be a positive integer", hint="e.g. ks=[5, 10]")
        self.metrics = [m for m in METRICS if m in set(metrics)]
        unknown = set(metrics) - set(METRICS)
        if unknown or any(METRICS[m].kind == "rating" for m in self.metrics):
            raise ConfigError(f"Evaluator scores ranking and beyond-accuracy metrics, not {sorted(unknown) or 'rating'}",
                              hint="compute rmse/mae with recli.metrics.rating_errors")
        self.n_items = int(n_items)
        self.t_indptr, self.t_indices, gain = _csr(truth_indptr, truth_indices, None, "truth", truth_gain)
        n_rows = self.t_indptr.shape[0] - 1
        self.graded = gain is not None
        self.t_gain = gain if gain is not None else np.zeros(0, dtype=np.float64)
        self.has_train = train_indptr is not None
        if self.has_train:
            self.s_indptr, self.s_indices, _ = _csr(train_indptr, train_indices, n_rows, "train")
        else:
            self.s_indptr, self.s_indices = np.zeros(n_rows + 1, np.int64), np.zeros(0, np.int32)
        self.compat = compat not in (None, "none")
        if compat not in (None, "none", "implicit"):
            raise ConfigError(f"unknown compat mode {compat!r}", hint="use 'implicit' or leave it out")
        self._setup_beyond(item_counts, n_train_users, item_features)
        self.keep_per_user = keep_per_user
        self._reset()

    def _setup_beyond(self, item_counts, n_train_users, item_features) -> None:
        from recli.metrics.beyond import self_information

        needs_train = {"novelty", "popularity"} & set(self.metrics)
        if needs_train and item_counts is None:
            if not self.has_train:
                raise ConfigError(f"{', '.join(sorted(needs_train))} need TRAIN item popularity",
                                  hint="pass --train (or item_counts and n_train_users)")
            item_counts = csr.item_counts(self.s_indices, self.n_items)
            n_train_users = int(np.count_nonzero(np.diff(self.s_indptr)))
        self.item_counts = None if item_counts is None else np.asarray(item_counts, dtype=np.float64)
        self.item_info = None
        if self.item_counts is not None and needs_train:
            self.item_info = self_information(self.item_counts, int(n_train_users or 0))
        self.features = None
        if "ild" in self.metrics:
            if item_features is None:
                raise ConfigError("ild needs item features", hint="pass --items FILE with a genres-like column")
            f_indptr, f_indices, _ = _csr(item_features[0], item_features[1], self.n_items, "item features")
            self.features = (f_indptr, f_indices)

    def _reset(self) -> None:
        self._blocks: list[np.ndarray] = []
        self._weights: list[np.ndarray] = []
        self._rows: list[np.ndarray] = []
        self._sum = None
        self._wsum = None
        self._count = None
        self.rec_counts = np.zeros((self.ks.size, self.n_items if {"coverage", "gini"} & set(self.metrics) else 0),
                                   dtype=np.int64)
        self.n_without_recs = 0
        self.n_seen_items = 0
        self.n_users_with_seen = 0

    @property
    def per_user_keys(self) -> list[str]:
        return [metric_key(m, int(k)) for m in self.metrics if METRICS[m].per_user for k in self.ks]

    def add(self, rec_items, rows=None, *, validate: bool = True) -> "Evaluator":
        """Score a batch: ``rec_items`` int32 ``[n, kmax]`` (-1 padded, best first, no
        repeats within a row) for truth rows ``rows`` (default ``0..n-1``).

        ``validate=False`` skips the per-row checks (repeats, range, padding) for callers
        that built the lists themselves and already checked them.
        """
        from recli.kernels import metrics as km

        rec_items = self._checked_lists(rec_items, validate)
        n = rec_items.shape[0]
        rows = np.arange(n, dtype=np.int64) if rows is None else np.ascontiguousarray(rows, dtype=np.int64)
        if rows.shape[0] != n or (n and (rows.min() < 0 or rows.max() >= self.t_indptr.shape[0] - 1)):
            raise InputError("rows must give one truth row per list", hint="len(rows) == len(rec_items), 0 <= rows < n_users")
        keep = np.diff(self.t_indptr)[rows] > 0
        if not keep.all():
            rec_items, rows = rec_items[keep], rows[keep]
        self.n_without_recs += int(np.count_nonzero(rec_items[:, 0] < 0))
        if self.has_train:
            seen = np.zeros(rec_items.shape[0], dtype=np.int64)
            km.count_seen(rec_items, rows, self.s_indptr, self.s_indices, seen)
            self.n_seen_items += int(seen.sum())
            self.n_users_with_seen += int(np.count_nonzero(seen))
        values, weights = self._score(rec_items, rows)
        self._accumulate(values, weights, rows)
        if {"coverage", "gini"} & set(self.metrics):
            for q, k in enumerate(self.ks):
                top = rec_items[:, :k]
                self.rec_counts[q] += np.bincount(top[top >= 0], minlength=self.n_items)
        return self

    def _checked_lists(self, rec_items, validate: bool = True) -> np.ndarray:
        from recli.kernels import metrics as km

        rec_items = np.asarray(rec_items)
        if rec_items.ndim != 2:
            raise InputError("rec_items must be a 2-d array [n_users, k]", hint="pad short lists with -1")
        rec_items = np.ascontiguousarray(rec_items, dtype=np.int32)
        kmax = int(self.ks[-1])
        if rec_items.shape[1] < kmax:
            pad = np.full((rec_items.shape[0], kmax - rec_items.shape[1]), -1, dtype=np.int32)
            rec_items = np.hstack([rec_items, pad])
        elif rec_items.shape[1] > kmax:
            rec_items = np.ascontiguousarray(rec_items[:, :kmax])
        if not validate:
            return rec_items
        bad = np.zeros(rec_items.shape[0], dtype=np.int8)
        km.check_lists(rec_items, self.n_items, bad)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            why = {1: "recommends the same item twice", 2: f"has an item index >= n_items ({self.n_items})",
                   3: "has an item after -1 padding"}[int(bad[i])]
            raise InputError(f"recommendation list {i} {why}",
                             hint="each list must hold distinct item indices, best first, padded with -1 at the end")
        return rec_items

    def _score(self, rec_items, rows):
        """Per-user values ``[n, len(per_user_keys)]`` and ``{column: weights}`` for the
        columns whose aggregate is a weighted mean (all others weigh 1)."""
        from recli.kernels import metrics as km

        n, nk = rec_items.shape[0], self.ks.size
        blocks, weights = [], {}
        ranking = [m for m in self.metrics if METRICS[m].kind == "ranking"]
        if ranking:
            base = np.full(len(km.RANKING_COLUMNS), -1, dtype=np.int64)
            for j, m in enumerate(ranking):
                base[km.RANKING_COLUMNS.index(m)] = j * nk  # metric-major, then k
            out = np.empty((n, len(ranking) * nk), dtype=np.float64)
            km.ranking_kernel(rec_items, rows, self.t_indptr, self.t_indices, self.t_gain, self.graded,
                              self.s_indptr, self.s_indices, self.has_train, self.ks, self.n_items,
                              self.compat, base, out)
            blocks.append(out)
            if self.compat and "precision" in ranking:
                # implicit's precision is sum(hits) / sum(min(k, |R|)): a weighted mean.
                n_rel = np.diff(self.t_indptr)[rows]
                j0 = ranking.index("precision") * nk
                for q, k in enumerate(self.ks):
                    weights[j0 + q] = np.minimum(n_rel, k).astype(np.float64)
        for m in self.metrics:
            if m not in PER_USER_BEYOND:
                continue
            out = np.empty((n, nk), dtype=np.float64)
            if m == "ild":
                km.ild_kernel(rec_items, self.features[0], self.features[1], self.ks, out)
            else:
                item_values = self.item_info if m == "novelty" else self.item_counts
                km.list_mean_kernel(rec_items, item_values, self.ks, out)
            blocks.append(out)
        values = blocks[0] if len(blocks) == 1 else (np.hstack(blocks) if blocks else np.zeros((n, 0)))
        return values, weights

    def _accumulate(self, values, weights, rows) -> None:
        from recli.kernels.metrics import nan_column_sums

        m = values.shape[1]
        wv, c = np.zeros(m), np.zeros(m, dtype=np.int64)
        nan_column_sums(values, wv, c)
        w = c.astype(np.float64)
        for j, wj in weights.items():
            ok = ~np.isnan(values[:, j])
            wv[j] = float(np.sum(values[ok, j] * wj[ok]))
            w[j] = float(np.sum(wj[ok]))
        if self._sum is None:
            self._sum, self._wsum, self._count = wv, w, c
        else:
            self._sum, self._wsum, self._count = self._sum + wv, self._wsum + w, self._count + c
        self._rows.append(rows)
        if self.keep_per_user:
            self._blocks.append(values)
            full = np.ones_like(values)
            for j, wj in weights.items():
                full[:, j] = wj
            self._weights.append(full)

    def result(self) -> EvalResult:
        """Aggregates over every batch added so far."""
        from recli.metrics.beyond import gini

        keys = self.per_user_keys
        values: dict[str, float] = {}
        users: dict[str, int] = {}
        n_eval = int(sum(r.shape[0] for r in self._rows))
        for j, key in enumerate(keys):
            ok = self._wsum is not None and self._wsum[j] > 0
            values[key] = float(self._sum[j] / self._wsum[j]) if ok else float("nan")
            users[key] = int(self._count[j]) if self._count is not None else 0
        for m in self.metrics:
            if METRICS[m].per_user:
                continue
            for q, k in enumerate(self.ks):
                counts = self.rec_counts[q]
                key = metric_key(m, int(k))
                values[key] = (float(np.count_nonzero(counts)) / self.n_items if self.n_items else float("nan")) \
                    if m == "coverage" else gini(counts)
                users[key] = n_eval
        order = [metric_key(m, int(k)) for m in self.metrics for k in self.ks]
        res = EvalResult(values={k: values[k] for k in order}, users={k: users[k] for k in order},
                         per_user_keys=keys, n_evaluated=n_eval, n_without_recs=self.n_without_recs,
                         n_seen_items=self.n_seen_items, n_users_with_seen=self.n_users_with_seen)
        res.user_rows = np.concatenate(self._rows) if self._rows else np.zeros(0, np.int64)
        if self.keep_per_user:
            res.per_user = np.vstack(self._blocks) if self._blocks else np.zeros((0, len(keys)))
            res.per_user_weights = np.vstack(self._weights) if self._weights else np.zeros((0, len(keys)))
        return res


def evaluate_arrays(rec_items, truth_indptr, truth_indices, ks, metrics=DEFAULT_METRICS, *, n_items: int,
                    truth_gain=None, rows=None, train_indptr=None, train_indices=None,
                    item_features=None, compat: str | None = None) -> dict[str, float]:
    """Score integer-encoded top-k lists against CSR truth in one call, no frames needed.

    Parameters
    ----------
    rec_items : int32 ``[n, kmax]``, row ``i`` the ranked list for truth row ``rows[i]``,
        item indices in ``0..n_items-1``, distinct within a row, ``-1`` padding at the end.
        Lists longer than ``max(ks)`` are cut; shorter ones are padded.
    truth_indptr, truth_indices : CSR (int64 / int32) of each user's relevant items.
        Users whose row is empty are skipped (not evaluated).
    ks : cutoffs.
    metrics : ranking / beyond-accuracy names (``recli eval --list-metrics``).
    n_items : catalogue size.
    truth_gain : float gains aligned with ``truth_indices`` for graded NDCG.
    rows : truth row of each list (default ``0..n-1``): score a batch of users against
        full matrices.
    train_indptr, train_indices : TRAIN items per truth row (AUC candidates, novelty).
    item_features : ``(indptr, indices)`` feature ids per item (``ild``).
    compat : ``None`` or ``"implicit"``.

    Returns
    -------
    dict
        ``{"ndcg@10": 0.31, ...}``, one entry per metric and k. For batches, use
        :class:`Evaluator` (``add`` each batch, then ``result()``).
    """
    ev = Evaluator(truth_indptr, truth_indices, ks, metrics, n_items=n_items, truth_gain=truth_gain,
                   train_indptr=train_indptr, train_indices=train_indices, item_features=item_features,
                   compat=compat)
    return ev.add(rec_items, rows).result().values
