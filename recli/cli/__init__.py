"""The ``recli`` command line: one small module per command, registered here.

Commands are imported lazily by name so ``recli --help`` never loads Numba or Polars.
Errors are translated in one place (:class:`RecliGroup`): ``error: ...`` and
``hint: ...`` on stderr, a documented exit code, and a traceback only with ``--debug``.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
from typing import Annotated, Optional

import typer
from typer import _click as click  # typer >= 0.29 vendors its own click
from typer._click.exceptions import UsageError
from typer.core import TyperGroup

from recli import __version__, console
from recli.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, RecliError

# name -> (module, one-line help). A command is listed here when its issue lands.
COMMANDS: dict[str, tuple[str, str]] = {
    "prep": ("recli.cli.prep", "Clean, filter and split an interaction log into train/test files."),
    "train": ("recli.cli.train", "Train a model and write a model directory."),
    "recommend": ("recli.cli.recommend", "Top-k recommendations (or similar items) from a model."),
    "info": ("recli.cli.info", "Show a model's metadata."),
    "eval": ("recli.cli.eval", "Score recommendations against a test set (ranking, beyond-accuracy, rating metrics)."),
    "tune": ("recli.cli.tune", "Search a model's hyper-parameters (Optuna) with pruning, resume and parallel workers."),
    "bench": ("recli.cli.bench", "Measure speed, memory and quality of models on your data, side by side with peers."),
    "export": ("recli.cli.export", "Write a model in another system's format (a Spark ALSModel directory)."),
    "import": ("recli.cli.import_model", "Turn a Spark ALSModel directory into a recli model."),
}


def _emit_error(message: str, hint: str | None) -> None:
    sys.stderr.write(f"error: {message}\n")
    if hint:
        sys.stderr.write(f"hint: {hint}\n")
    sys.stderr.flush()


def _silence_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so interpreter shutdown stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


class RecliGroup(TyperGroup):
    """Lazily loads command modules and maps exceptions to exit codes."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> Optional[click.Command]:
        if name not in COMMANDS:
            return None
        module = importlib.import_module(COMMANDS[name][0])
        cmd = typer.main.get_command(module.app)
        cmd.help = cmd.help or COMMANDS[name][1]
        cmd.short_help = COMMANDS[name][1]
        from recli.config import name_environment

        name_environment(name, cmd)
        return cmd

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except UsageError as exc:
            _emit_error(exc.format_message(), f"run '{info_name} --help' to see the valid options")
            raise typer.Exit(EXIT_USAGE) from None

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RecliError as exc:
            if console.is_debug():
                raise
            _emit_error(exc.message, exc.hint)
            raise typer.Exit(exc.exit_code) from None
        except UsageError as exc:
            cmd = exc.ctx.command_path if exc.ctx is not None else "recli"
            _emit_error(exc.format_message(), f"run '{cmd} --help' to see the valid options")
            raise typer.Exit(EXIT_USAGE) from None
        except (typer.Exit, typer.Abort):
            raise
        except BrokenPipeError:
            _silence_stdout()
            raise typer.Exit(0) from None
        except KeyboardInterrupt:
            _emit_error("interrupted", None)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as exc:
            if console.is_debug():
                raise
            fault = _os_fault(exc) if isinstance(exc, OSError) else None
            if fault is not None:
                _emit_error(fault.message, fault.hint)
                raise typer.Exit(fault.exit_code) from None
            _emit_error(f"internal error: {type(exc).__name__}: {exc}", "rerun with --debug to see the traceback, and report it")
            raise typer.Exit(EXIT_INTERNAL) from None


def _os_fault(exc: OSError) -> RecliError | None:
    """An environment fault (exit 4), or a directory given where a file was wanted (exit
    2); ``None`` for an ``OSError`` that is a bug."""
    from recli.errors import OutputError, environment_fault

    if isinstance(exc, IsADirectoryError):
        return OutputError(f"{exc.filename or 'the path'} is a directory, not a file",
                           hint="give a file name (e.g. -o out/recs.csv)")
    return environment_fault(exc)


app = typer.Typer(
    cls=RecliGroup,
    name="recli",
    help="recli: build, evaluate and serve recommender systems from the shell.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"auto_envvar_prefix": "RECLI", "help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"recli {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False,
    config: Annotated[Optional[str], typer.Option("--config", envvar="RECLI_CONFIG", help="TOML file of defaults, one table per command.")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors on stderr.")] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More detail on stderr.")] = 0,
) -> None:
    """recli: build, evaluate and serve recommender systems from the shell."""
    console.reset()
    console.configure(verbosity=verbose, quiet=quiet, debug=debug)
    if config:
        from recli.config import load_config_file, to_default_map

        data = load_config_file(config)
        # only the commands the file configures are loaded (each import costs start-up time)
        commands = {name: ctx.command.get_command(ctx, name) if name in data else None for name in COMMANDS}
        ctx.default_map = to_default_map(data, commands)


def main() -> None:
    """Console-script entry point."""
    if "--debug" in sys.argv[1:]:
        console.configure(debug=True)
    try:
        app()
    except BrokenPipeError:  # raised while flushing at exit
        _silence_stdout()
        sys.exit(0)
    finally:
        # The command is done; what is alive now lives until exit. Frozen, it is skipped by
        # the interpreter's exit-time garbage collections, which otherwise walk every object
        # of Numba, Polars and pydantic (0.1-0.3 s after recli eval); reference counting
        # still frees it.
        gc.freeze()
