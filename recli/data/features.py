"""Side features from an item (or user) attribute table: fit a transform, apply it to any rows.

A table holds one row per id and attribute columns. Each ``--item-feature COL:KIND[:OPTIONS]``
turns a column into named features, in long sparse form ``id, feature, value``:

categorical  one feature ``COL=VALUE`` (value 1) per row; values carried by fewer than
             ``min_count`` ids are pooled into one ``COL=<other>`` feature.
multi        the cell split on a separator (``genres:multi:|``), one ``COL=TOKEN`` per distinct
             token, rare tokens pooled as for categorical.
text         lower-cased, tokenised on ``\\w\\w+`` (words of two or more letters or digits),
             English stop words removed, tokens in fewer than ``min_count`` ids dropped, the
             ``max_features`` most frequent kept (document frequency, ties by token); features
             ``COL=TOKEN`` weighted by TF-IDF or BM25, each id's vector L2-normalised.
numeric      standardised, ``(x - mean) / std`` (population std; 1 when it is 0), feature ``COL``;
             or with ``bins=N`` quantile bins ``COL=binK`` (value 1) whose inner edges are the
             distinct ``k/N`` quantiles, bin ``K`` = the number of inner edges ``<= x``; or with
             ``scale=none`` the value as is, zeros left out (0/1 indicator columns).

Weights of a token ``t`` in id ``d`` (``tf`` its count, ``N`` ids in the table, ``df`` ids
holding ``t``, ``dl`` the number of in-vocabulary tokens of ``d``, ``avgdl`` their mean over
the ``N`` ids):

    TF-IDF: tf * (ln((1 + N) / (1 + df)) + 1)
    BM25:   ln(1 + (N - df + 0.5) / (df + 0.5)) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl)),
            k1 = 1.2, b = 0.75

A long tag table (id, token[, weight]) is aggregated per id (``tf`` = the summed weight of the
token, tokens lower-cased) and weighted the same way, features ``tag=TOKEN``. An identity
feature ``ROLE=ID`` (``item=42``, value 1) per id follows LightFM's convention.

:func:`fit_transform` learns every parameter (vocabularies, IDF weights, means, bin edges)
into a JSON-ready ``transform`` dict; :func:`apply_transform` applies it to other rows
(new items) and gives, for the same ids, exactly the rows :func:`fit_transform` gave.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import polars as pl

from recli.data.io import SEPARATORS
from recli.data.schema import ColumnNames, resolve_columns
from recli.errors import ConfigError, InputError

KINDS = ("categorical", "multi", "text", "numeric")
FEATURE = "feature"
VALUE = "value"
OTHER = "<other>"
TAG = "tag"
BM25_K1 = 1.2
BM25_B = 0.75
TOKEN_PATTERN = r"\w\w+"
TRANSFORM_VERSION = 1
# Per kind: each option's default (its type is the default's type) and, for strings, the choices.
DEFAULTS: dict[str, dict] = {
    "categorical": {"min_count": 1},
    "multi": {"sep": "|", "min_count": 1},
    "text": {"weighting": "tfidf", "stop_words": "english", "min_count": 1, "max_features": 10000},
    "numeric": {"bins": 0, "scale": "standard"},
}
TAG_OPTIONS = {"weighting": "tfidf", "min_count": 1, "max_features": 0}
CHOICES = {"weighting": ("tfidf", "bm25"), "stop_words": ("english", "none"), "scale": ("standard", "none")}
# Token names in tag tables, weight names (else every row weighs 1).
TAG_TOKEN_NAMES = ("tag", "tags", "token", "term", "feature", "label")
TAG_WEIGHT_NAMES = ("weight", "value", "count", "score", "relevance")
_STOP_WORDS_TEXT = """
a about above after again against all am an and any are as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having he her here
hers herself him himself his how if in into is it its itself just me more most my myself no nor not now of off
on once only or other our ours ourselves out over own same she should so some such than that the their theirs
them themselves then there these they this those through to too under until up very was we were what when
where which while who whom why will with would you your yours yourself yourselves
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())


@dataclass(frozen=True)
class FeatureSpec:
    """One ``COL:KIND[:OPTIONS]``: ``columns`` as written (names or ``FIRST..LAST`` ranges),
    the kind and its options (defaults filled in)."""

    columns: tuple[str, ...]
    kind: str
    options: dict = field(default_factory=dict)


