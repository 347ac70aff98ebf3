"""``recli recommend MODEL``: top-k items per user, or similar items per item."""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer

from recli.cli._options import (
    Device,
    EncodingOpt,
    EngineOpt,
    FormatOpt,
    ItemColOpt,
    NoQuoteOpt,
    Quiet,
    QuoteOpt,
    SepOpt,
    SparkConfOpt,
    SparkMasterOpt,
    Threads,
    UserColOpt,
    Verbose,
)

app = typer.Typer()
Opt = typer.Option


@app.command(help="Recommend k items per user (user,item,score,rank), similar items per item "
                  "(item,similar_item,score,rank), or score given pairs (user,item,score), "
                  "from a model written by 'recli train'.")
def recommend(
    model: Annotated[str, typer.Argument(help="Model directory written by 'recli train -o'.")],
    users: Annotated[Optional[str], Opt("--users", help="Users to serve: a file with a 'user' column or one id per line; '-' for stdin.")] = None,
    user: Annotated[Optional[List[str]], Opt("--user", help="A user id (repeatable).")] = None,
    all_users: Annotated[bool, Opt("--all-users", help="Every training user, streamed in batches.")] = False,
    k: Annotated[int, Opt("-k", "--k", help="Items per user.")] = 10,
    include_seen: Annotated[bool, Opt("--include-seen", help="Keep items the user interacted with in training.")] = False,
    exclude_items: Annotated[Optional[str], Opt("--exclude-items", help="Never recommend these items (file: 'item' column or one per line).")] = None,
    only_items: Annotated[Optional[str], Opt("--only-items", help="Recommend only these items (file: 'item' column or one per line).")] = None,
    history: Annotated[Optional[str], Opt("--history", help="user,item[,rating] rows: new users are folded in, known users' rows merged with their training rows; alone, serves its users. '-' for stdin.")] = None,
    strict: Annotated[bool, Opt("--strict", help="Unknown users (or items) are an error instead of a warning.")] = False,
    fallback: Annotated[Optional[str], Opt("--fallback", help="'popular': serve unknown users the most popular items.")] = None,
    similar_items: Annotated[Optional[List[str]], Opt("--similar-items", help="Items to find similar items for (repeatable).")] = None,
    items_file: Annotated[Optional[str], Opt("--items-file", help="Items to find similar items for (file: 'item' column or one per line).")] = None,
    item_table: Annotated[Optional[str], Opt("--item-table", help="New items to score alongside the catalogue, from their attributes (through the model's fitted feature transform) or item,feature,value rows; feature models only.")] = None,
    pairs: Annotated[Optional[str], Opt("--pairs", help="Score these user,item pairs (user,item,score, input order; mf: predicted ratings); '-' for stdin.")] = None,
    clip: Annotated[bool, Opt("--clip/--no-clip", help="With --pairs: clip predicted ratings to the training rating range (rating models).")] = True,
    context: Annotated[Optional[List[str]], Opt("--context", help="COL=VALUE context of the scores (repeatable), for a model trained with --context-col (fm).")] = None,
    explain: Annotated[bool, Opt("--explain", help="Add the history items that contribute most to each recommendation.")] = False,
    explain_top: Annotated[int, Opt("--explain-top", help="Explaining items per recommendation (with --explain).")] = 3,
    batch_size: Annotated[int, Opt("--batch-size", help="Users scored at once; bounds memory at batch-size x items scores.")] = 1024,
    output: Annotated[str, Opt("--output", "-o", help="Output file, or '-' for stdout.")] = "-",
    fmt: FormatOpt = None,
    sep: SepOpt = None,
    quote: QuoteOpt = None,
    no_quote: NoQuoteOpt = False,
    encoding: EncodingOpt = None,
    user_col: UserColOpt = None,
    item_col: ItemColOpt = None,
    threads: Threads = 0,
    device: Device = "cpu",
    engine: EngineOpt = "local",
    spark_master: SparkMasterOpt = "local[*]",
    spark_conf: SparkConfOpt = None,
    force: Annotated[bool, Opt("--force", help="With --engine spark: replace an existing -o folder.")] = False,
    verify: Annotated[bool, Opt("--verify/--no-verify", help="Check the model files' sha256 (once per file version; sizes are always checked).")] = True,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    from recli.artifacts import load_model
    from recli.backend import get_backend
    from recli.stages import recommend as stage

    read = None
    if pairs or history or item_table:  # only then: reading tables loads Polars, which serving ids does not need
        from recli.cli._options import read_options

        read = read_options(None, sep, quote, no_quote, encoding, user_col, item_col)

    request = stage.RecommendRequest(users=users, user=user, all_users=all_users, k=k, include_seen=include_seen,
                                     exclude_items=exclude_items, only_items=only_items, history=history,
                                     strict=strict, fallback=fallback, similar_items=similar_items,
                                     items_file=items_file, explain=explain, explain_top=explain_top,
                                     batch_size=batch_size, output=output, fmt=fmt, threads=threads, pairs=pairs,
                                     clip=clip, read=read, item_table=item_table, context=context)
    from recli.stages.spark.session import check_engine

    if check_engine(engine, device):
        return _recommend_spark(model, request, (spark_master, spark_conf), force, verify)
    stage.recommend(load_model(model, get_backend(device, threads), checksums=None if verify else False), request)


def _recommend_spark(model, request, spark, force, verify) -> None:
    """``--engine spark --all-users``: blocked top-k on Spark (:mod:`recli.stages.spark.recommend`)."""
    from recli.artifacts import load_model
    from recli.console import log, progress
    from recli.stages.spark import recommend as spark_stage
    from recli.stages.spark import session

    mf = load_model(model, checksums=None if verify else False)
    spark_stage.check_request(mf.model, request)
    with progress() as bar:
        bar.add_task("recommending on Spark", total=None)
        rows = spark_stage.recommend_all(session.session(session.settings(*spark)), mf, request.k, request.output,
                                         batch_size=request.batch_size, include_seen=request.include_seen, force=force)
    log.info(f"wrote {rows} recommendations for {len(mf.users)} users -> {request.output}")
