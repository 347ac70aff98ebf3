"""``recli recommend``: a loaded model + users (or items) → top-k tables, in batches.

Users are resolved against the model's vocabulary once (:func:`plan_users`); then
:func:`recommend_batches` yields one ``user,item,score,rank`` frame per batch of
``batch_size`` users: scores from ``model.score`` (BLAS inside the model), top-k by the
parallel Numba kernel, which skips the user's training items by reading the stored CSR
in place. Memory is bounded by ``batch_size x n_items`` scores, not by the user count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from recli.console import log
from recli.errors import ConfigError, InputError

if TYPE_CHECKING:  # Polars and SciPy load lazily: one user's top-k as CSV needs neither
    import polars as pl
    import scipy.sparse as sp

    from recli.artifacts import ModelFile
    from recli.data.vocab import Vocab

# Below this many scores per batch, NumPy's argpartition twin is used: it gives the same
# result and spares a small request (one user) Numba's import time.
SMALL_BATCH_CELLS = 1 << 18
FALLBACK = -2  # plan marker: serve this user from popularity (--fallback popular)
RECS_COLUMNS = ("user", "item", "score", "rank")


def __getattr__(name: str) -> Any:
    """``RECS_SCHEMA`` / ``SIMILAR_SCHEMA`` (Polars dtypes), built on first use."""
    if name in ("RECS_SCHEMA", "SIMILAR_SCHEMA"):
        import polars as pl

        first = "user" if name == "RECS_SCHEMA" else "item"
        second = "item" if name == "RECS_SCHEMA" else "similar_item"
        return {first: pl.Utf8, second: pl.Utf8, "score": pl.Float32, "rank": pl.Int32}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class UserPlan:
    """Who to score: external ids, model row (-1 = fold in from ``history``, -2 = popular)."""

    ids: list[str]
    uidx: np.ndarray
    history: sp.csr_matrix | None  # rows aligned with ``ids`` (only -1 users' rows used)
    skipped: int = 0


def read_ids(source: str, column: str, what: str, fmt: str | None = None) -> list[str]:
    """Ids from a table with a ``column`` column, or a file of one id per line."""
    import polars as pl

    from recli.data.io import read_table

    df = read_table(source, fmt)
    if column in df.columns:
        series = df[column]
    elif df.width == 1:
        # a single unnamed column: every line (the first one too) is an id
        df = read_table(source, fmt, has_header=False, columns=[column]) if source != "-" else \
            pl.concat([pl.DataFrame({column: [df.columns[0]]}), df.rename({df.columns[0]: column})])
        series = df[column]
    else:
        raise InputError(f"{what} {source!r} has no {column!r} column (found: {', '.join(df.columns)})",
                         hint=f"name the column {column!r}, or give one id per line")
    ids = series.cast(pl.Utf8).drop_nulls().str.strip_chars()
    return ids.filter(ids != "").unique(maintain_order=True).to_list()


def item_ban_mask(items: Vocab, exclude: list[str] | None, only: list[str] | None) -> np.ndarray | None:
    """uint8 mask over the catalogue: 1 = never recommend (in ``exclude``, or not in ``only``)."""
    if exclude is None and only is None:
        return None
    banned = np.zeros(len(items), dtype=np.uint8)
    for ids, name in ((exclude, "--exclude-items"), (only, "--only-items")):
        if ids is None:
            continue
        idx = items.index(ids)
        if (idx < 0).any():
            log.warning(f"{name}: {int((idx < 0).sum())} items unknown to the model ignored")
        if name == "--exclude-items":
            banned[idx[idx >= 0]] = 1
        else:
            allowed = np.zeros(len(items), dtype=bool)
            allowed[idx[idx >= 0]] = True
            banned[~allowed] = 1
    return banned


def read_history(source: str, mf: ModelFile, fmt: str | None = None) -> tuple[Vocab, sp.csr_matrix]:
    """``user,item[,rating]`` rows → (user vocab, CSR over the model's items)."""
    from recli.data.io import read_table
    from recli.data.matrix import ITEM, USER, to_csr
    from recli.data.vocab import Vocab

    df = read_table(source, fmt)
    missing = [c for c in (USER, ITEM) if c not in df.columns]
    if missing:
        raise InputError(f"--history {source!r} has no {', '.join(missing)} column (found: {', '.join(df.columns)})",
                         hint="give the history as user,item[,rating] rows")
    users = Vocab.from_values(df[USER])
    matrix, _ = to_csr(df, users, mf.items, what="--history")
    unknown = int((mf.items.index(df[ITEM]) < 0).sum())
    if unknown:
        log.warning(f"--history: {unknown} rows with items unknown to the model ignored")
    return users, matrix


def plan_users(mf: ModelFile, ids: list[str] | None, *, all_users: bool = False,
               history: tuple[Vocab, sp.csr_matrix] | None = None, strict: bool = False,
               fallback: str | None = None) -> UserPlan:
    """Resolve requested ids: known users, users folded in from ``history``, unknown ones
    (skipped with one warning, an error with ``strict``, or popular with ``fallback``)."""
    if fallback not in (None, "popular"):
        raise ConfigError(f"unknown fallback {fallback!r}", hint="use --fallback popular")
    if history is not None and not mf.model.can_fold_in:
        raise ConfigError(f"model {mf.model.name!r} cannot fold in new users from --history",
                          hint="retrain with a model that can (recli train --list-models shows 'fold-in'), "
                               "or use --fallback popular")
    if all_users:
        return UserPlan(mf.users.ids.to_list(), np.arange(len(mf.users), dtype=np.int64), None)
    ids = list(ids or [])
    uidx = mf.users.index(ids).astype(np.int64)
    unknown = uidx < 0
    hist_rows = None
    if history is not None:
        import scipy.sparse as sp

        hist_users, hist_matrix = history
        rows = hist_users.index(ids)
        fold = unknown & (rows >= 0)
        unknown &= ~fold
        uidx[fold] = -1
        # one history row per requested user; rows of users not folded in are emptied
        hist_rows = sp.csr_matrix(sp.diags(fold.astype(np.float32)) @ hist_matrix[np.where(fold, rows, 0)])
        hist_rows.eliminate_zeros()
        hist_rows.sort_indices()
    n_unknown = int(unknown.sum())
    if n_unknown and strict:
        examples = ", ".join(repr(ids[i]) for i in np.flatnonzero(unknown)[:3])
        raise InputError(f"{n_unknown} users are unknown to the model (e.g. {examples})",
                         hint="drop --strict to skip them, pass --history for new users, or --fallback popular")
    if n_unknown and fallback == "popular":
        uidx[unknown] = FALLBACK
        log.info(f"{n_unknown} users unknown to the model get popular items (--fallback popular)")
    elif n_unknown:
        log.warning(f"{n_unknown} users unknown to the model skipped (use --history, --fallback popular or --strict)")
        keep = ~unknown
        ids = [u for u, k in zip(ids, keep) if k]
        uidx = uidx[keep]
        hist_rows = hist_rows[np.flatnonzero(keep)] if hist_rows is not None else None
    return UserPlan(ids, uidx, hist_rows, skipped=n_unknown if fallback != "popular" else 0)


def _batch_seen(mf: ModelFile, uidx: np.ndarray, history: sp.csr_matrix | None):
    """(rows, indptr, indices) for the top-k kernel: the stored CSR read in place when
    every user is known; otherwise a small CSR of this batch's seen items."""
    indptr, indices, _ = mf.train
    if (uidx >= 0).all():
        return uidx, indptr, indices
    parts, lengths = [], np.zeros(uidx.shape[0], dtype=np.int64)
    for row, u in enumerate(uidx):
        if u >= 0:
            seg = indices[indptr[u]:indptr[u + 1]]
        elif u == -1 and history is not None:
            seg = history.indices[history.indptr[row]:history.indptr[row + 1]]
        else:
            seg = np.zeros(0, dtype=np.int32)
        parts.append(np.asarray(seg, dtype=np.int32))
        lengths[row] = seg.shape[0]
    b_indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    b_indices = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
    return np.arange(uidx.shape[0], dtype=np.int64), b_indptr, b_indices


def popularity_scores(mf: ModelFile) -> np.ndarray:
    """Distinct training users per item: the ``--fallback popular`` score."""
    return np.bincount(np.asarray(mf.train[1]), minlength=len(mf.items)).astype(np.float32)


def score_batch(mf: ModelFile, uidx: np.ndarray, history: sp.csr_matrix | None,
                popular: np.ndarray | None) -> np.ndarray:
    """Model scores for rows ``uidx >= -1``; popularity for fallback rows."""
    model_rows = np.flatnonzero(uidx != FALLBACK)
    if model_rows.shape[0] == uidx.shape[0]:
        return mf.model.score(uidx, history if (uidx == -1).any() else None)
    scores = np.empty((uidx.shape[0], len(mf.items)), dtype=np.float32)
    scores[:] = popular[None, :]
    if model_rows.shape[0]:
        sub = uidx[model_rows]
        hist = history[model_rows] if (history is not None and (sub == -1).any()) else None
        scores[model_rows] = mf.model.score(sub, hist)
    return scores


def needs_numba(n_rows: int, n_items: int, batch_size: int = 1024) -> bool:
    """Whether a request of ``n_rows`` users/items runs the Numba top-k kernel."""
    return min(n_rows, batch_size) * n_items > SMALL_BATCH_CELLS


def _topk(scores: np.ndarray, k: int, rows=None, indptr=None, indices=None, banned=None, xp_path: bool = False):
    """Top-k on the model backend's kernels (``xp_path``: that namespace, from
    :func:`_xp_path`); the CPU namespace when none is given."""
    from recli.backend import model_kernels

    kernels = xp_path or model_kernels(None)
    return kernels.topk(scores, k, rows, indptr, indices, banned)


def _xp_path(mf: ModelFile) -> bool:
    from recli.backend import model_kernels

    return model_kernels(mf.model)


def recommend_batches(mf: ModelFile, plan: UserPlan, k: int, *, include_seen: bool = False,
                      banned: np.ndarray | None = None, batch_size: int = 1024) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(batch positions, items (B, k) int32, scores (B, k) float32)`` per batch;
    item ``-1`` pads rows with fewer than ``k`` eligible items."""
    if k < 1:
        raise ConfigError(f"-k must be at least 1 (got {k})", hint="ask for -k 10, say")
    popular = popularity_scores(mf) if (plan.uidx == FALLBACK).any() else None
    xp_path = _xp_path(mf)
    for start in range(0, len(plan.ids), batch_size):
        pos = np.arange(start, min(start + batch_size, len(plan.ids)))
        uidx = plan.uidx[pos]
        history = plan.history[pos] if plan.history is not None else None
        scores = score_batch(mf, uidx, history, popular)
        if include_seen:
            items, values = _topk(scores, k, banned=banned, xp_path=xp_path)
        else:
            rows, indptr, indices = _batch_seen(mf, uidx, history)
            items, values = _topk(scores, k, rows, indptr, indices, banned, xp_path)
        yield pos, items, values


def to_frame(ids: list[str], vocab: Vocab, pos: np.ndarray, items: np.ndarray, values: np.ndarray,
             names: tuple[str, str] = ("user", "item")) -> pl.DataFrame:
    """Flatten a top-k batch into ``user,item,score,rank`` rows (rank order per user)."""
    import polars as pl

    valid = items >= 0
    counts = valid.sum(axis=1)
    owners = pl.Series(names[0], [ids[p] for p in pos], dtype=pl.Utf8).gather(np.repeat(np.arange(pos.shape[0]), counts))
    ranks = np.broadcast_to(np.arange(1, items.shape[1] + 1, dtype=np.int32), items.shape)[valid]
    return pl.DataFrame({names[0]: owners, names[1]: vocab.lookup(items[valid]).rename(names[1]),
                         "score": values[valid].astype(np.float32), "rank": ranks})


def csv_rows(ids: list[str], vocab: Vocab, batches: Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> Iterator[list[str]]:
    """The rows of :func:`to_frame` as CSV fields, formatted and quoted exactly as Polars'
    ``write_csv`` does (for a few users: no Polars import)."""
    for pos, items, values in batches:
        for b, p in enumerate(pos):
            valid = np.flatnonzero(items[b] >= 0)
            names = vocab.lookup_list(items[b][valid])
            owner = csv_field(ids[p])
            for j, name in zip(valid, names):
                yield [owner, csv_field(name), format_float32(values[b, j]), str(j + 1)]


def csv_field(text: str) -> str:
    """Polars' CSV quoting: quote empty strings and those holding a comma, quote or line break."""
    if text == "" or any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def format_float32(value: Any) -> str:
    """A float32 as Polars writes it in CSV: the shortest round-trip digits, positional for
    decimal exponents -6..12 (``5.0``, ``0.00001``), scientific otherwise (``1e-7``,
    ``1.5e+20``); ``NaN``, ``inf``, ``-inf``."""
    v = np.float32(value)
    if np.isnan(v):
        return "NaN"
    if np.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "-0.0" if np.signbit(v) else "0.0"
    sci = np.format_float_scientific(v, unique=True, trim="-", exp_digits=1)
    if -6 <= int(sci.rsplit("e", 1)[1]) <= 12:
        return np.format_float_positional(v, unique=True, trim="0")
    return sci


def _history_of(mf: ModelFile, plan: UserPlan, position: int) -> tuple[np.ndarray, np.ndarray]:
    u = plan.uidx[position]
    if u >= 0:
        indptr, indices, data = mf.train
        lo, hi = indptr[u], indptr[u + 1]
        return np.asarray(indices[lo:hi]), np.asarray(data[lo:hi])
    if u == -1 and plan.history is not None:
        h = plan.history
        lo, hi = h.indptr[position], h.indptr[position + 1]
        return h.indices[lo:hi], h.data[lo:hi]
    return np.zeros(0, np.int32), np.zeros(0, np.float32)


def explain_frame(mf: ModelFile, plan: UserPlan, pos: np.ndarray, items: np.ndarray, values: np.ndarray,
                  top: int = 3, nested: bool = False) -> pl.DataFrame:
    """Recommendations with their ``top`` contributing history items.

    ``model.explain`` gives ``C[j, h]``, the part of item ``j``'s score due to history
    item ``h`` (rows sum to the score). Flat output repeats the recommendation once per
    explaining item (``because_item, contribution``; nulls when the user has no history);
    ``nested=True`` puts them in one ``because`` list column (for JSON lines).
    """
    recs = {"user": [], "item": [], "score": [], "rank": [], "because": []}
    for b, p in enumerate(pos):
        rec = items[b][items[b] >= 0]
        hist_items, hist_values = _history_of(mf, plan, p)
        contrib = (np.asarray(mf.model.explain(int(plan.uidx[p]), hist_items, hist_values, rec), dtype=np.float64)
                   if hist_items.shape[0] and rec.shape[0] else np.zeros((rec.shape[0], 0)))
        for j, item in enumerate(rec):
            order = np.lexsort((hist_items, -contrib[j]))[:top] if contrib.shape[1] else []
            recs["because"].append([{"item": mf.items.ids[int(hist_items[h])], "contribution": float(contrib[j, h])}
                                    for h in order])
            recs["user"].append(plan.ids[p])
            recs["item"].append(mf.items.ids[int(item)])
            recs["score"].append(float(values[b, j]))
            recs["rank"].append(j + 1)
    import polars as pl

    RECS_SCHEMA = __getattr__("RECS_SCHEMA")
    because_type = pl.List(pl.Struct({"item": pl.Utf8, "contribution": pl.Float64}))
    df = pl.DataFrame(recs, schema={**RECS_SCHEMA, "because": because_type})
    if nested:
        return df
    return (df.explode("because").with_columns(pl.col("because").struct.field("item").alias("because_item"),
                                               pl.col("because").struct.field("contribution").alias("contribution"))
            .drop("because"))


def explain_schema(nested: bool) -> dict[str, Any]:
    import polars as pl

    RECS_SCHEMA = __getattr__("RECS_SCHEMA")
    if nested:
        return {**RECS_SCHEMA, "because": pl.List(pl.Struct({"item": pl.Utf8, "contribution": pl.Float64}))}
    return {**RECS_SCHEMA, "because_item": pl.Utf8, "contribution": pl.Float64}


def plan_items(mf: ModelFile, ids: list[str], strict: bool = False) -> tuple[list[str], np.ndarray]:
    """Known item ids and their indices; unknown ones warned about (or an error with ``strict``)."""
    iidx = mf.items.index(ids).astype(np.int64)
    unknown = iidx < 0
    if unknown.any():
        examples = ", ".join(repr(ids[i]) for i in np.flatnonzero(unknown)[:3])
        if strict:
            raise InputError(f"{int(unknown.sum())} items are unknown to the model (e.g. {examples})",
                             hint="drop --strict to skip them")
        log.warning(f"{int(unknown.sum())} items unknown to the model skipped (e.g. {examples})")
    return [i for i, u in zip(ids, unknown) if not u], iidx[~unknown]


def similar_batches(mf: ModelFile, iidx: np.ndarray, k: int, *, banned: np.ndarray | None = None,
                    batch_size: int = 1024) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Like :func:`recommend_batches` for items: the model's item similarity, the item
    itself excluded (a one-entry "seen" row per query item)."""
    if k < 1:
        raise ConfigError(f"-k must be at least 1 (got {k})", hint="ask for -k 10, say")
    for start in range(0, iidx.shape[0], batch_size):
        pos = np.arange(start, min(start + batch_size, iidx.shape[0]))
        query = iidx[pos]
        sims = mf.model.similar_items(query)
        items, values = _topk(sims, k, np.arange(pos.shape[0]), np.arange(pos.shape[0] + 1, dtype=np.int64),
                              query.astype(np.int32), banned, _xp_path(mf))
        yield pos, items, values
