"""Options shared by every command, defined once as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from recli import console


def _set_quiet(value: bool) -> bool:
    if value:
        console.configure(quiet=True)
    return value


def _set_verbose(value: int) -> int:
    if value:
        console.configure(verbosity=value)
    return value


# Inputs are typed as str, not Path: "-" must mean stdin (typer's Path + allow_dash
# rejects "-" in some versions).
InputArg = Annotated[str, typer.Argument(help="Input file, or '-' for stdin.", show_default=True)]
OutputOpt = Annotated[str, typer.Option("--output", "-o", help="Output file, or '-' for stdout.")]
FormatOpt = Annotated[Optional[str], typer.Option("--format", help="Output format: csv, tsv, parquet, jsonl (default: from the extension, else csv).")]
InputFormatOpt = Annotated[Optional[str], typer.Option("--input-format", help="Input format: csv, tsv, parquet, jsonl (default: from the extension or sniffed).")]
Seed = Annotated[int, typer.Option("--seed", help="Random seed; the same seed and thread count give the same output.")]
Threads = Annotated[int, typer.Option("--threads", help="Threads for Numba and BLAS (0 = all cores).", min=0)]
Device = Annotated[str, typer.Option("--device", help="Compute device: cpu, gpu or auto.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors on stderr.", callback=_set_quiet, is_eager=True)]
Verbose = Annotated[int, typer.Option("--verbose", "-v", count=True, help="More detail on stderr (repeatable).", callback=_set_verbose, is_eager=True)]
