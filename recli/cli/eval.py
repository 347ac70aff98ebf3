"""``recli eval``: score recommendation files against a test set (and gate CI on it)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from recli.cli._options import (EncodingOpt, InputFormatOpt, ItemColOpt, NoQuoteOpt, QuoteOpt, Quiet, RatingColOpt,
                                Seed, SepOpt, Threads, UserColOpt, Verbose)

app = typer.Typer(add_completion=False)

_EPILOG = ("Exit codes: 0 ok, 2 bad input or options, 3 a --fail-under gate failed. "
           "Formulas and edge cases: recli eval --list-metrics.")


@app.command(epilog=_EPILOG)
def eval(  # noqa: A001 - the command is called eval
    recs: Annotated[Optional[list[str]], typer.Argument(
        help="Recommendation files (user,item and rank or score; file order otherwise); '-' = stdin.",
        show_default=False)] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="Evaluate a trained model directory directly (instead of RECS): test users scored in batches, training items excluded.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Users scored per batch with --model.")] = 1024,
    test: Annotated[Optional[str], typer.Option("--test", "-t", help="Truth: user,item[,rating]; '-' = stdin.")] = None,
    train: Annotated[Optional[str], typer.Option("--train", help="TRAIN interactions: seen-item count, --exclude-train, AUC candidates, novelty, popularity.")] = None,
    items: Annotated[Optional[str], typer.Option("--items", help="Item features (item + a column like genres 'a|b|c') for ild.")] = None,
    item_features: Annotated[str, typer.Option("--item-features", help="Feature column of --items.")] = "genres",
    predictions: Annotated[Optional[list[str]], typer.Option("--predictions", help="user,item,prediction file for rmse/mae; once per RECS, in order.")] = None,
    k: Annotated[str, typer.Option("--k", "-k", help="Cutoffs, e.g. 5,10,20.")] = "10",
    metrics: Annotated[Optional[str], typer.Option("--metrics", "-m", help="Comma-separated metrics (default: precision,recall,ndcg,map,mrr,hit; + rmse,mae with predictions).")] = None,
    relevance_threshold: Annotated[Optional[float], typer.Option("--relevance-threshold", help="Only test rows with rating >= this are relevant.")] = None,
    graded: Annotated[bool, typer.Option("--graded", help="Use the test rating as the NDCG gain.")] = False,
    only_recommended: Annotated[bool, typer.Option("--only-recommended", help="Evaluate only users present in RECS (default: every test user with a relevant item).")] = False,
    exclude_train: Annotated[bool, typer.Option("--exclude-train", help="Drop recommended items seen in TRAIN before scoring.")] = False,
    compat: Annotated[str, typer.Option("--compat", help="Reproduce another library's definitions: none or implicit.")] = "none",
    label: Annotated[Optional[list[str]], typer.Option("--label", help="Name of each RECS file, in order (default: file name).")] = None,
    bootstrap: Annotated[int, typer.Option("--bootstrap", min=0, help="Bootstrap resamples of users for 95% CIs (0 = off).")] = 0,
    seed: Seed = 0,
    per_user: Annotated[Optional[str], typer.Option("--per-user", help="Write per-user metric values to this file.")] = None,
    fail_under: Annotated[Optional[str], typer.Option("--fail-under", help="Gate: e.g. ndcg@10=0.30,recall@20=0.2; exit 3 if any metric is below.")] = None,
    fmt: Annotated[Optional[str], typer.Option("--format", help="Machine output: json, csv, tsv, jsonl, parquet.")] = None,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Write machine output here ('-' = stdout).")] = None,
    input_format: InputFormatOpt = None,
    sep: SepOpt = None,
    quote: QuoteOpt = None,
    no_quote: NoQuoteOpt = False,
    encoding: EncodingOpt = None,
    user_col: UserColOpt = None,
    item_col: ItemColOpt = None,
    rating_col: RatingColOpt = None,
    list_metrics: Annotated[bool, typer.Option("--list-metrics", help="List the metrics with formulas and edge cases, then exit.")] = False,
    threads: Threads = 0,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    """Score top-k recommendations against a test set: ranking, beyond-accuracy and rating metrics.

    Several RECS files give one table with a paired t-test and Wilcoxon test against the
    first. Results go to stderr as a table; --format/-o write one row per model x metric x k.
    """
    from recli.cli import _eval_output as out
    from recli.errors import ConfigError, QualityGateError
    from recli.metrics.registry import COMPAT_MODES, parse_gates, parse_ks, parse_metrics

    if list_metrics:
        out.write_metric_list(fmt)
        return
    if test is None:
        raise ConfigError("--test is required", hint="pass the truth table: recli eval RECS --test TEST")
    if compat not in COMPAT_MODES:
        raise ConfigError(f"unknown --compat {compat!r}", hint=f"use one of: {', '.join(COMPAT_MODES)}")
    if model is not None:
        _check_model_options(recs, train, items, predictions, exclude_train, only_recommended, compat)
    elif not recs and sys.stdin.isatty():
        raise ConfigError("no RECS file given and nothing piped in",
                          hint="pass recommendation files, e.g. recli eval recs.csv --test test.csv, or pipe them in")
    recs = recs or ([] if model is not None else ["-"])
    ks, names, gates = parse_ks(k), (parse_metrics(metrics) if metrics else None), parse_gates(fail_under)
    labels = _labels(recs, label) if model is None else []
    _check_stdin(recs + [test, train, items] + list(predictions or []))
    if threads:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    from recli.cli._options import read_options
    from recli.data.io import ReadOptions, read_interactions
    from recli.data.schema import ITEM, RATING, USER
    from recli.stages.evaluate import evaluate, failed_gates

    # --sep/--quote/--encoding/--*-col describe the data tables (--test, --train, --items);
    # RECS and --predictions are recli outputs: their columns are found by the usual names
    opts = read_options(input_format, sep, quote, no_quote, encoding, user_col, item_col, rating_col)
    read = lambda p: None if p is None else read_interactions(p, opts, roles=(USER, ITEM, RATING))  # noqa: E731
    read_recs = lambda p: read_interactions(p, ReadOptions(fmt=opts.fmt), roles=(USER, ITEM))  # noqa: E731
    items = None if items is None else read_interactions(items, opts, roles=(ITEM,), required=(ITEM,))
    if model is not None:
        report = _evaluate_model(model, read(test), label, ks, names, relevance_threshold, graded, bootstrap, seed,
                                 per_user is not None, gates, batch_size, threads)
    else:
        report = evaluate(list(zip(labels, [read_recs(p) for p in recs])), read(test), train=read(train), items=items,
                          predictions=[read_recs(p) for p in predictions or []], ks=ks, metrics=names,
                          relevance_threshold=relevance_threshold, graded=graded, only_recommended=only_recommended,
                          exclude_train=exclude_train, compat=compat, item_feature=item_features,
                          bootstrap=bootstrap, seed=seed, per_user=per_user is not None, gates=gates)
    out.show_report(report)
    out.write_results(report.results, output, fmt)
    if per_user is not None:
        from recli.data.io import write_table

        write_table(report.per_user, per_user)
    failures = failed_gates(report.results, gates)
    if failures:
        raise QualityGateError("quality gate failed: " + "; ".join(failures),
                               hint="the model is below a --fail-under threshold (exit code 3); improve it or lower the gate")


def _labels(recs: list[str], given: list[str] | None) -> list[str]:
    from recli.errors import ConfigError

    if given:
        if len(given) != len(recs):
            raise ConfigError(f"{len(given)} --label for {len(recs)} RECS files", hint="give one --label per RECS file, in order")
        return list(given)
    names = []
    for p in recs:
        name = Path(p).name
        for ext in (".gz", ".csv", ".tsv", ".parquet", ".jsonl", ".json", ".ndjson"):
            name = name[: -len(ext)] if name.lower().endswith(ext) else name
        names.append("stdin" if p == "-" else name)
    return names if len(set(names)) == len(names) else ["stdin" if p == "-" else p for p in recs]


def _check_stdin(paths: list[Optional[str]]) -> None:
    from recli.errors import ConfigError

    if sum(1 for p in paths if p == "-") > 1:
        raise ConfigError("only one input can be read from stdin ('-')", hint="write the others to files")


def _check_model_options(recs, train, items, predictions, exclude_train, only_recommended, compat) -> None:
    from recli.errors import ConfigError

    clashes = [name for name, given in (("RECS files", bool(recs)), ("--train", train is not None),
                                        ("--items", items is not None), ("--predictions", bool(predictions)),
                                        ("--exclude-train", exclude_train), ("--only-recommended", only_recommended),
                                        ("--compat", compat != "none")) if given]
    if clashes:
        raise ConfigError(f"--model cannot be combined with {', '.join(clashes)}",
                          hint="--model scores every test user and excludes the model's own training items; "
                               "to use those options, write recommendations with recli recommend and evaluate the file")


def _evaluate_model(path, test, label, ks, names, threshold, graded, bootstrap, seed, per_user, gates, batch_size, threads):
    from recli.artifacts import load_model
    from recli.backend import threads_context
    from recli.stages.evaluate_model import evaluate_model

    name = (label or [Path(path).name])[0]
    with threads_context(threads):
        return evaluate_model(load_model(path), test, label=name, ks=ks, metrics=names, relevance_threshold=threshold,
                              graded=graded, bootstrap=bootstrap, seed=seed, per_user=per_user, gates=gates,
                              batch_size=batch_size)