@dataclass
class Fitted:
    """What :func:`fit_transform` returns: the long ``frame`` (``ROLE, feature, value``), the
    ``transform`` to apply to new rows, and the ``counts`` for the report."""

    frame: pl.DataFrame
    transform: dict
    counts: dict


def _spec_error(text: str, flag: str, why: str) -> ConfigError:
    return ConfigError(f"{flag} {text!r}: {why}",
                       hint=f"use COL:KIND[:OPTIONS] with KIND one of {', '.join(KINDS)}, e.g. {flag} genres:multi:| "
                            f"or {flag} year:numeric:bins=10")


def parse_spec(text: str, flag: str = "--item-feature") -> FeatureSpec:
    """Parse ``COL:KIND[:OPTIONS]``; OPTIONS are ``key=value`` pairs separated by commas; for
    ``multi`` the first may be the bare separator (``|``, ``;``, ``comma``...). COL may list
    columns separated by commas, or a range ``FIRST..LAST`` in table order."""
    parts = text.split(":", 2)
    if len(parts) < 2 or not parts[0].strip():
        raise _spec_error(text, flag, "is not COL:KIND[:OPTIONS]")
    kind = parts[1].strip().lower()
    if kind not in KINDS:
        raise _spec_error(text, flag, f"unknown kind {parts[1]!r}")
    columns = tuple(c.strip() for c in parts[0].split(","))
    if not all(columns):
        raise _spec_error(text, flag, "has an empty column name")
    raw = parts[2] if len(parts) == 3 else ""
    if kind == "multi" and raw and "=" not in raw:
        pairs = [f"sep={raw}"]                # a bare separator, which may be a comma
    else:
        pairs = [p for p in raw.split(",") if p.strip()]
        if kind == "multi" and pairs and "=" not in pairs[0]:
            pairs[0] = f"sep={pairs[0]}"      # |,min_count=2
    return FeatureSpec(columns, kind, _options(pairs, DEFAULTS[kind], text, flag))


def _options(pairs: list[str], defaults: dict, text: str, flag: str) -> dict:
    options = dict(defaults)
    for pair in pairs:
        key, eq, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or key not in defaults:
            raise _spec_error(text, flag, f"unknown option {pair!r} (options: {', '.join(defaults) or 'none'})")
        options[key] = _option_value(key, value if key == "sep" else value.strip(), defaults[key], text, flag)
    if options.get("bins") == 1:
        raise _spec_error(text, flag, "bins=1 puts every value in one bin; use bins >= 2")
    return options


def _option_value(key: str, value: str, default, text: str, flag: str):
    if key == "sep":
        if not value:
            raise _spec_error(text, flag, "the separator is empty")
        return SEPARATORS.get(value, value)
    if isinstance(default, int):
        if not value.isdigit():
            raise _spec_error(text, flag, f"{key}={value!r} is not a whole number >= 0")
        return int(value)
    if value not in CHOICES[key]:
        raise _spec_error(text, flag, f"{key}={value!r} is not one of {', '.join(CHOICES[key])}")
    return value


def expand_columns(names: Sequence[str], columns: Sequence[str], flag: str) -> list[str]:
    """Column names (``FIRST..LAST``: every column from FIRST to LAST in table order) → the
    table's columns, each checked to exist."""
    out: list[str] = []
    for name in names:
        first, dots, last = name.partition("..")
        for end in ((first, last) if dots else (name,)):
            if end not in columns:
                raise InputError(f"{flag}: column {end!r} not found; columns found: {', '.join(columns)}",
                                 hint="name a column of the table (for a file without a header, name its columns "
                                      "with the table's --*-table-columns option)")
        if dots:
            lo, hi = sorted((columns.index(first), columns.index(last)))
            out += list(columns[lo:hi + 1])
        else:
            out.append(name)
    return out


def find_id_column(columns: Sequence[str], role: str, id_col: str | None, what: str, flag: str) -> str:
    """The id column of an attribute table: ``id_col`` if given, else found by its usual
    names (:data:`recli.data.schema.ALIASES`)."""
    if id_col is not None and id_col not in columns:
        raise InputError(f"{what}: id column {id_col!r} given with {flag} not found; columns found: {', '.join(columns)}",
                         hint=f"pass one of the columns found to {flag}")
    try:
        found = resolve_columns(columns, ColumnNames(**{role: id_col}), roles=(role,), required=(role,), what=what)
    except InputError as exc:
        raise InputError(exc.message, hint=f"name the id column with {flag} COLUMN (for a file without a header, "
                                           "name its columns first)") from None
    return found[role]


