"""``recli tune TRAIN --model NAME --out DIR``: a hyper-parameter study (docs/tune.md)."""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer

from recli.cli._options import (
    Device,
    EncodingOpt,
    InputArg,
    InputFormatOpt,
    ItemColOpt,
    NoQuoteOpt,
    Quiet,
    QuoteOpt,
    RatingColOpt,
    SepOpt,
    Threads,
    TimeColOpt,
    UserColOpt,
    Verbose,
)

app = typer.Typer()

Opt = typer.Option
_SEARCH = "Search"
_STUDY = "Study storage"


@app.command(help="Search a model's hyper-parameters on a validation set (Optuna: TPE, random, grid, CMA-ES, NSGA-II), "
                  "with pruning and resume; writes trials.csv, best.toml and study.json into --out.")
def tune(
    train_file: InputArg = "-",
    model: Annotated[Optional[str], Opt("--model", "-m", help="Model to tune (see 'recli train --list-models').")] = None,
    out: Annotated[Optional[str], Opt("--out", "-o", help="Study folder: created, or continued when it holds this study.")] = None,
    valid: Annotated[Optional[str], Opt("--valid", help="Validation interactions (default: carved from TRAIN by --valid-split).")] = None,
    valid_split: Annotated[str, Opt("--valid-split", help="STRATEGY:SIZE of prep's splits, carved from TRAIN when --valid is not given.")] = "leave-random:0.2",
    cv: Annotated[int, Opt("--cv", help="Average K seeded validation splits of TRAIN.")] = 1,
    metric: Annotated[Optional[List[str]], Opt("--metric", help="Metric to optimise, e.g. ndcg@10, rmse, coverage@10, novelty@10, fit_time; repeat for a Pareto front.")] = None,
    trials: Annotated[Optional[int], Opt("--trials", help="Finished trials in the study, across resumes and workers (default 20; grid: its size).")] = None,
    timeout: Annotated[Optional[float], Opt("--timeout", help="Start no new trial after this many seconds.")] = None,
    seed: Annotated[int, Opt("--seed", help="Seed of the sampler and of the validation split.")] = 42,
    threads: Threads = 0,
    device: Device = "cpu",
    sampler: Annotated[Optional[str], Opt("--sampler", help="tpe, random, grid, cmaes or nsga2 (default: tpe; nsga2 with several metrics).", rich_help_panel=_SEARCH)] = None,
    pruner: Annotated[Optional[str], Opt("--pruner", help="median, hyperband or none (default: median for models that train in epochs).", rich_help_panel=_SEARCH)] = None,
    space: Annotated[Optional[str], Opt("--space", help="TOML file of the search space (replaces the model's default space).", rich_help_panel=_SEARCH)] = None,
    space_param: Annotated[Optional[List[str]], Opt("--space-param", help="One dimension, e.g. factors=int:16:256:log or similarity=choice:cosine,bm25 (repeatable).", rich_help_panel=_SEARCH)] = None,
    show_space: Annotated[bool, Opt("--show-space", help="Print --model's search space and exit.", rich_help_panel=_SEARCH)] = False,
    param: Annotated[Optional[List[str]], Opt("--param", "-p", help="A fixed model parameter key=value (repeatable).", rich_help_panel=_SEARCH)] = None,
    params_file: Annotated[Optional[str], Opt("--params", help="TOML/JSON file of fixed model parameters.", rich_help_panel=_SEARCH)] = None,
    storage: Annotated[Optional[str], Opt("--storage", help="sqlite:///study.db to share the study between processes (default: a journal file in --out).", rich_help_panel=_STUDY)] = None,
    study_name: Annotated[str, Opt("--study-name", help="Name of the study in --storage.", rich_help_panel=_STUDY)] = "recli",
    workers: Annotated[int, Opt("--workers", help="Worker processes on the study (needs --storage sqlite:///…).", rich_help_panel=_STUDY)] = 1,
    pick: Annotated[Optional[str], Opt("--pick", help="With several metrics: the front member best on this metric goes to best.toml (default: the first).")] = None,
    item_features: Annotated[Optional[str], Opt("--item-features", help="Item features in long form item,feature,value (as for recli train), for models that learn from features.")] = None,
    user_features: Annotated[Optional[str], Opt("--user-features", help="User features in long form user,feature,value (as for recli train).")] = None,
    final_train: Annotated[bool, Opt("--final-train", help="Retrain the best configuration on TRAIN + VALID into DIR/model.")] = False,
    plot: Annotated[bool, Opt("--plot", help="Write PNG charts into DIR (needs matplotlib).")] = False,
    fmt: Annotated[Optional[str], Opt("--format", help="text (summary on stderr) or json (the best result on stdout).")] = None,
    input_format: InputFormatOpt = None,
    sep: SepOpt = None,
    quote: QuoteOpt = None,
    no_quote: NoQuoteOpt = False,
    encoding: EncodingOpt = None,
    user_col: UserColOpt = None,
    item_col: ItemColOpt = None,
    rating_col: RatingColOpt = None,
    time_col: TimeColOpt = None,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    from recli.cli._options import read_options
    from recli.errors import ConfigError

    if show_space:
        return _show_space(model, space, space_param or [], fmt)
    if fmt not in (None, "text", "json"):
        raise ConfigError(f"unknown format {fmt!r}", hint="use --format text or --format json")
    if not model:
        raise ConfigError("no model chosen", hint="pass --model NAME (see 'recli train --list-models')")
    if not out:
        raise ConfigError("no study folder given", hint="pass --out DIR (created, or continued when it holds the study)")
    from recli.stages.tune import TuneOptions

    opts = TuneOptions(train_file, model, out, metric or ["ndcg@10"], trials, timeout, seed, threads, sampler, pruner,
                       storage, study_name, workers, pick, valid, valid_split, cv, space, space_param or [],
                       param or [], params_file, device,
                       read_options(input_format, sep, quote, no_quote, encoding, user_col, item_col, rating_col, time_col),
                       item_features, user_features)
    from recli.stages.tune_study import tune as run

    result = run(opts, final_train=final_train, plot=plot)
    if fmt == "json":
        from recli.cli._render import emit_json

        emit_json(result)


def _show_space(model: str | None, space_file: str | None, inline: list[str], fmt: str | None) -> None:
    """``--show-space``: the space a study of ``model`` would search."""
    from recli.cli._render import check_listing_format, emit, emit_json, render_table
    from recli.errors import ConfigError
    from recli.models import get_model_class
    from recli.stages import tune_space as ts

    if not model:
        raise ConfigError("--show-space needs --model NAME", hint="e.g. recli tune --model als --show-space")
    listing = check_listing_format(None if fmt == "text" else fmt)
    cls = get_model_class(model)
    space = ts.build_space(cls, {}, ts.load_space_file(space_file) if space_file else None, inline)
    rows = ts.space_to_dict(space)
    if listing == "json":
        return emit_json(rows)
    emit(render_table(["parameter", "type", "range", "scale"],
                      [[name.rstrip("_"), d["type"], _range(d), "log" if d.get("log") else
                        (f"step {d['step']}" if "step" in d else ("" if "values" in d else "linear"))]
                       for name, d in rows.items()]))


def _range(d: dict) -> str:
    return " | ".join(str(v) for v in d["values"]) if "values" in d else f"{d['low']} .. {d['high']}"
