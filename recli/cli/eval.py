"""``recli eval``: score recommendation files against a test set (and gate CI on it)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from recli.cli._options import (
    Device,
    EncodingOpt,
    InputFormatOpt,
    ItemColOpt,
    NoQuoteOpt,
    Quiet,
    QuoteOpt,
    RatingColOpt,
    Seed,
    SepOpt,
    Threads,
    UserColOpt,
    Verbose,
)

app = typer.Typer(add_completion=False)

_EPILOG = ("Exit codes: 0 ok, 2 bad input or options, 3 a --fail-under gate failed. "
           "Formulas and edge cases: recli eval --list-metrics.")


def _feature_col(feature_col: Optional[str], deprecated: Optional[str]) -> Optional[str]:
    """``--feature-col``, or its deprecated name ``--item-features`` (with a warning)."""
    from recli.console import log
    from recli.errors import ConfigError

    if deprecated is None:
        return feature_col
    if feature_col is not None:
        raise ConfigError("--item-features is the deprecated name of --feature-col; give only one",
                          hint="drop --item-features")
    log.warning("--item-features is deprecated; use --feature-col")
    return deprecated


@app.command(epilog=_EPILOG)
def eval(  # noqa: A001 - the command is called eval
    recs: Annotated[Optional[list[str]], typer.Argument(
        help="Recommendation files (user,item and rank or score; file order otherwise); '-' = stdin.",
        show_default=False)] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="Evaluate a trained model directory directly (instead of RECS): test users scored in batches, training items excluded.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Users scored per batch with --model.")] = 1024,
    test: Annotated[Optional[str], typer.Option("--test", "-t", help="Truth: user,item[,rating]; '-' = stdin.")] = None,
    train: Annotated[Optional[str], typer.Option("--train", help="TRAIN interactions: seen-item count, --exclude-train, AUC candidates, novelty, popularity.")] = None,
    items: Annotated[Optional[str], typer.Option("--items", help="Item features for ild: item + a column like genres 'a|b|c', or prep's item_features.parquet (item, feature, value).")] = None,
    feature_col: Annotated[Optional[str], typer.Option("--feature-col", help="Feature column of --items (default genres); with item_features.parquet, only the features COL=... .")] = None,
    item_features: Annotated[Optional[str], typer.Option("--item-features", hidden=True, help="Deprecated name of --feature-col.")] = None,
    cold_report: Annotated[bool, typer.Option("--cold-report", help="Also score cold items / warm items / cold users / warm users (in TEST, not in TRAIN; needs --train) and the coverage of cold items.")] = False,
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
    device: Device = "cpu",
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    """Score top-k recommendations against a test set: ranking, beyond-accuracy and rating metrics.

    Several RECS files give one table with a paired t-test and Wilcoxon test against the
    first. Results go to stderr as a table; --format/-o write one row per model x metric x k.
    """
    from recli.cli import _eval_output as out
    from recli.cli._options import read_options
    from recli.stages.evaluate import EvalRequest, run_eval

    if list_metrics:
        out.write_metric_list(fmt)
        return
    feature_col = _feature_col(feature_col, item_features)
    report = run_eval(EvalRequest(
        recs=list(recs or []), test=test, model=model, batch_size=batch_size, train=train, items=items,
        feature_col=feature_col, cold_report=cold_report, predictions=list(predictions or []), k=k, metrics=metrics,
        relevance_threshold=relevance_threshold, graded=graded, only_recommended=only_recommended,
        exclude_train=exclude_train, compat=compat, labels=label, bootstrap=bootstrap, seed=seed,
        per_user=per_user is not None, fail_under=fail_under, input_format=input_format, threads=threads,
        device=device, read=read_options(input_format, sep, quote, no_quote, encoding, user_col, item_col, rating_col)))
    out.publish(report, output, fmt, per_user)