def id_series(table: pl.DataFrame, column: str, what: str) -> pl.Series:
    ids = table[column].cast(pl.Utf8).str.strip_chars()
    if ids.null_count() or (ids == "").any():
        raise InputError(f"{what}: {ids.null_count() + int((ids == '').sum())} rows have no id in column {column!r}",
                         hint="fill in or remove the rows without an id")
    dupes = ids.is_duplicated()
    if dupes.any():
        raise InputError(f"{what}: {ids.filter(dupes).n_unique()} ids appear on more than one row "
                         f"(e.g. {ids.filter(dupes)[0]!r})",
                         hint="keep one row per id in the attribute table (use a tag table for repeated values)")
    return ids.rename("id")


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema={"id": pl.Utf8, FEATURE: pl.Utf8, VALUE: pl.Float64})


def _cells(ids: pl.Series, values: pl.Series) -> pl.DataFrame:
    """``id, v`` with the cell as a stripped string, empty and missing cells dropped."""
    v = values.cast(pl.Utf8).str.strip_chars()
    return pl.DataFrame({"id": ids, "v": v}).filter(pl.col("v").is_not_null() & (pl.col("v") != ""))


# ---- categorical and multi-valued ---------------------------------------------------------------

def _tokens_of(ids: pl.Series, values: pl.Series, fitted: dict) -> pl.DataFrame:
    cells = _cells(ids, values)
    if fitted["kind"] == "multi":
        cells = cells.with_columns(pl.col("v").str.split(fitted["options"]["sep"])).explode("v")
        cells = cells.with_columns(pl.col("v").str.strip_chars()).filter(pl.col("v") != "")
    return cells.unique(maintain_order=True)


def _fit_category(ids: pl.Series, values: pl.Series, fitted: dict) -> dict:
    counts = _tokens_of(ids, values, fitted).group_by("v").len()
    keep = counts.filter(pl.col("len") >= fitted["options"]["min_count"])
    fitted["vocabulary"] = sorted(keep["v"].to_list())
    fitted["other"] = keep.height < counts.height
    fitted["dropped"] = counts.height - keep.height
    return fitted


def _apply_category(ids: pl.Series, values: pl.Series, fitted: dict) -> pl.DataFrame:
    cells = _tokens_of(ids, values, fitted)
    known = pl.col("v").is_in(pl.Series(fitted["vocabulary"], dtype=pl.Utf8).implode())
    col = fitted["column"]
    name = pl.when(known).then(pl.lit(f"{col}=") + pl.col("v")).otherwise(pl.lit(f"{col}={OTHER}"))
    if not fitted["other"]:
        cells = cells.filter(known)
    return cells.select("id", name.alias(FEATURE), pl.lit(1.0).alias(VALUE)).unique(maintain_order=True)


# ---- text and tags: a vocabulary with weights ---------------------------------------------------

def _text_counts(ids: pl.Series, values: pl.Series, fitted: dict) -> pl.DataFrame:
    """``id, v, tf``: each token's count in each id's text, stop words removed."""
    cells = _cells(ids, values).with_columns(pl.col("v").str.to_lowercase().str.extract_all(TOKEN_PATTERN))
    tokens = cells.explode("v").drop_nulls("v")
    if fitted["options"].get("stop_words") == "english":
        tokens = tokens.filter(~pl.col("v").is_in(pl.Series(sorted(STOP_WORDS)).implode()))
    return tokens.group_by("id", "v", maintain_order=True).len("tf").with_columns(pl.col("tf").cast(pl.Float64))


