"""``recli train TRAIN --model NAME -o MODEL``."""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer

from recli.cli._options import (
    Device,
    EncodingOpt,
    EngineOpt,
    ForceOpt,
    InputArg,
    InputFormatOpt,
    ItemColOpt,
    NoQuoteOpt,
    Quiet,
    QuoteOpt,
    RatingColOpt,
    SepOpt,
    SparkConfOpt,
    SparkMasterOpt,
    Threads,
    TimeColOpt,
    UserColOpt,
    Verbose,
)

app = typer.Typer()

Opt = typer.Option


@app.command(help="Train a model on interactions (user,item[,rating][,timestamp]) and write a model directory.")
def train(
    train_file: InputArg = "-",
    model: Annotated[Optional[str], Opt("--model", "-m", help="Model to train (see --list-models).")] = None,
    output: Annotated[Optional[str], Opt("--output", "-o", help="Model directory to write (atomically).")] = None,
    list_models: Annotated[bool, Opt("--list-models", help="List the registered models and exit.")] = False,
    show_params: Annotated[bool, Opt("--show-params", help="Show --model's parameters (default, bounds, help) and exit.")] = False,
    factors: Annotated[Optional[int], Opt("--factors", help="Latent factors (models that have them).")] = None,
    iterations: Annotated[Optional[int], Opt("--iterations", help="Training epochs.")] = None,
    regularization: Annotated[Optional[float], Opt("--regularization", help="L2 regularisation.")] = None,
    learning_rate: Annotated[Optional[float], Opt("--learning-rate", help="SGD learning rate.")] = None,
    alpha: Annotated[Optional[float], Opt("--alpha", help="Confidence scale (ALS) or model-specific alpha.")] = None,
    dtype: Annotated[Optional[str], Opt("--dtype", help="How factor models store their factors: float32, float16 or bfloat16 (arithmetic stays float32).")] = None,
    param: Annotated[Optional[List[str]], Opt("--param", "-p", help="Any model parameter as key=value (repeatable).")] = None,
    config_file: Annotated[Optional[str], Opt("--params", help="TOML/JSON file of model parameters (e.g. the best.toml 'recli tune' writes).")] = None,
    old_config: Annotated[Optional[str], Opt("--config", hidden=True, help="Deprecated alias of --params.")] = None,
    seed: Annotated[Optional[int], Opt("--seed", help="Random seed; same seed and --threads give the same model.")] = None,
    threads: Threads = 0,
    device: Device = "cpu",
    max_gpu_memory: Annotated[str, Opt("--max-gpu-memory", help="Device memory a GPU run may use, e.g. 8GB (default: the free memory less a margin); batches are sized to fit.")] = "",
    valid: Annotated[Optional[str], Opt("--valid", help="Validation interactions: --valid-metric is computed after each epoch.")] = None,
    valid_metric: Annotated[Optional[str], Opt("--valid-metric", help="Metric for --valid, e.g. ndcg@10, recall@20, rmse (default: rmse for rating models such as mf, else ndcg@10).")] = None,
    early_stopping: Annotated[int, Opt("--early-stopping", min=0, help="Stop after N epochs without validation improvement; keep the best epoch.")] = 0,
    item_features: Annotated[Optional[str], Opt("--item-features", help="Item features in long form item,feature,value (e.g. the item_features.parquet of recli prep); every item in it joins the catalogue. Models that learn from features only.")] = None,
    user_features: Annotated[Optional[str], Opt("--user-features", help="User features in long form user,feature,value; every user in it joins the vocabulary. Models that learn from features only.")] = None,
    context_col: Annotated[Optional[List[str]], Opt("--context-col", help="A categorical per-row context column (repeatable; fm): one-hot, a cell takes its latest row's value.")] = None,
    input_format: InputFormatOpt = None,
    sep: SepOpt = None,
    quote: QuoteOpt = None,
    no_quote: NoQuoteOpt = False,
    encoding: EncodingOpt = None,
    user_col: UserColOpt = None,
    item_col: ItemColOpt = None,
    rating_col: RatingColOpt = None,
    time_col: TimeColOpt = None,
    force: ForceOpt = False,
    engine: EngineOpt = "local",
    spark_master: SparkMasterOpt = "local[*]",
    spark_conf: SparkConfOpt = None,
    fmt: Annotated[Optional[str], Opt("--format", help="For --list-models/--show-params: table or json.")] = None,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    from recli.errors import ConfigError

    if list_models or show_params:
        return _listing(list_models, model, fmt)
    if old_config:
        from recli.console import log

        log.warning("'recli train --config' is deprecated; use --params (recli --config sets command defaults)")
        config_file = config_file or old_config
    if not output:
        raise ConfigError("no output model given", hint="pass -o MODEL (a directory to create)")
    from recli.cli._options import read_options
    from recli.stages.spark.session import check_engine

    read = read_options(input_format, sep, quote, no_quote, encoding, user_col, item_col, rating_col, time_col)
    common = {"factors": factors, "iterations": iterations, "regularization": regularization,
              "learning_rate": learning_rate, "alpha": alpha, "dtype": dtype}
    if check_engine(engine, device):
        return _run_spark(train_file, model, output, common, param or [], config_file, seed, read, force,
                          (spark_master, spark_conf), valid)
    _run(train_file, model, output, common, param or [], config_file, seed, threads, device,
         (valid, valid_metric, early_stopping), input_format, read, force,
         max_gpu_memory, {"item": item_features, "user": user_features}, context_col or [])


def _listing(list_models: bool, model: str | None, fmt: str | None) -> None:
    """``--list-models`` (the registry) or ``--show-params`` (one model's parameters)."""
    from recli.cli._render import check_listing_format, emit, emit_json, render_table
    from recli.errors import ConfigError

    listing = check_listing_format(fmt)
    if list_models:
        from recli.stages.train import describe_model_list

        rows = describe_model_list()
        if listing == "json":
            return emit_json(rows)
        return emit(render_table(["model", "devices", "values", "fold-in", "explain", "summary"],
                                 [[r["name"], ",".join(r["devices"]), r["values"], "yes" if r["fold_in"] else "no",
                                   "yes" if r["explain"] else "no", r["summary"]] for r in rows]))
    if not model:
        raise ConfigError("--show-params needs --model NAME", hint="e.g. recli train --model popular --show-params")
    from recli.models import get_model_class
    from recli.models.base import describe_params

    rows = describe_params(get_model_class(model).Config)
    if listing == "json":
        return emit_json(rows)
    return emit(render_table(["parameter", "type", "default", "range", "help"],
                             [[r["name"], r["type"], r["default"], _range(r), r["help"]] for r in rows]))


def _range(row: dict) -> str:
    if row["choices"]:
        return "|".join(row["choices"])
    lo, hi = row["min"], row["max"]
    low = "" if lo is None else (f"> {lo}" if row["exclusive_min"] else f">= {lo}")
    high = "" if hi is None else f"<= {hi}"
    return ", ".join(x for x in (low, high) if x)


def _run(train_file, model, output, common, params, config_file, seed, threads, device, validation,
         input_format, read=None, force=False, max_gpu_memory="", feature_files=None, context_cols=()) -> None:
    from recli.artifacts import check_destination, check_model_space, save_model
    from recli.console import log, progress
    from recli.stages import train as stage

    valid, valid_metric, early_stopping = validation
    cls, config = stage.resolve_config(model, common=common, params=params, config_file=config_file, seed=seed)
    stage.check_feature_options(cls, **(feature_files or {}))
    check_destination(output, force)
    features = stage.load_features(read, **(feature_files or {}))
    data, context = _load(train_file, input_format, read, cls, features, list(context_cols))
    valid_data = stage.load_validation(valid, data, read=read) if valid else None
    check_model_space(output, cls, config, *data.user_items.shape, data.user_items.nnz)
    with progress() as bar:
        task = bar.add_task(f"training {cls.name}", total=getattr(config, "iterations", None))

        def on_epoch(info):
            metrics = "".join(f"  {k} {v:.4f}" for k, v in info.metrics.items())
            loss = "" if info.loss is None else f"  loss {info.loss:.6g}"
            log.debug(f"epoch {info.epoch}:{loss}{metrics}  ({info.elapsed:.3f}s)")
            bar.advance(task)

        result = stage.train(data, cls, config, device=device, threads=threads, seed=seed, valid=valid_data,
                             early_stopping=early_stopping, on_epoch=on_epoch, valid_metric=valid_metric,
                             max_gpu_memory=max_gpu_memory, features=features, context=context)
    result.meta["train_source"] = train_file
    save_model(output, result.model, data.users, data.items, data.user_items, result.meta, force=force)
    log.info(stage.summary_line(result, output))


def _load(train_file, input_format, read, cls, features, context_cols: list[str]):
    """``(interactions, per-cell context or None)``: one read of the training file."""
    from recli.stages import context as ctx
    from recli.stages import train as stage

    if not context_cols:
        return stage.load_interactions(train_file, input_format, read, features), None
    ctx.check_context_model(cls)
    return ctx.load_with_context(train_file, input_format, read, context_cols, features)


def _run_spark(train_file, model, output, common, params, config_file, seed, read, force, spark, valid) -> None:
    """``--engine spark``: MLlib ALS (:mod:`recli.stages.spark.train`), saved as a normal model."""
    from recli.artifacts import check_destination, save_model
    from recli.console import log, progress
    from recli.errors import ConfigError
    from recli.stages import train as stage
    from recli.stages.spark import session
    from recli.stages.spark import train as spark_stage

    if valid:
        raise ConfigError("--valid and --early-stopping need --engine local", hint="drop --valid, or train with --engine local")
    rest, spark_params = spark_stage.split_params(params)
    cls, config = stage.resolve_config(model, common=common, params=rest, config_file=config_file, seed=seed)
    spark_stage.check_model(cls.name)
    check_destination(output, force)
    with progress() as bar:  # Spark's console progress is off: one bar of recli's while it runs
        bar.add_task("training als on Spark", total=None)
        result = spark_stage.train_als(session.session(session.settings(*spark)), train_file, read, config, spark_params)
    result.meta["train_source"] = train_file
    save_model(output, result.model, result.users, result.items, result.user_items, result.meta, force=force)
    ui = result.user_items
    log.info(f"trained als on Spark ({result.meta['spark']['master']}) on {ui.shape[0]} users x {ui.shape[1]} items "
             f"({ui.nnz} interactions) in {result.meta['fit_seconds']:.2f}s -> {output}")
