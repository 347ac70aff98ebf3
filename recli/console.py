"""Everything people read goes to stderr: logging, warnings, progress and tables.

stdout is reserved for data. Progress bars draw only when stderr is a TTY and
``--quiet`` is off; ``NO_COLOR`` is honoured by rich.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from typing import Iterator

LOGGER_NAME = "recli"
log = logging.getLogger(LOGGER_NAME)

_state = {"verbosity": 0, "quiet": False, "debug": False}


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is *now* (CliRunner swaps it per call)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            prefix = "warning: " if record.levelno >= logging.WARNING else ""
            sys.stderr.write(prefix + record.getMessage() + "\n")
            sys.stderr.flush()
        except Exception:  # pragma: no cover - never let logging kill a run
            pass


def configure(verbosity: int | None = None, quiet: bool | None = None, debug: bool | None = None) -> None:
    """Set the log level once from ``-v``/``-q``/``--debug``; later calls refine it."""
    if verbosity is not None:
        _state["verbosity"] = max(_state["verbosity"], verbosity)
    if quiet is not None:
        _state["quiet"] = _state["quiet"] or quiet
    if debug is not None:
        _state["debug"] = _state["debug"] or debug
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        log.addHandler(_StderrHandler())
        log.propagate = False
    warnings.showwarning = _show_warning
    if _state["quiet"]:
        level = logging.WARNING
    elif _state["verbosity"] > 0 or _state["debug"]:
        level = logging.DEBUG
    else:
        level = logging.INFO
    log.setLevel(level)


_PYTHON_SHOWWARNING = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """How a Python warning is shown in a recli run: one ``warning:`` log line that names
    its category and package, never a raw ``file:line: Category`` block with a source
    line. Known causes are fixed or translated where they arise; this is the safety net
    for the rest. ``--debug`` keeps Python's own format."""
    if is_debug():
        _PYTHON_SHOWWARNING(message, category, filename, lineno, file, line)
        return
    log.warning(f"{message} ({category.__name__} from {_package_of(filename)})")


def _package_of(filename: str) -> str:
    """The top-level package of the module at ``filename`` (its file name if unknown)."""
    for name, module in list(sys.modules.items()):
        if getattr(module, "__file__", None) == filename:
            return name.split(".")[0]
    return os.path.basename(filename)


def reset() -> None:
    """Back to defaults (used between CLI invocations in one process, e.g. tests)."""
    _state.update(verbosity=0, quiet=False, debug=False)
    configure()


def is_debug() -> bool:
    return bool(_state["debug"]) or os.environ.get("RECLI_DEBUG", "") not in ("", "0")


# Width of tables written to a non-terminal stderr (CI logs, files) when COLUMNS is unset:
# rich would assume 80 columns and cut a wide metrics table to "0.0…" cells.
OFF_TTY_WIDTH = 200


def stderr_console():
    """A rich Console bound to the current stderr (never stdout)."""
    from rich.console import Console

    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):
        tty = False
    width = None if tty or os.environ.get("COLUMNS") else OFF_TTY_WIDTH
    return Console(file=sys.stderr, stderr=True, no_color=bool(os.environ.get("NO_COLOR")), width=width)


def show_progress() -> bool:
    try:
        return (not _state["quiet"]) and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class _NoProgress:
    def add_task(self, description: str, total: float | None = None, **_: object) -> int:
        return 0

    def advance(self, task_id: int, advance: float = 1) -> None:
        pass

    def update(self, task_id: int, **_: object) -> None:
        pass


@contextlib.contextmanager
def progress() -> Iterator[object]:
    """A rich Progress on stderr when it is a TTY and not quiet, else a no-op stand-in.

    Use as ``with progress() as p: t = p.add_task("epochs", total=n); p.advance(t)``.
    """
    if not show_progress():
        yield _NoProgress()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr_console(),
        redirect_stdout=False,
        redirect_stderr=False,
        transient=True,
    ) as p:
        yield p


def print_table(title: str, rows: list[tuple[str, str]] | list[list[str]], header: list[str] | None = None) -> None:
    """Render a small table for people on stderr (skipped with --quiet)."""
    if _state["quiet"]:
        return
    from rich.table import Table

    table = Table(title=title, show_header=header is not None)
    for name in header or ["", ""]:
        table.add_column(name)
    for row in rows:
        table.add_row(*[str(c) for c in row])
    stderr_console().print(table)
