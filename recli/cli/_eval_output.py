"""Presentation for ``recli eval``: the stderr tables and the machine-readable output."""

from __future__ import annotations

import json
import math

import polars as pl

from recli.console import log, print_table
from recli.data.io import check_format, format_from_path, write_stdout_bytes, write_table
from recli.data.plain_text import write_bytes
from recli.errors import ConfigError, QualityGateError

MACHINE_FORMATS = ("json", "csv", "tsv", "jsonl", "parquet")


def _fmt(value) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def _p(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.2e}" if value < 1e-3 else f"{value:.3f}"


def _key(row) -> str:
    return row["metric"] if row["k"] is None else f"{row['metric']}@{row['k']}"


def publish(report, output: str | None, fmt: str | None, per_user: str | None) -> None:
    """Show ``report`` on stderr, write its results (``--format``/``-o``) and per-user values
    (``--per-user``), then stop with exit code 3 when a ``--fail-under`` gate failed."""
    show_report(report)
    results = report.results
    if report.cold is not None and report.cold.height:
        results = pl.concat([results.with_columns(pl.lit("all").alias("segment")), report.cold], how="vertical")
    write_results(results, output, fmt)
    if per_user is not None:
        write_table(report.per_user, per_user)
    if report.failures:
        raise QualityGateError("quality gate failed: " + "; ".join(report.failures),
                               hint="the model is below a --fail-under threshold (exit code 3); improve it or lower the gate")


def show_report(report) -> None:
    """Notes, warnings, the results table (one row per model) and, with several models,
    the significance table, all on stderr."""
    for w in report.warnings:
        log.warning(w)
    log.info(f"evaluated {report.users_rule}")
    for note in report.notes:
        log.info(note)
    rows = report.results.to_dicts()
    ks = list(dict.fromkeys(r["k"] for r in rows))
    for k in ks:
        _metric_table(report.labels, [r for r in rows if r["k"] == k],
                      f"recli eval @ k={k}" if k is not None else "recli eval: rating metrics")
    if len(report.labels) > 1 and any(r["p_ttest"] is not None for r in rows):
        _significance_table(report.labels, rows)
    if report.cold is not None:
        cold = report.cold.to_dicts()
        for segment in dict.fromkeys(r["segment"] for r in cold):
            for k in dict.fromkeys(r["k"] for r in cold if r["segment"] == segment):
                _metric_table(report.labels, [r for r in cold if r["segment"] == segment and r["k"] == k],
                              f"recli eval: {segment} @ k={k}")


def _metric_table(labels, rows, title) -> None:
    """One row per model, one column per metric (values with CIs below when asked)."""
    names = list(dict.fromkeys(r["metric"] for r in rows))
    table = []
    for label in labels:
        cells = {r["metric"]: r for r in rows if r["model"] == label}
        users = max((c["users"] or 0 for c in cells.values()), default=0)
        line = [label, str(users)]
        for name in names:
            c = cells.get(name)
            text = _fmt(c["value"]) if c else "-"
            if c and c["ci_low"] is not None:
                text += f"\n{c['ci_low']:.3f}–{c['ci_high']:.3f}"
            line.append(text)
        table.append(line)
    print_table(title, table, header=["model", "users", *names])


def _significance_table(labels, rows) -> None:
    """One row per (model, metric@k) against the first model: difference and p-values."""
    base = {_key(r): r for r in rows if r["model"] == labels[0]}
    table = []
    for r in rows:
        if r["model"] == labels[0] or r["p_ttest"] is None:
            continue
        b = base.get(_key(r))
        diff = r["value"] - b["value"] if b else float("nan")
        table.append([f"{r['model']} vs {labels[0]}", _key(r), f"{diff:+.4f}", _p(r["p_ttest"]), _p(r["p_wilcoxon"])])
    print_table("paired tests against the first model (per-user values)", table,
                header=["comparison", "metric", "difference", "p (t-test)", "p (Wilcoxon)"])


def write_results(results: pl.DataFrame, output: str | None, fmt: str | None) -> None:
    """Write one row per model x metric x k when ``--format`` or ``-o`` is given."""
    if output is None and fmt is None:
        return
    dest = output or "-"
    if fmt is not None and fmt.lower() not in MACHINE_FORMATS:
        raise ConfigError(f"unknown --format {fmt!r}", hint=f"use one of: {', '.join(MACHINE_FORMATS)}")
    fmt = (fmt or ("json" if dest.lower().endswith(".json") else format_from_path(dest)) or "csv").lower()
    if fmt != "json":
        write_table(results, dest, check_format(fmt))
        return
    write_bytes((json.dumps(_json_rows(results), indent=1) + "\n").encode(), dest)


def _json_rows(results: pl.DataFrame) -> list[dict]:
    """Rows as dicts with NaN turned into null (JSON has no NaN)."""
    clean = lambda v: None if isinstance(v, float) and math.isnan(v) else v  # noqa: E731
    return [{k: clean(v) for k, v in row.items()} for row in results.to_dicts()]


def write_metric_list(fmt: str | None) -> None:
    """``--list-metrics``: plain text on stdout, or JSON with ``--format json``."""
    from recli.metrics.registry import describe_metrics, metrics_text

    if fmt is not None and fmt.lower() == "json":
        write_stdout_bytes((json.dumps(describe_metrics(), indent=1) + "\n").encode())
    else:
        write_stdout_bytes(metrics_text().encode())