def tag_counts(tags: pl.DataFrame, role: str, what: str, flag: str) -> pl.DataFrame:
    """A long tag table (id, token[, weight]) → ``id, v, tf`` (the summed weight per id and
    lower-cased token). The token column is found by name (:data:`TAG_TOKEN_NAMES`), else it is
    the one column besides the id; the weight by name (:data:`TAG_WEIGHT_NAMES`), else 1."""
    id_col = find_id_column(tags.columns, role, None, what, flag)
    lowered = {c.lower(): c for c in tags.columns if c != id_col}
    token = next((lowered[n] for n in TAG_TOKEN_NAMES if n in lowered), None)
    rest = [c for c in tags.columns if c != id_col]
    if token is None and len(rest) == 1:
        token = rest[0]
    if token is None:
        raise InputError(f"{what}: no tag column (none of {', '.join(TAG_TOKEN_NAMES[:3])}, ...); "
                         f"columns found: {', '.join(tags.columns)}",
                         hint="give a table with columns id, tag[, weight]")
    weight_col = next((lowered[n] for n in TAG_WEIGHT_NAMES if n in lowered and lowered[n] != token), None)
    weight = pl.lit(1.0) if weight_col is None else pl.col(weight_col).cast(pl.Float64, strict=False)
    out = tags.select(pl.col(id_col).cast(pl.Utf8).str.strip_chars().alias("id"),
                      pl.col(token).cast(pl.Utf8).str.strip_chars().str.to_lowercase().alias("v"), weight.alias("tf"))
    if weight_col is not None and out["tf"].null_count() > tags[weight_col].null_count():
        raise InputError(f"{what}: weight column {weight_col!r} holds values that are not numbers",
                         hint="give numeric weights, or drop the weight column (every tag then weighs 1)")
    out = out.filter(pl.col("id").is_not_null() & (pl.col("id") != "") & pl.col("v").is_not_null() & (pl.col("v") != ""))
    return out.group_by("id", "v", maintain_order=True).agg(pl.col("tf").fill_null(1.0).sum())


def _fit_vocabulary(counts: pl.DataFrame, n_docs: int, fitted: dict) -> dict:
    """Keep tokens in >= min_count ids, cap to the max_features most frequent; store the IDF
    of each kept token and BM25's average document length."""
    opts = fitted["options"]
    df = counts.group_by("v").len("df")
    keep = df.filter(pl.col("df") >= opts["min_count"]).sort(["df", "v"], descending=[True, False])
    capped = keep.head(opts["max_features"]) if opts["max_features"] else keep
    capped = capped.sort("v")
    if capped.height == 0:
        raise InputError(f"{fitted['what']}: the vocabulary of {fitted['column']!r} is empty after filtering "
                         f"({df.height} distinct tokens, none in >= {opts['min_count']} ids)",
                         hint="lower min_count (e.g. COL:text:min_count=1), use stop_words=none, or check the column")
    n_df = capped["df"].to_numpy().astype(np.float64)
    if opts["weighting"] == "bm25":
        idf = np.log1p((n_docs - n_df + 0.5) / (n_df + 0.5))
    else:
        idf = np.log((1.0 + n_docs) / (1.0 + n_df)) + 1.0
    fitted.update(vocabulary=capped["v"].to_list(), idf=idf.tolist(), n_docs=n_docs,
                  dropped=df.height - keep.height, capped=keep.height - capped.height)
    in_vocab = counts.filter(pl.col("v").is_in(capped["v"].implode()))
    fitted["avgdl"] = float(in_vocab["tf"].sum()) / n_docs if n_docs else 0.0
    return fitted


def _weigh(counts: pl.DataFrame, fitted: dict) -> pl.DataFrame:
    """Term counts ``id, v, tf`` → weighted, L2-normalised features (see the module docstring)."""
    vocab = pl.DataFrame({"v": fitted["vocabulary"], "idf": fitted["idf"]}, schema={"v": pl.Utf8, "idf": pl.Float64})
    rows = counts.join(vocab, on="v", how="inner", maintain_order="left")
    tf = pl.col("tf")
    if fitted["options"]["weighting"] == "bm25":
        dl = tf.sum().over("id")
        norm_len = 1.0 - BM25_B + BM25_B * dl / (fitted["avgdl"] or 1.0)
        weight = pl.col("idf") * tf * (BM25_K1 + 1.0) / (tf + BM25_K1 * norm_len)
    else:
        weight = tf * pl.col("idf")
    rows = rows.with_columns(weight.alias(VALUE)).filter(pl.col(VALUE) != 0)
    rows = rows.with_columns(pl.col(VALUE) / (pl.col(VALUE) ** 2).sum().over("id").sqrt())
    return rows.select("id", (pl.lit(f"{fitted['column']}=") + pl.col("v")).alias(FEATURE), VALUE)


# ---- numeric -------------------------------------------------------------------------------------

