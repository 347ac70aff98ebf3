"""Output of ``recli bench``: the human table on stderr, the full results on request."""

from __future__ import annotations

from recli import console
from recli.errors import ConfigError, ParityError, writing
from recli.stages.bench.spec import FORMATS

_EXT = {".csv": "csv", ".json": "json", ".md": "markdown", ".markdown": "markdown"}


def check_output(fmt: str | None, output: str | None) -> str | None:
    """The format of the full results (``None``: only the table on stderr)."""
    if fmt is not None:
        fmt = fmt.lower()
        if fmt not in FORMATS:
            raise ConfigError(f"unknown format {fmt!r} for recli bench", hint=f"use one of: {', '.join(FORMATS)}")
        return fmt
    if output is None:
        return None
    for ext, name in _EXT.items():
        if output.lower().endswith(ext):
            return name
    return "csv"


def _write(text: str, output: str | None) -> None:
    import sys

    if output in (None, "-"):
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    with writing(f"writing {output}"), open(output, "w", encoding="utf-8") as fh:
        fh.write(text)


def run_bench(req, fmt: str | None, output: str | None, plot: str | None) -> None:
    from recli.stages.bench import bench
    from recli.stages.bench.plots import require_matplotlib, write_plots
    from recli.stages.bench.report import cells, render

    if plot is not None:
        require_matplotlib()  # before the run, not after it
    with console.progress() as p:
        result = bench(req, progress=p)
    header, body = cells(result.rows, result.environment)
    env = result.environment
    console.print_table(f"recli bench on {env['cpu']}, {env['cores']} cores (load {env['load_start']} → "
                        f"{env['load_end']})", body, header)
    for note in result.notes:
        console.log.info(note)
    if fmt is not None:
        _write(render(result.rows, result.environment, result.notes, fmt), output)
    if plot is not None:
        with writing(f"writing charts into {plot}"):
            paths = write_plots(result.rows, plot)
        console.log.info(f"charts: {', '.join(str(p) for p in paths)}")


def plot_reports(reports: list[str], plot: str | None, measuring: bool) -> None:
    """``--from-report``: the charts of saved reports, nothing measured."""
    from recli.stages.bench.plots import plot_reports as draw

    if plot is None:
        raise ConfigError("--from-report draws charts and needs --plot DIR", hint="e.g. recli bench --from-report medium.json --plot charts")
    if measuring:
        raise ConfigError("--from-report charts saved reports and measures nothing: it takes no DATA or --synthetic",
                          hint="drop --from-report to measure, or drop the data to chart the reports")
    with writing(f"writing charts into {plot}"):
        paths = draw(reports, plot)
    console.log.info(f"charts: {', '.join(str(p) for p in paths)}")


def run_parity(req, check: str, fmt: str | None, output: str | None) -> None:
    from recli.stages.bench.parity import parity

    if check.lower() != "parity":
        raise ConfigError(f"unknown check {check!r}", hint="use --check parity")
    if req.dtypes != ["float32"]:
        raise ConfigError("--check parity compares the backends at float32: --dtype does not apply to it",
                          hint="drop --dtype, or measure the types with recli bench --dtype … without --check")
    try:
        rows = parity(req)
    except ParityError as exc:
        _show_parity(exc.rows, fmt, output)
        raise
    _show_parity(rows, fmt, output)


def _show_parity(rows: list[dict], fmt: str | None, output: str | None) -> None:
    import json

    import polars as pl

    cols = ["model", "backend", "factors_max_rel_diff", "scores_max_rel_diff", "top10_overlap", "status", "note"]
    body = [[("" if r.get(c) is None else f"{r[c]:.3g}" if isinstance(r.get(c), float) else str(r[c])) for c in cols]
            for r in rows]
    console.print_table("recli bench --check parity (against the cpu backend)", body, cols)
    if fmt is None:
        return
    df = pl.DataFrame([{c: r.get(c) for c in cols} for r in rows],
                      schema={c: (pl.Float64 if "diff" in c or "overlap" in c else pl.Utf8) for c in cols})
    if fmt == "csv":
        text = df.write_csv()
    elif fmt == "json":
        text = json.dumps({"schema_version": 1, "rows": df.to_dicts()}, indent=2) + "\n"
    else:
        text = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n" + "".join(
            "| " + " | ".join(r) + " |\n" for r in body)
    _write(text, output)
