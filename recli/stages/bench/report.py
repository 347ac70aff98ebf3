"""The results of ``recli bench`` as a table: one row per configuration × measure.

The schema (``COLUMNS``, in this order) is stable; a change bumps ``SCHEMA_VERSION``.
CSV holds the rows with the environment in the last columns; JSON is
``{"schema_version", "environment", "notes", "rows"}``; markdown is the environment as a
list, then the table, then the notes.
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl

SCHEMA_VERSION = 3
# versions read back by --from-report: 1 had no ``dtype`` / ``ndcg_delta`` (every row float32)
READABLE_VERSIONS = (1, 2, 3)

# name -> (Polars dtype, meaning). ``ratio`` is recli ÷ peer per repeat pair, median; on
# peer rows only. Times: below 1 means recli is faster; users/s: above 1.
COLUMNS: dict[str, tuple[Any, str]] = {
    "dataset": (pl.Utf8, "data set: file name, preset or USERSxITEMSxNNZ"),
    "users": (pl.Int64, "training users"),
    "items": (pl.Int64, "training items"),
    "interactions": (pl.Int64, "training interactions (non-zeros)"),
    "library": (pl.Utf8, "recli, implicit or lightfm"),
    "model": (pl.Utf8, "recli model name (empty for prep)"),
    "threads": (pl.Int64, "--threads value (0 = every core)"),
    "factors": (pl.Int64, "factors (empty for models without factors)"),
    "device": (pl.Utf8, "cpu, gpu or auto"),
    "dtype": (pl.Utf8, "--dtype: how the model stores its factors, float32, float16 or bfloat16 (empty for prep)"),
    "measure": (pl.Utf8, "prep, fit, recommend_all, recommend_one or eval"),
    "unit": (pl.Utf8, "unit of value: s/iteration, s, users/s or ms"),
    "value": (pl.Float64, "median over the repeats (fit: the median epoch, steady state)"),
    "values": (pl.Utf8, "every repeat's value, ';'-separated"),
    "repeats": (pl.Int64, "repeats measured"),
    "ratio": (pl.Float64, "recli ÷ this peer, median of the per-repeat pairs (peer rows)"),
    "compile_s": (pl.Float64, "the warm-up call: JIT compile or Numba cache load (recli)"),
    "total_s": (pl.Float64, "wall seconds of the timed call (fit: every epoch)"),
    "cpu_s": (pl.Float64, "CPU seconds of the timed call, all threads"),
    "peak_rss_mb": (pl.Float64, "peak resident memory of the measuring process, MiB"),
    "ndcg_at_10": (pl.Float64, "NDCG@10 on the seeded holdout"),
    "recall_at_10": (pl.Float64, "recall@10 on the seeded holdout"),
    "ndcg_delta": (pl.Float64, "ndcg_at_10 − that of the same configuration at float32 (recli rows at another dtype)"),
    "gflops": (pl.Float64, "achieved GFLOP/s (ALS fit, all-users recommend)"),
    "gbps": (pl.Float64, "achieved GB/s against the byte floor"),
    "gemm_roof": (pl.Float64, "gflops ÷ this machine's GEMM GFLOP/s (--machine)"),
    "copy_roof": (pl.Float64, "gbps ÷ this machine's copy GB/s (--machine)"),
    "load_start": (pl.Float64, "1-minute load average at the start of the pair (max over repeats)"),
    "load_end": (pl.Float64, "1-minute load average at the end of the pair (max over repeats)"),
    "other_cpu_s": (pl.Float64, "CPU seconds other processes used during the pair (max)"),
    "probe_gflops": (pl.Float64, "the slowest CPU speed probe around the pairs, GFLOP/s (256×256 float32 products)"),
    "noisy": (pl.Boolean, "other processes kept more than half the cores busy during a pair, or its probe ran "
                          "below 0.85 of the run's fastest"),
    "status": (pl.Utf8, "ok, skipped or failed"),
    "note": (pl.Utf8, "why a cell was skipped or failed"),
    "machine": (pl.Utf8, "CPU model and cores"),
    "versions": (pl.Utf8, "library versions"),
}


def frame(rows: list[dict], environment: dict) -> pl.DataFrame:
    """The rows as a frame with exactly ``COLUMNS`` (missing values null)."""
    machine = f"{environment.get('cpu', '')}, {environment.get('cores', '')} cores"
    versions = ", ".join(f"{k} {v}" for k, v in environment.get("versions", {}).items())
    data = {name: [] for name in COLUMNS}
    for row in rows:
        row = {**row, "machine": machine, "versions": versions}
        if isinstance(row.get("values"), list):
            row["values"] = ";".join(f"{v:.6g}" for v in row["values"])
        for name in COLUMNS:
            data[name].append(row.get(name))
    return pl.DataFrame(data, schema={name: dtype for name, (dtype, _) in COLUMNS.items()})


def to_json(rows: list[dict], environment: dict, notes: list[str]) -> str:
    df = frame(rows, environment).drop("machine", "versions")
    return json.dumps({"schema_version": SCHEMA_VERSION, "environment": environment, "notes": notes,
                       "rows": df.to_dicts()}, indent=2, default=str) + "\n"


def to_csv(rows: list[dict], environment: dict) -> str:
    return frame(rows, environment).write_csv()


_SHOWN = ("dataset", "library", "model", "threads", "factors", "device", "dtype", "measure", "unit", "value", "ratio",
          "compile_s", "peak_rss_mb", "ndcg_at_10", "ndcg_delta", "recall_at_10", "gflops", "gemm_roof", "load_start",
          "probe_gflops", "noisy", "status")


def cells(rows: list[dict], environment: dict) -> tuple[list[str], list[list[str]]]:
    """The human table: the columns people compare, numbers rounded."""
    df = frame(rows, environment)
    out, skipped = [], set()
    for row in df.iter_rows(named=True):
        if row["status"] == "skipped":  # one line per skipped cell, not one per measure
            key = tuple(row[c] for c in ("dataset", "library", "model", "threads", "factors", "device", "dtype"))
            if key in skipped:
                continue
            skipped.add(key)
            row = {**row, "measure": "(all)" if row["model"] else row["measure"]}
        out.append([_fmt(row[c], c) for c in _SHOWN])
    return list(_SHOWN), out


def _fmt(value: Any, column: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "noisy" if value else ""
    if isinstance(value, float):
        if column in ("value", "gflops") and value >= 100:
            return f"{value:,.0f}"
        if column == "ndcg_delta":
            return f"{value:+.4f}"
        return f"{value:.4f}" if column.startswith(("ndcg", "recall")) else f"{value:.3g}"
    return str(value)


def to_markdown(rows: list[dict], environment: dict, notes: list[str]) -> str:
    header, body = cells(rows, environment)
    env = environment
    lines = [f"- machine: {env.get('cpu')}, {env.get('cores')} cores, {env.get('memory_gib')} GiB, {env.get('platform')}",
             "- versions: " + ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items()),
             f"- load average: {env.get('load_start')} at the start, {env.get('load_end')} at the end"]
    if env.get("thread_env"):
        lines.append("- thread settings: " + ", ".join(f"{k}={v}" for k, v in env["thread_env"].items()))
    if env.get("probe_fastest_gflops"):
        lines.append(f"- fastest CPU speed probe: {env['probe_fastest_gflops']:.1f} GFLOP/s (a row is noisy below 0.85 of it)")
    for t, roof in (env.get("roofs") or {}).items():
        lines.append(f"- roofs at {t} threads: GEMM {roof['gemm_gflops']:.1f} GFLOP/s, copy {roof['copy_gbps']:.1f} GB/s")
    lines += ["", "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in body]
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def render(rows: list[dict], environment: dict, notes: list[str], fmt: str) -> str:
    """The full results as ``fmt`` (csv, json or markdown)."""
    if fmt == "csv":
        return to_csv(rows, environment)
    if fmt == "json":
        return to_json(rows, environment, notes)
    return to_markdown(rows, environment, notes)


# the columns the charts read; a saved report without one of them is not a bench report
NEEDED = ("dataset", "interactions", "library", "model", "threads", "factors", "device", "measure", "unit", "value",
          "ratio", "status")
_KEY = ("dataset", "library", "model", "threads", "factors", "device", "dtype", "measure")


def read_reports(paths: list[str]) -> list[dict]:
    """The rows of reports saved with ``-o FILE.json`` or ``-o FILE.csv``, in the order given;
    a configuration × library × measure in several reports counts once, as the last one gives it."""
    rows: dict[tuple, dict] = {}
    for path in paths:
        for row in _read_report(path):
            rows[tuple(row.get(c) for c in _KEY)] = row
    return list(rows.values())


def _read_report(path: str) -> list[dict]:
    from pathlib import Path

    from recli.errors import InputError

    hint = "give a report written by recli bench -o FILE.json (or FILE.csv)"
    p = Path(path)
    if not p.is_file():
        raise InputError(f"report {path!r} does not exist", hint=hint)
    if p.suffix.lower() not in (".json", ".csv"):
        raise InputError(f"cannot read report {path!r}: only JSON and CSV reports can be read back", hint=hint)
    try:
        if p.suffix.lower() == ".json":
            doc = json.loads(p.read_text(encoding="utf-8"))
            rows = doc.get("rows") if isinstance(doc, dict) and doc.get("schema_version") in READABLE_VERSIONS else None
        else:
            df = pl.read_csv(p, infer_schema=False)
            numbers = [c for c in df.columns if c in COLUMNS and COLUMNS[c][0] in (pl.Int64, pl.Float64)]
            rows = df.with_columns(pl.col(c).cast(COLUMNS[c][0], strict=False) for c in numbers).to_dicts()
    except (OSError, ValueError, pl.exceptions.PolarsError) as exc:  # JSONDecodeError is a ValueError
        raise InputError(f"cannot read report {path!r}: {exc}", hint=hint) from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise InputError(f"{path!r} is not a recli bench report (schema version {SCHEMA_VERSION})", hint=hint)
    for row in rows:
        missing = [c for c in NEEDED if c not in row]
        if missing:
            raise InputError(f"{path!r} is not a recli bench report: no column {missing[0]!r}", hint=hint)
    # CSV reads an empty model (prep rows) as null; runs hold "". A version 1 report has no
    # dtype: its model rows were float32
    return [{**r, "model": r["model"] or "", "dtype": r.get("dtype") or ("float32" if r["model"] else None)}
            for r in rows]