def _numbers(ids: pl.Series, values: pl.Series, fitted: dict) -> pl.DataFrame:
    cells = _cells(ids, values)
    nums = cells.with_columns(pl.col("v").cast(pl.Float64, strict=False).alias("x"))
    bad = nums.filter(pl.col("x").is_null() | pl.col("x").is_nan())
    if bad.height:
        col = fitted["column"]
        raise InputError(f"{fitted['what']}: column {col!r} is marked numeric but {bad.height} of {cells.height} "
                         f"values are not numbers (e.g. {bad['v'][0]!r})",
                         hint=f"mark it as text or categorical (e.g. {col}:text or {col}:categorical), "
                              "or clean the column")
    return nums.select("id", "x")


def _fit_numeric(ids: pl.Series, values: pl.Series, fitted: dict) -> dict:
    x = _numbers(ids, values, fitted)["x"].to_numpy()
    if x.size == 0:
        raise InputError(f"{fitted['what']}: numeric column {fitted['column']!r} has no values",
                         hint="fill in the column, or leave it out of the features")
    bins = fitted["options"]["bins"]
    if bins:
        edges = np.unique(np.quantile(x, np.linspace(0.0, 1.0, bins + 1))[1:-1])
        fitted["edges"] = edges.tolist()
        fitted["vocabulary"] = [f"{fitted['column']}=bin{k}" for k in range(edges.size + 1)]
    else:
        if fitted["options"]["scale"] == "standard":
            std = float(x.std())
            fitted.update(mean=float(x.mean()), std=std if std > 0 else 1.0)
        fitted["vocabulary"] = [fitted["column"]]
    fitted["dropped"] = 0
    return fitted


def _apply_numeric(ids: pl.Series, values: pl.Series, fitted: dict) -> pl.DataFrame:
    nums = _numbers(ids, values, fitted)
    x = nums["x"].to_numpy()
    col = fitted["column"]
    if "edges" in fitted:
        k = np.searchsorted(np.asarray(fitted["edges"], dtype=np.float64), x, side="right")
        return pl.DataFrame({"id": nums["id"], FEATURE: [f"{col}=bin{b}" for b in k.tolist()],
                             VALUE: np.ones(x.size)}, schema=_empty().schema)
    if fitted["options"]["scale"] == "none":
        keep = x != 0
        return pl.DataFrame({"id": nums["id"].filter(pl.Series(keep)), FEATURE: col, VALUE: x[keep]},
                            schema=_empty().schema)
    return pl.DataFrame({"id": nums["id"], FEATURE: col, VALUE: (x - fitted["mean"]) / fitted["std"]},
                        schema=_empty().schema)


# ---- fit and apply -------------------------------------------------------------------------------

def _fit_text(ids: pl.Series, values: pl.Series, fitted: dict) -> dict:
    return _fit_vocabulary(_text_counts(ids, values, fitted), ids.len(), fitted)


def _apply_text(ids: pl.Series, values: pl.Series, fitted: dict) -> pl.DataFrame:
    return _weigh(_text_counts(ids, values, fitted), fitted)


_FIT: dict[str, Callable[[pl.Series, pl.Series, dict], dict]] = {
    "categorical": _fit_category, "multi": _fit_category, "text": _fit_text, "numeric": _fit_numeric}
_APPLY: dict[str, Callable[[pl.Series, pl.Series, dict], pl.DataFrame]] = {
    "categorical": _apply_category, "multi": _apply_category, "text": _apply_text, "numeric": _apply_numeric}


