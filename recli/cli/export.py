"""``recli export MODEL --format spark -o DIR``."""

from __future__ import annotations

from typing import Annotated

import typer

from recli.cli._options import ForceOpt, Quiet, Verbose

app = typer.Typer()
Opt = typer.Option
FORMATS = ("spark",)


@app.command(help="Write a model in another system's format: --format spark writes a Spark ALSModel directory "
                  "(ALSModel.load(DIR) reads it) from an als model. See docs/spark.md.")
def export(
    model: Annotated[str, typer.Argument(help="Model directory written by 'recli train -o'.")],
    fmt: Annotated[str, Opt("--format", help="Target format: spark (an ALSModel directory).")] = "spark",
    output: Annotated[str, Opt("--output", "-o", help="Directory to write (replaced as a whole).")] = "",
    force: ForceOpt = False,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    from recli.artifacts import load_model
    from recli.console import log
    from recli.errors import ConfigError
    from recli.stages.spark.als_dir import export_als

    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r} is not one of: {', '.join(FORMATS)}", hint="use --format spark")
    if not output:
        raise ConfigError("no output directory given", hint="pass -o DIR (a directory to create)")
    rank = export_als(load_model(model), output, force=force)
    log.info(f"exported {model} as a Spark ALSModel (rank {rank}) -> {output}")
