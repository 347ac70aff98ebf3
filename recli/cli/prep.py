"""``recli prep``: clean, filter and split an interaction log."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from recli.cli._options import (
    EncodingOpt,
    EngineOpt,
    ForceOpt,
    FormatOpt,
    InputArg,
    InputFormatOpt,
    ItemColOpt,
    NoQuoteOpt,
    Quiet,
    QuoteOpt,
    RatingColOpt,
    Seed,
    SepOpt,
    SparkConfOpt,
    SparkMasterOpt,
    TimeColOpt,
    UserColOpt,
    Verbose,
)

app = typer.Typer(add_completion=False)

_CLEAN = "Cleaning"
_FILTER = "Filtering"
_SPLIT = "Splitting"
_IO = "Input and output"
_ITEMS = "Item features"
_USERS = "User features"


def _opt(*names: str, help: str, panel: str = _CLEAN, **kw):
    return typer.Option(*names, help=help, rich_help_panel=panel, **kw)


def _names(text: Optional[str]) -> Optional[list[str]]:
    return [c.strip() for c in text.split(",")] if text else None


def _side(table, id_col, features, tags, sep, encoding, columns, identity):
    from recli.stages.prep_features import SideTableOptions

    return SideTableOptions(table=table, id_col=id_col, features=list(features or []), tags=tags, sep=sep,
                            encoding=encoding, columns=_names(columns), identity=identity)


def _range(text: Optional[str]) -> Optional[tuple[float, float]]:
    from recli.errors import ConfigError

    if text is None:
        return None
    parts = text.replace(":", ",").split(",")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--rating-range {text!r} is not MIN,MAX", hint="use e.g. --rating-range 1,5") from None
    return lo, hi


@app.command(help="Clean, filter and split interactions: raw log in, train/test files (or clean CSV on stdout) out.")
def prep(
    input: InputArg = "-",
    out: Annotated[Optional[str], _opt("--out", help="Directory for the train, test (and valid) files and manifest.json, replaced as a whole; without it the cleaned data goes to stdout.", panel=_IO)] = None,
    force: ForceOpt = False,
    output_format: Annotated[Optional[str], _opt("--output-format", help="Format of the files in --out: csv, tsv, parquet, jsonl, or gzip-compressed csv.gz, tsv.gz, jsonl.gz (default csv).", panel=_IO)] = None,
    format: FormatOpt = None,
    input_format: InputFormatOpt = None,
    sep: SepOpt = None,
    quote: QuoteOpt = None,
    no_quote: NoQuoteOpt = False,
    encoding: EncodingOpt = None,
    no_header: Annotated[bool, _opt("--no-header", help="The input has no header line.", panel=_IO)] = False,
    columns: Annotated[Optional[str], _opt("--columns", help="Names for headerless columns, e.g. user,item,rating,timestamp.", panel=_IO)] = None,
    user_col: UserColOpt = None,
    item_col: ItemColOpt = None,
    rating_col: RatingColOpt = None,
    time_col: TimeColOpt = None,
    fill_rating: Annotated[Optional[str], _opt("--fill-rating", help="Fill missing ratings: mean, median, mode, user-mean or a number (default: drop them).")] = None,
    rating_range: Annotated[Optional[str], _opt("--rating-range", help="Valid ratings MIN,MAX; others are invalid.")] = None,
    on_invalid: Annotated[str, _opt("--on-invalid", help="Invalid ratings: drop or error.")] = "drop",
    dedupe: Annotated[str, _opt("--dedupe", help="Duplicate (user, item) pairs: first, last, max, mean, sum or none.")] = "last",
    implicit: Annotated[bool, _opt("--implicit", help="Implicit feedback: keep positives (rating >= --min-rating, else > 0).")] = False,
    min_rating: Annotated[Optional[float], _opt("--min-rating", help="With --implicit: smallest rating kept.")] = None,
    weight: Annotated[str, _opt("--weight", help="With --implicit: weight = raw, binary or log1p of the rating.")] = "raw",
    normalize: Annotated[str, _opt("--normalize", help="Explicit ratings: none, minmax, zscore or user-mean (fitted on train).")] = "none",
    min_user_interactions: Annotated[int, _opt("--min-user-interactions", help="Drop users with fewer interactions.", panel=_FILTER)] = 0,
    min_item_interactions: Annotated[int, _opt("--min-item-interactions", help="Drop items with fewer interactions.", panel=_FILTER)] = 0,
    k_core: Annotated[bool, _opt("--k-core", help="Repeat the two filters until both hold.", panel=_FILTER)] = False,
    split: Annotated[Optional[str], _opt("--split", help="random, user-ratio, temporal, leave-last, leave-random, cold-items or cold-users (needs --out).", panel=_SPLIT)] = None,
    test_size: Annotated[float, _opt("--test-size", help="Test share: a fraction in (0, 1), or a count k (k rows per user for per-user splits; k items or users for cold splits).", panel=_SPLIT)] = 0.2,
    valid_size: Annotated[Optional[float], _opt("--valid-size", help="Validation share, carved from train the same way.", panel=_SPLIT)] = None,
    cut_date: Annotated[Optional[str], _opt("--cut-date", help="Temporal split: rows at or after this date (ISO-8601 or epoch seconds) are test.", panel=_SPLIT)] = None,
    drop_cold: Annotated[bool, _opt("--drop-cold", help="Remove test/valid rows whose user or item is not in train.", panel=_SPLIT)] = False,
    item_table: Annotated[Optional[str], _opt("--item-table", help="Table of item attributes (any input format), one row per item: its --item-feature columns become item_features.parquet in --out.", panel=_ITEMS)] = None,
    item_id_col: Annotated[Optional[str], _opt("--item-id-col", help="Item id column of --item-table (default: item, item_id, movieId, ...).", panel=_ITEMS)] = None,
    item_feature: Annotated[Optional[list[str]], _opt("--item-feature", help="COL:KIND[:OPTIONS], repeatable; KIND categorical, multi, text or numeric, e.g. genres:multi:| or year:numeric:bins=10 (see docs/prep.md).", panel=_ITEMS)] = None,
    item_tags: Annotated[Optional[str], _opt("--item-tags", help="Long tag table (item, tag[, weight]), aggregated per item and TF-IDF weighted.", panel=_ITEMS)] = None,
    item_table_sep: Annotated[Optional[str], _opt("--item-table-sep", help="Separator of --item-table (default: inferred).", panel=_ITEMS)] = None,
    item_table_encoding: Annotated[Optional[str], _opt("--item-table-encoding", help="Text encoding of --item-table, e.g. latin-1 (default utf-8).", panel=_ITEMS)] = None,
    item_table_columns: Annotated[Optional[str], _opt("--item-table-columns", help="Names for the columns of an --item-table without a header, e.g. item,title,genres.", panel=_ITEMS)] = None,
    user_table: Annotated[Optional[str], _opt("--user-table", help="Table of user attributes, one row per user: its --user-feature columns become user_features.parquet.", panel=_USERS)] = None,
    user_id_col: Annotated[Optional[str], _opt("--user-id-col", help="User id column of --user-table (default: user, user_id, userId, ...).", panel=_USERS)] = None,
    user_feature: Annotated[Optional[list[str]], _opt("--user-feature", help="COL:KIND[:OPTIONS], repeatable, as --item-feature (e.g. age:numeric:bins=5).", panel=_USERS)] = None,
    user_tags: Annotated[Optional[str], _opt("--user-tags", help="Long tag table (user, tag[, weight]).", panel=_USERS)] = None,
    user_table_sep: Annotated[Optional[str], _opt("--user-table-sep", help="Separator of --user-table (default: inferred).", panel=_USERS)] = None,
    user_table_encoding: Annotated[Optional[str], _opt("--user-table-encoding", help="Text encoding of --user-table.", panel=_USERS)] = None,
    user_table_columns: Annotated[Optional[str], _opt("--user-table-columns", help="Names for the columns of a --user-table without a header.", panel=_USERS)] = None,
    identity_features: Annotated[bool, _opt("--identity-features/--no-identity-features", help="Add one feature per id (item=ID, user=ID), LightFM's convention.", panel=_ITEMS)] = True,
    seed: Seed = 0,
    engine: EngineOpt = "local",
    spark_master: SparkMasterOpt = "local[*]",
    spark_conf: SparkConfOpt = None,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    from recli.cli._options import read_options
    from recli.cli._prep_output import emit
    from recli.data.clean import CleanOptions
    from recli.stages.prep import PrepOptions

    read = read_options(input_format, sep, quote, no_quote, encoding)
    opts = PrepOptions(
        input_format=read.fmt, sep=sep, quote=read.quote, encoding=read.encoding, has_header=not no_header,
        columns=_names(columns),
        clean=CleanOptions(user_col=user_col, item_col=item_col, rating_col=rating_col, time_col=time_col,
                           fill_rating=fill_rating, rating_range=_range(rating_range), on_invalid=on_invalid,
                           dedupe=dedupe, implicit=implicit, min_rating=min_rating, weight=weight),
        normalize=normalize, min_user_interactions=min_user_interactions,
        min_item_interactions=min_item_interactions, k_core=k_core, split=split, test_size=test_size,
        valid_size=valid_size, cut_date=cut_date, drop_cold=drop_cold, seed=seed,
        item_side=_side(item_table, item_id_col, item_feature, item_tags, item_table_sep, item_table_encoding,
                        item_table_columns, identity_features),
        user_side=_side(user_table, user_id_col, user_feature, user_tags, user_table_sep, user_table_encoding,
                        user_table_columns, identity_features))
    from recli.stages.spark.session import check_engine

    if check_engine(engine):
        from recli.cli._prep_spark import emit_spark

        return emit_spark(input, opts, out, output_format, force, (spark_master, spark_conf))
    emit(input, opts, out=out, output_format=output_format, fmt=format, force=force)
