"""``recli recommend``: a loaded model + users (or items) → top-k tables, in batches.

:func:`recommend` is the entry point: it takes a loaded model and a
:class:`RecommendRequest` (the command's options, checked when it is built) and writes the
table. Users are resolved against the model's vocabulary once
(:func:`recli.stages.user_plan.plan_users`); then :func:`recommend_batches` yields one
top-k block per batch of ``batch_size`` users: scores from ``model.score`` (a user's
scores are the same bits in any batch), top-k by the parallel Numba kernel, which skips
the user's training items by reading the stored CSR in place; a factor model fuses the
two (``model.top_k``: a BLAS screen per block of users, then the fixed-order sum for the
items near the cut). Memory is bounded by ``batch_size x n_items`` scores (factor
models: ``batch_size x k``, plus one block of scores per thread), not by the user count.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from recli.backend import device_batch_rows, model_kernels, single_threaded_blas, threads_context
from recli.console import log
from recli.data.csr import item_counts
from recli.data.ids import read_ids
from recli.data.io import output_format
from recli.data.plain_text import csv_rows, write_csv_lines
from recli.errors import ConfigError, InputError
from recli.stages.new_items import NewItems, load_new_items
from recli.stages.user_plan import FALLBACK, History, UserPlan, plan_users, read_history  # noqa: F401  (re-exported)

if TYPE_CHECKING:  # Polars and SciPy load lazily: one user's top-k as CSV needs neither
    import polars as pl
    import scipy.sparse as sp

    from recli.artifacts import ModelFile
    from recli.data.io import ReadOptions
    from recli.data.side import SideFeatures
    from recli.data.vocab import Vocab

RECS_COLUMNS = ("user", "item", "score", "rank")


def _schema(owner: str = "user", other: str = "item") -> dict[str, Any]:
    """Polars dtypes of a top-k table: ``owner, other, score, rank``."""
    import polars as pl

    return {owner: pl.Utf8, other: pl.Utf8, "score": pl.Float32, "rank": pl.Int32}


def __getattr__(name: str) -> Any:
    """``RECS_SCHEMA`` / ``SIMILAR_SCHEMA`` (Polars dtypes), built on first use."""
    if name == "RECS_SCHEMA":
        return _schema()
    if name == "SIMILAR_SCHEMA":
        return _schema("item", "similar_item")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _check_k(k: int) -> None:
    if k < 1:
        raise ConfigError(f"-k must be at least 1 (got {k})", hint="ask for a positive number of items, e.g. -k 10")


@dataclass
class RecommendRequest:
    """The options of one ``recli recommend`` run (see ``recli recommend --help``), checked
    for clashes when built; ``started`` times the run from there (model loading included)."""

    users: str | None = None  # a file of user ids ('-' = stdin)
    user: list[str] | None = None
    all_users: bool = False
    k: int = 10
    include_seen: bool = False
    exclude_items: str | None = None
    only_items: str | None = None
    history: str | None = None
    strict: bool = False
    fallback: str | None = None
    similar_items: list[str] | None = None
    items_file: str | None = None
    explain: bool = False
    explain_top: int = 3
    batch_size: int = 1024
    output: str = "-"
    fmt: str | None = None
    threads: int = 0
    pairs: str | None = None  # a file of user,item pairs to score ('-' = stdin)
    item_table: str | None = None  # new items scored from their features (recli.stages.new_items)
    clip: bool = True
    read: ReadOptions | None = None  # how --pairs / --history tables are parsed
    context: list[str] | None = None  # COL=VALUE context of the scores (models trained with --context-col)
    started: float = field(default_factory=time.perf_counter)

    @property
    def similar(self) -> bool:
        """Similar items per item, not recommendations per user."""
        return bool(self.similar_items or self.items_file)

    def __post_init__(self) -> None:
        _check_k(self.k)
        if self.batch_size < 1 or self.explain_top < 1:
            raise ConfigError("--batch-size and --explain-top must be at least 1", hint="e.g. --batch-size 1024")
        if self.pairs is not None:
            self._check_pairs()
            return
        by_user = bool(self.users or self.user or self.all_users)
        if self.similar and by_user:
            raise ConfigError("choose users (--users/--user/--all-users) or items (--similar-items/--items-file), "
                              "not both", hint="run recli recommend twice")
        if not self.similar and not by_user and not self.history:
            raise ConfigError("no users given", hint="pass --user ID, --users FILE, --all-users, --history FILE "
                                                     "(its users), or --similar-items ITEM")
        if self.all_users and (self.users or self.user):
            raise ConfigError("--all-users cannot be combined with --users/--user", hint="drop one of them")
        if self.users == "-" and self.history == "-":
            raise ConfigError("--users and --history cannot both read stdin", hint="give one of them as a file")
        if self.similar and (self.explain or self.history):
            raise ConfigError("--explain and --history apply to user recommendations, not --similar-items",
                              hint="drop them, or ask for users")
        if self.item_table and (self.similar or self.explain or self.fallback):
            raise ConfigError("--item-table cannot be combined with --similar-items/--items-file, --explain or "
                              "--fallback", hint="score new items for users without them")


    def _check_pairs(self) -> None:
        others = [name for name, given in (
            ("--users", self.users), ("--user", self.user), ("--all-users", self.all_users),
            ("--similar-items", self.similar_items), ("--items-file", self.items_file), ("--history", self.history),
            ("--explain", self.explain), ("--fallback", self.fallback), ("--exclude-items", self.exclude_items),
            ("--only-items", self.only_items), ("--include-seen", self.include_seen),
            ("--item-table", self.item_table)) if given]
        if others:
            raise ConfigError(f"--pairs cannot be combined with {', '.join(others)}",
                              hint="--pairs scores exactly the given user,item pairs; run recli recommend "
                                   "again for top-k lists")


def recommend(mf: ModelFile, request: RecommendRequest) -> int:
    """Write the top-k table ``request`` asks for from model ``mf``: ``user,item,score,rank``
    per user (with ``--explain``: plus the contributing history items), or
    ``item,similar_item,score,rank`` per item, or ``user,item,score`` per given pair
    (:mod:`recli.stages.predict`). Returns the number of rows written."""
    if request.context:
        from recli.stages.context import apply_context

        apply_context(mf.model, request.context)
    if request.pairs is not None:
        return _write_pairs(mf, request)
    if request.explain and not mf.model.can_explain:
        raise ConfigError(f"model {mf.model.name!r} cannot explain its recommendations",
                          hint="use --explain with a model that can (recli train --list-models shows 'explain')")
    new = load_new_items(mf, request.item_table, request.read) if request.item_table else None
    catalogue = new.catalogue if new is not None else mf.items
    banned = item_ban_mask(catalogue, _read_ids(request.exclude_items, catalogue, "item", "--exclude-items"),
                           _read_ids(request.only_items, catalogue, "item", "--only-items"))
    if request.similar:
        rows, n = _write_similar(mf, request, banned)
    else:
        rows, n = _write_recommendations(mf, request, banned, new)
    log.debug(f"{rows} rows for {n} {'items' if request.similar else 'users'} "
              f"in {time.perf_counter() - request.started:.2f}s")
    return rows


def _write_pairs(mf: ModelFile, req: RecommendRequest) -> int:
    """``user,item,score`` for every pair in ``req.pairs``, in input order."""
    import polars as pl

    from recli.data.io import ReadOptions, read_interactions
    from recli.stages.predict import pairs_frame

    pairs = read_interactions(req.pairs, req.read or ReadOptions(), roles=("user", "item"), what="--pairs")
    with threads_context(req.threads):
        frame = pairs_frame(mf, pairs, clip=req.clip, strict=req.strict, batch_size=req.batch_size)
    schema = {"user": pl.Utf8, "item": pl.Utf8, "score": pl.Float32}
    return _write_frames(iter([frame]), req, schema)


def _read_ids(source: str | None, vocab: Vocab, column: str, what: str) -> list[str] | None:
    """The ids in file ``source`` (None without one); a first line that is an id in
    ``vocab`` is never taken for a header (:func:`recli.data.ids.read_ids`)."""
    return read_ids(source, column, what, known=lambda value: bool(vocab.index([value])[0] >= 0)) if source else None


def _write_similar(mf: ModelFile, req: RecommendRequest, banned: np.ndarray | None) -> tuple[int, int]:
    """``item,similar_item,score,rank`` rows; returns (rows, query items)."""
    ids = list(req.similar_items or []) + (_read_ids(req.items_file, mf.items, "item", "--items-file") or [])
    names, iidx = plan_items(mf, list(dict.fromkeys(ids)), req.strict)
    with threads_context(req.threads, numba=needs_numba(len(names), len(mf.items), req.batch_size)):
        frames = (to_frame(names, mf.items, *batch, names=("item", "similar_item"))
                  for batch in similar_batches(mf, iidx, req.k, banned=banned, batch_size=req.batch_size))
        rows = _write_frames(frames, req, _schema("item", "similar_item"))
    return rows, len(names)


def _write_recommendations(mf: ModelFile, req: RecommendRequest, banned: np.ndarray | None,
                           new: NewItems | None = None) -> tuple[int, int]:
    """``user,item,score,rank`` rows (``--explain``: with ``because`` columns); returns
    (rows, users). Plain CSV for ``--user`` ids goes through the stdlib writer, no Polars;
    otherwise batches are computed in a worker thread one ahead of the writer
    (:func:`recli.data.stream.ahead`). ``new``: items outside the catalogue, scored
    alongside it (``--item-table``)."""
    history = read_history(req.history, mf, req.read) if req.history else None
    ids = None if req.all_users or not (req.users or req.user) else \
        list(dict.fromkeys((_read_ids(req.users, mf.users, "user", "--users") or []) + list(req.user or [])))
    plan = plan_users(mf, ids, all_users=req.all_users, history=history, strict=req.strict, fallback=req.fallback)
    _check_output_space(mf, req, len(plan.ids))
    nested = req.explain and ((req.fmt or "").lower() == "jsonl" or req.output.lower().endswith((".jsonl", ".ndjson")))
    numba = needs_numba(len(plan.ids), len(mf.items), req.batch_size)
    items = new.catalogue if new is not None else mf.items

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        return recommend_batches(mf, plan, req.k, include_seen=req.include_seen, banned=banned,
                                 batch_size=req.batch_size, new_items=new.features if new else None)

    def frames() -> Iterator[pl.DataFrame]:
        with threads_context(req.threads, numba=numba):  # Numba's thread count is per thread
            yield from (to_frame(plan.ids, items, *b) for b in batches())

    with threads_context(req.threads, numba=numba):
        if req.explain:
            explained = (explain_frame(mf, plan, *b, top=req.explain_top, nested=nested) for b in batches())
            rows = _write_frames(explained, req, explain_schema(nested, mf.model.explains_features))
        elif _plain_csv(req):
            rows = write_csv_lines(RECS_COLUMNS, csv_rows(plan.ids, items, batches()), req.output)
        else:  # the next batch is scored and mapped to ids while this one is written
            from recli.data.stream import ahead

            with _blas_for_worker(mf, new):
                rows = _write_frames(ahead(frames), req, _schema())
    return rows, len(plan.ids)


def _blas_for_worker(mf: ModelFile, new: NewItems | None) -> contextlib.AbstractContextManager:
    """One BLAS thread, set from this (the main) thread, while :func:`ahead`'s worker thread
    scores a factor model on the CPU: its top-k (:func:`recli.models._factors.screened_top_k`)
    runs ``--threads`` workers of single-threaded BLAS products, and a limit set from the
    worker thread itself does not hold (:func:`~recli.backend.single_threaded_blas`)."""
    if new is None and getattr(mf.model, "top_k", None) is not None and mf.model.backend.name == "cpu":
        return single_threaded_blas()
    return contextlib.nullcontext()


def _check_output_space(mf: ModelFile, req: RecommendRequest, n_users: int) -> None:
    """Refuse before scoring when a large uncompressed text output cannot fit on its disk:
    ``n_users · k`` rows of about (mean id lengths + 24) bytes each."""
    if req.output == "-" or n_users * req.k < 1_000_000 or req.output.lower().endswith(".gz"):
        return
    if output_format(req.output, req.fmt) not in ("csv", "tsv", "jsonl"):
        return  # Parquet compresses: its size is not known in advance
    from recli.errors import check_free_space

    row = _mean_id_length(mf.users) + _mean_id_length(mf.items) + 24
    check_free_space(req.output, int(n_users * req.k * row), f"writing {req.output!r}")


def _mean_id_length(vocab: Vocab) -> float:
    ids = vocab.ids.head(10_000)
    return float(ids.str.len_bytes().mean() or 0.0)


def _plain_csv(req: RecommendRequest) -> bool:
    """``--user`` requests written as plain uncompressed CSV: the stdlib writer serves them."""
    return (not (req.users or req.all_users or req.history or req.fallback)
            and output_format(req.output, req.fmt) == "csv" and not req.output.lower().endswith(".gz"))


def _write_frames(frames: Iterator[pl.DataFrame], req: RecommendRequest, schema: dict[str, Any]) -> int:
    """Stream ``frames`` to ``req.output`` (header only, from ``schema``, when there are none)."""
    import polars as pl

    from recli.data.stream import write_stream

    return write_stream(frames, req.output, req.fmt, pl.DataFrame(schema=schema))


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
    return item_counts(mf.train[1], len(mf.items))


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
    from recli.kernels.cpu import SMALL_BATCH_CELLS

    return min(n_rows, batch_size) * n_items > SMALL_BATCH_CELLS


def recommend_batches(mf: ModelFile, plan: UserPlan, k: int, *, include_seen: bool = False,
                      banned: np.ndarray | None = None, batch_size: int = 1024,
                      new_items: SideFeatures | None = None) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(batch positions, items (B, k) int32, scores (B, k) float32)`` per batch;
    item ``-1`` pads rows with fewer than ``k`` eligible items. ``new_items``: features of
    items outside the catalogue, scored by ``model.score_new_items`` as items
    ``n_items + j`` (never seen by anyone)."""
    _check_k(k)
    popular = popularity_scores(mf) if (plan.uidx == FALLBACK).any() else None
    kernels = model_kernels(mf.model)
    batch_size = device_batch_rows(kernels, batch_size, len(mf.items))
    # a factor model selects its top-k as it scores (no batch x items matrix on the CPU)
    fused = getattr(mf.model, "top_k", None) if new_items is None else None
    if fused is not None and len(plan.ids) > batch_size:  # (a short list imports no Numba)
        from recli.models._factors import screen_batch_rows

        batch_size = screen_batch_rows(mf.model, batch_size)
    for start in range(0, len(plan.ids), batch_size):
        pos = np.arange(start, min(start + batch_size, len(plan.ids)))
        uidx = plan.uidx[pos]
        history = plan.history[pos] if plan.history is not None else None
        seen = (None, None, None) if include_seen else _batch_seen(mf, uidx, history)
        if fused is not None and not (uidx == FALLBACK).any():
            items, values = fused(uidx, history if (uidx == -1).any() else None, k, *seen, banned)
        else:
            scores = score_batch(mf, uidx, history, popular)
            if new_items is not None:
                fresh = mf.model.score_new_items(uidx, history if (uidx == -1).any() else None, new_items)
                scores = np.hstack([scores, fresh]).astype(np.float32, copy=False)
            items, values = kernels.topk(scores, k, *seen, banned)
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
    ``nested=True`` puts them in one ``because`` list column (for JSON lines). A model
    that names features (``explains_features``: content) adds its ``top`` matching
    features, by ``model.explain_features``: a ``features`` list column when nested, else
    ``because_feature, feature_contribution`` (row ``n`` of a recommendation holds its
    ``n``-th item and its ``n``-th feature; nulls pad the shorter list).
    """
    with_features = mf.model.explains_features
    recs: dict[str, list] = {"user": [], "item": [], "score": [], "rank": [], "because": [], "features": []}
    for b, p in enumerate(pos):
        rec = items[b][items[b] >= 0]
        hist_items, hist_values = _history_of(mf, plan, p)
        args = (int(plan.uidx[p]), hist_items, hist_values, rec)
        contrib = (np.asarray(mf.model.explain(*args), dtype=np.float64)
                   if hist_items.shape[0] and rec.shape[0] else np.zeros((rec.shape[0], 0)))
        matched = _top_features(mf, args, top) if with_features else [[] for _ in rec]
        for j, item in enumerate(rec):
            order = np.lexsort((hist_items, -contrib[j]))[:top] if contrib.shape[1] else []
            recs["because"].append([{"item": mf.items.ids[int(hist_items[h])], "contribution": float(contrib[j, h])}
                                    for h in order])
            recs["features"].append(matched[j])
            recs["user"].append(plan.ids[p])
            recs["item"].append(mf.items.ids[int(item)])
            recs["score"].append(float(values[b, j]))
            recs["rank"].append(j + 1)
    return _explain_table(recs, nested, with_features)


def _top_features(mf: ModelFile, args: tuple, top: int) -> list[list[dict[str, Any]]]:
    """Per recommended item, its ``top`` features of positive contribution (ties by name)."""
    names = mf.model.feature_names("item")
    contrib = (np.asarray(mf.model.explain_features(*args), dtype=np.float64) if args[1].shape[0] and args[3].shape[0]
               else np.zeros((args[3].shape[0], 0)))
    out = []
    for row in contrib:
        order = [f for f in np.lexsort((names, -row))[:top] if row[f] > 0] if row.shape[0] else []
        out.append([{"feature": str(names[f]), "contribution": float(row[f])} for f in order])
    return out


def _explain_table(recs: dict[str, list], nested: bool, with_features: bool) -> pl.DataFrame:
    import polars as pl

    if not with_features:
        del recs["features"]
    elif not nested:  # the two lists side by side: pad the shorter with nulls
        for j, (because, features) in enumerate(zip(recs["because"], recs["features"])):
            n = max(len(because), len(features), 1)
            recs["because"][j] = because + [None] * (n - len(because))
            recs["features"][j] = features + [None] * (n - len(features))
    df = pl.DataFrame(recs, schema=explain_schema(nested=True, features=with_features))
    if nested:
        return df
    lists = ["because", "features"] if with_features else ["because"]
    flat = df.explode(lists).with_columns(pl.col("because").struct.field("item").alias("because_item"),
                                          pl.col("because").struct.field("contribution").alias("contribution"))
    if with_features:
        flat = flat.with_columns(pl.col("features").struct.field("feature").alias("because_feature"),
                                 pl.col("features").struct.field("contribution").alias("feature_contribution"))
    return flat.drop(lists)


def explain_schema(nested: bool, features: bool = False) -> dict[str, Any]:
    """Polars dtypes of :func:`explain_frame`'s table, flat or ``nested``, with or without
    the matching ``features`` of a model that names them."""
    import polars as pl

    if nested:
        named = {"features": pl.List(pl.Struct({"feature": pl.Utf8, "contribution": pl.Float64}))} if features else {}
        return {**_schema(), "because": pl.List(pl.Struct({"item": pl.Utf8, "contribution": pl.Float64})), **named}
    named = {"because_feature": pl.Utf8, "feature_contribution": pl.Float64} if features else {}
    return {**_schema(), "because_item": pl.Utf8, "contribution": pl.Float64, **named}


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
    _check_k(k)
    for start in range(0, iidx.shape[0], batch_size):
        pos = np.arange(start, min(start + batch_size, iidx.shape[0]))
        query = iidx[pos]
        sims = mf.model.similar_items(query)
        items, values = model_kernels(mf.model).topk(sims, k, np.arange(pos.shape[0]),
                                                     np.arange(pos.shape[0] + 1, dtype=np.int64),
                                                     query.astype(np.int32), banned)
        yield pos, items, values
