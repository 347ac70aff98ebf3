"""Options shared by every command, defined once as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated, List, Optional

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

# The engine that runs prep / train / recommend --all-users (see docs/spark.md)
_SPARK = "Engine"
EngineOpt = Annotated[str, typer.Option("--engine", help="Engine: local (this machine) or spark (Apache Spark; needs the spark extra).", rich_help_panel=_SPARK)]
SparkMasterOpt = Annotated[str, typer.Option("--spark-master", help="With --engine spark: the master URL, e.g. local[*], spark://HOST:7077, yarn, k8s://... (ignored inside spark-submit).", rich_help_panel=_SPARK)]
SparkConfOpt = Annotated[Optional[List[str]], typer.Option("--spark-conf", help="With --engine spark: a Spark setting key=value (repeatable), e.g. spark.executor.memory=8g.", rich_help_panel=_SPARK)]

# Reading interactions and item tables: the same options on every command that reads them
# (prep, train, eval; turned into a recli.data.io.ReadOptions by read_options below).
_PARSE = "Input parsing"
SepOpt = Annotated[Optional[str], typer.Option("--sep", help="Input separator: comma, tab, semicolon, pipe, space or '::' (default: inferred from the first line).", rich_help_panel=_PARSE)]
QuoteOpt = Annotated[Optional[str], typer.Option("--quote", help="Quote character of delimited input (default: \" for CSV, none for tab-separated).", rich_help_panel=_PARSE)]
NoQuoteOpt = Annotated[bool, typer.Option("--no-quote", help="Delimited input has no quoting: '\"' is an ordinary character.", rich_help_panel=_PARSE)]
EncodingOpt = Annotated[Optional[str], typer.Option("--encoding", help="Text encoding of the input, e.g. latin-1, cp1252, utf-16 (default utf-8; a byte-order mark is detected).", rich_help_panel=_PARSE)]
UserColOpt = Annotated[Optional[str], typer.Option("--user-col", help="Column holding user ids (default: user, user_id, userId, ...).", rich_help_panel=_PARSE)]
ItemColOpt = Annotated[Optional[str], typer.Option("--item-col", help="Column holding item ids (default: item, item_id, movieId, ...).", rich_help_panel=_PARSE)]
RatingColOpt = Annotated[Optional[str], typer.Option("--rating-col", help="Column holding ratings, counts or weights (default: rating, count, ...).", rich_help_panel=_PARSE)]
TimeColOpt = Annotated[Optional[str], typer.Option("--time-col", help="Column holding timestamps, epoch seconds or ISO-8601 (default: timestamp, time, ...).", rich_help_panel=_PARSE)]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace an existing output folder even if recli did not write it (the whole folder is replaced).")]


def read_options(input_format: Optional[str] = None, sep: Optional[str] = None, quote: Optional[str] = None,
                 no_quote: bool = False, encoding: Optional[str] = None, user_col: Optional[str] = None,
                 item_col: Optional[str] = None, rating_col: Optional[str] = None, time_col: Optional[str] = None):
    """The parsing options above, checked, as a :class:`recli.data.io.ReadOptions`."""
    from recli.data.io import ReadOptions, check_encoding, check_format, check_quote, resolve_separator
    from recli.data.schema import ColumnNames

    resolve_separator(sep)
    return ReadOptions(fmt=check_format(input_format, "--input-format"), sep=sep, quote=check_quote(quote, no_quote),
                       encoding=check_encoding(encoding), columns=ColumnNames(user_col, item_col, rating_col, time_col))
