"""``recli eval --cold-report``: the metrics again over cold and warm items, and cold and warm users.

An item (user) is *cold* when it occurs in TEST but never in TRAIN. Each segment is scored
by :func:`recli.stages.evaluate.evaluate` on filtered tables, with the same options:

cold items   TEST rows of cold items are the truth; each list keeps only its cold items
             (in order) before it is cut at k: how well the model ranks the items nobody
             had interacted with, among themselves.
warm items   the same with the items seen in TRAIN.
cold users   TEST rows of cold users; lists unchanged.
warm users   TEST rows of the users seen in TRAIN.

``cold_coverage@k`` (segment ``cold items``) is the share of the cold items that appear in
the full top-k list (before any segment filtering; after ``--exclude-train``) of at least
one evaluated user: ``|cold ∩ ∪_u L_u@k| / |cold|``.
"""

from __future__ import annotations

import polars as pl

from recli.errors import InputError
from recli.stages import eval_inputs as ei

# (segment, role, whether the segment holds the cold ids of the role)
SEGMENTS = (("cold items", "item", True), ("warm items", "item", False), ("cold users", "user", True),
            ("warm users", "user", False))


def _ids(df: pl.DataFrame, names: tuple[str, ...], what: str, role: str) -> pl.Expr:
    return pl.col(ei.find_column(df, names, what, role)).cast(pl.Utf8)


def cold_ids(test: pl.DataFrame, train: pl.DataFrame) -> dict[str, pl.Series]:
    """The distinct TEST items and users absent from TRAIN (as strings)."""
    out = {}
    for role, names in (("item", ei.ITEM_COLUMNS), ("user", ei.USER_COLUMNS)):
        seen = train.select(_ids(train, names, "TRAIN", role)).to_series().unique()
        ids = test.select(_ids(test, names, "TEST", role)).to_series().unique()
        out[role] = ids.filter(~ids.is_in(seen.implode())).sort()
    return out


def cold_report(recs: list[tuple[str, pl.DataFrame]], test: pl.DataFrame, train: pl.DataFrame,
                results: pl.DataFrame, **options) -> tuple[pl.DataFrame, list[str]]:
    """Rows of every segment (``segment`` column added to the results schema) and notes.

    ``options`` are the keyword arguments of :func:`recli.stages.evaluate.evaluate` the whole
    run used (``ks``, ``relevance_threshold``, ...); the ranking metrics of ``results`` are
    recomputed per segment, without CIs, tests or per-user values."""
    from recli.stages.evaluate import evaluate  # it imports this module lazily

    cold = cold_ids(test, train)
    notes = [f"--cold-report: {cold['item'].len()} cold items and {cold['user'].len()} cold users in TEST "
             "(not in TRAIN)"]
    ranked = results.filter(pl.col("k").is_not_null())
    metrics = list(dict.fromkeys(ranked["metric"]))
    options = dict(options, metrics=metrics, ks=sorted(set(ranked["k"])), bootstrap=0, per_user=False, gates=())
    frames = []
    for segment, role, is_cold in SEGMENTS:
        if not cold[role].len():
            continue
        keep = _is_cold(role, cold[role], is_cold)
        seg_test = test.filter(keep(test, "TEST"))
        seg_recs = [(label, df.filter(keep(df, f"RECS {label!r}")) if role == "item" else df) for label, df in recs]
        try:
            rep = evaluate(seg_recs, seg_test, train=train, **options)
        except InputError as exc:  # e.g. no relevant TEST row left in the segment
            notes.append(f"--cold-report: {segment} not scored: {exc.message}")
            continue
        frames.append(rep.results.with_columns(pl.lit(segment).alias("segment")))
    if cold["item"].len():
        frames.append(_coverage_rows(recs, test, train, cold["item"], options))
    return pl.concat(frames, how="vertical") if frames else pl.DataFrame(), notes


def _is_cold(role: str, ids: pl.Series, cold: bool):
    names = ei.ITEM_COLUMNS if role == "item" else ei.USER_COLUMNS

    def keep(df: pl.DataFrame, what: str) -> pl.Expr:
        inside = _ids(df, names, what, role).is_in(ids.implode())
        return inside if cold else ~inside
    return keep


def _coverage_rows(recs, test, train, cold_items: pl.Series, options: dict) -> pl.DataFrame:
    """``cold_coverage@k`` per model (see the module docstring)."""
    from recli.stages.evaluate import RESULT_SCHEMA

    _, relevant = ei.prepare_test(test, "TEST", options.get("relevance_threshold"), options.get("graded", False))
    users = relevant["user"].cast(pl.Utf8).unique()
    seen = ei.prepare_pairs(train, "TRAIN", (), "").select(pl.col("user", "item").cast(pl.Utf8))
    rows = []
    for label, df in recs:
        lists = ei.prepare_recs(df, f"RECS {label!r}").with_columns(pl.col("user", "item").cast(pl.Utf8))
        lists = lists.filter(pl.col("user").is_in(users.implode()))
        if options.get("exclude_train"):
            lists = lists.join(seen, on=["user", "item"], how="anti", maintain_order="left")
        lists = lists.sort("user", "_ord", maintain_order=True).with_columns(
            pl.int_range(pl.len()).over("user").alias("_pos"))
        for k in options["ks"]:
            top = lists.filter(pl.col("_pos") < k)["item"]
            hit = cold_items.is_in(top.implode()).sum()
            rows.append({"model": label, "metric": "cold_coverage", "k": k, "value": hit / cold_items.len(),
                         "users": users.len(),
                         "ci_low": None, "ci_high": None, "p_ttest": None, "p_wilcoxon": None,
                         "segment": "cold items"})
    return pl.DataFrame(rows, schema={**RESULT_SCHEMA, "segment": pl.Utf8})