def fit_transform(table: pl.DataFrame, specs: Sequence[FeatureSpec], *, role: str = "item", id_col: str | None = None,
                  tags: pl.DataFrame | None = None, identity: bool = True, what: str = "item table",
                  flag: str = "--item-feature", id_flag: str = "--item-id-col",
                  tags_what: str = "tag table") -> Fitted:
    """Fit the feature transform on ``table`` (one row per id, any column dtypes) and return
    its rows in long form (``role, feature, value``, sorted by id and feature), the transform
    and the counts.

    Raises
    ------
    InputError : no id column, repeated ids, a column missing or not fitting its kind, an
        empty vocabulary.
    """
    source = find_id_column(table.columns, role, id_col, what, id_flag)
    ids = id_series(table, source, what)
    columns: list[dict] = []
    for spec in specs:
        for col in expand_columns(spec.columns, table.columns, flag):
            if col == source:
                raise InputError(f"{flag}: {col!r} is the id column", hint="give attribute columns, not the id")
            fitted = {"column": col, "kind": spec.kind, "options": dict(spec.options), "what": what}
            columns.append(_FIT[spec.kind](ids, table[col], fitted))
    tag_fit = None
    if tags is not None:
        counts = tag_counts(tags, role, tags_what, id_flag)
        tag_fit = _fit_vocabulary(counts, counts["id"].n_unique(),
                                  {"column": TAG, "kind": "tags", "options": dict(TAG_OPTIONS), "what": tags_what})
    for fitted in columns + ([tag_fit] if tag_fit else []):
        fitted.pop("what")
    transform = {"version": TRANSFORM_VERSION, "role": role, "table_id_column": source, "identity": identity,
                 "columns": columns, "tags": tag_fit}
    frame = apply_transform(table, transform, tags=tags)
    clash = frame.select(role, FEATURE).is_duplicated()
    if clash.any():
        name = frame.filter(clash)[FEATURE][0]
        raise InputError(f"{what}: two specs make the same feature {name!r}",
                         hint=f"give each column once per kind in {flag} (a column may be both standardised and "
                              "binned, but not listed twice the same way)")
    all_ids = ids if tags is None else pl.concat([ids, frame[role]]).unique()
    return Fitted(frame, transform, _counts(frame, transform, all_ids))


def apply_transform(table: pl.DataFrame, transform: dict, tags: pl.DataFrame | None = None) -> pl.DataFrame:
    """Apply a fitted ``transform`` to ``table`` (one row per id; the id column found by the name
    it had when fitted, else by its usual names), and to a tag table when one is given and the
    transform has tags. Values and tokens never seen when fitting add no feature (a rare-value
    pool takes unseen categories). Returns ``role, feature, value`` sorted by id and feature."""
    role = transform["role"]
    what = f"{role} table"
    source = transform["table_id_column"] if transform["table_id_column"] in table.columns else \
        find_id_column(table.columns, role, None, what, f"--{role}-id-col")
    ids = id_series(table, source, what)
    parts = [_empty()]
    for fitted in transform["columns"]:
        if fitted["column"] not in table.columns:
            raise InputError(f"{what}: column {fitted['column']!r} of the fitted features is missing; "
                             f"columns found: {', '.join(table.columns)}",
                             hint="give a table with the same attribute columns as the one the features were fitted on")
        parts.append(_APPLY[fitted["kind"]](ids, table[fitted["column"]], dict(fitted, what=what)))
    id_list = ids
    if tags is not None and transform.get("tags"):
        tagged = _weigh(tag_counts(tags, role, "tag table", f"--{role}-id-col"), transform["tags"])
        parts.append(tagged)
        id_list = pl.concat([ids, tagged["id"]]).unique(maintain_order=True)
    if transform["identity"]:
        parts.append(pl.DataFrame({"id": id_list}).select(
            "id", (pl.lit(f"{role}=") + pl.col("id")).alias(FEATURE), pl.lit(1.0).alias(VALUE)))
    frame = pl.concat(parts, how="vertical")
    return frame.sort("id", FEATURE).rename({"id": role})


def _counts(frame: pl.DataFrame, transform: dict, ids: pl.Series) -> dict:
    """Features per kind, ids without any feature (identity aside), features dropped."""
    role = transform["role"]
    per_kind: dict[str, int] = {}
    for fitted in transform["columns"] + ([transform["tags"]] if transform["tags"] else []):
        n = len(fitted["vocabulary"]) + (1 if fitted.get("other") else 0)
        per_kind[fitted["kind"]] = per_kind.get(fitted["kind"], 0) + n
    if transform["identity"]:
        per_kind["identity"] = ids.len()
    with_features = frame.filter(~pl.col(FEATURE).str.starts_with(f"{role}="))[role].n_unique()
    fitted_all = transform["columns"] + ([transform["tags"]] if transform["tags"] else [])
    return {"ids": ids.len(), "rows": frame.height, "features": sum(per_kind.values()), "per_kind": per_kind,
            "ids_without_features": ids.len() - with_features,
            "dropped_min_count": {f["column"]: f["dropped"] for f in fitted_all if f.get("dropped")},
            "dropped_vocabulary_cap": {f["column"]: f["capped"] for f in fitted_all if f.get("capped")},
            "pooled_other": [f["column"] for f in fitted_all if f.get("other")]}

