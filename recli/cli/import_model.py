"""``recli import SPARK_MODEL_DIR -o MODEL`` (the module is not ``import``: a Python keyword)."""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer

from recli.cli._options import EncodingOpt, ForceOpt, ItemColOpt, NoQuoteOpt, Quiet, QuoteOpt, SepOpt, UserColOpt, Verbose

app = typer.Typer()
Opt = typer.Option


@app.command(name="import", help="Turn a Spark ALSModel directory (ALSModel.save, or 'recli export --format spark') "
                                 "into a recli als model that every command reads. See docs/spark.md.")
def import_model(
    source: Annotated[str, typer.Argument(help="Directory saved by ALSModel.save() (metadata/, userFactors/, itemFactors/).")],
    output: Annotated[str, Opt("--output", "-o", help="Model directory to write (atomically).")] = "",
    train: Annotated[Optional[str], Opt("--train", help="Training interactions: their items are filtered from recommendations (seen items).")] = None,
    param: Annotated[Optional[List[str]], Opt("--param", "-p", help="An als parameter key=value (repeatable), e.g. regularization and alpha, used to fold in new users.")] = None,
    sep: SepOpt = None,
    quote: QuoteOpt = None,
    no_quote: NoQuoteOpt = False,
    encoding: EncodingOpt = None,
    user_col: UserColOpt = None,
    item_col: ItemColOpt = None,
    force: ForceOpt = False,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    from recli.artifacts import check_destination, save_model
    from recli.cli._options import read_options
    from recli.console import log
    from recli.errors import ConfigError
    from recli.stages.spark.als_dir import import_als
    from recli.stages.train import resolve_config

    if not output:
        raise ConfigError("no output model given", hint="pass -o MODEL (a directory to create)")
    _, config = resolve_config("als", params=param or [])
    check_destination(output, force)
    read = read_options(None, sep, quote, no_quote, encoding, user_col, item_col) if train else None
    model, users, items, user_items, meta = import_als(source, config, train, read)
    save_model(output, model, users, items, user_items, meta, force=force)
    log.info(f"imported a Spark ALSModel ({len(users)} users x {len(items)} items, rank {model.config.factors}) -> {output}")
