"""Typed errors that carry a next step.

Library code raises these; only :func:`recli.cli.main` (through the CLI group) turns
them into ``error: ...`` / ``hint: ...`` lines on stderr and an exit code.

Exit codes
----------
0  success
1  internal failure (a bug; rerun with ``--debug`` for the traceback)
2  bad usage or bad input data
3  a quality gate failed (``recli eval --fail-under``, ``recli bench --check parity``)
4  an environment fault: no space left, permission denied, read-only file system,
   too many open files (not a bug in recli, not bad input: the machine needs fixing)
130 interrupted (Ctrl-C)
"""

from __future__ import annotations

import contextlib
import errno
from typing import Iterator

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_GATE = 3
EXIT_ENVIRONMENT = 4
EXIT_INTERRUPTED = 130


class RecliError(Exception):
    """Base class: a message, a hint saying what to try, and an exit code."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, hint: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code


class InputError(RecliError):
    """The input data is missing, empty, malformed or inconsistent."""


class ConfigError(RecliError):
    """Options or configuration values are invalid or conflict."""


class OutputError(RecliError):
    """An output cannot be written (permissions, binary data to a terminal, ...)."""


class ArtifactError(RecliError):
    """A model file is corrupt, truncated, of a newer format or mismatched."""


class DeviceUnavailable(RecliError):
    """The requested compute device (e.g. ``gpu``) cannot be used here."""


class QualityGateError(RecliError):
    """A metric fell below a ``--fail-under`` threshold."""

    exit_code = EXIT_GATE


class ParityError(QualityGateError):
    """``recli bench --check parity``: a backend's results differ from the CPU kernels'
    beyond the stated tolerance. ``rows`` holds the full comparison."""

    def __init__(self, message: str, hint: str | None = None, rows: list | None = None):
        super().__init__(message, hint)
        self.rows = rows or []


class ModelFitError(RecliError):
    """Training diverged: the loss or the learned arrays hold NaN or infinity.

    The one error for a diverged fit, from every model and from the train stage's final
    check. Exit 2, not 1: divergence is not a bug in recli but a setting the user can fix
    (a smaller learning rate or alpha, more regularisation), and the hint says which.
    """


class EnvironmentFault(RecliError):
    """The machine, not recli or its input, stopped the run: a full disk, a permission, a
    read-only file system, too many open files."""

    exit_code = EXIT_ENVIRONMENT


# errno -> (what happened, what to do about it)
_FAULTS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("no space left on the device", "free some space, or write to another file system"),
    errno.EDQUOT: ("the disk quota is exceeded", "free some space within your quota, or write elsewhere"),
    errno.EACCES: ("permission denied", "check the permissions of the path, or write somewhere you may"),
    errno.EPERM: ("operation not permitted", "check the permissions of the path, or write somewhere you may"),
    errno.EROFS: ("the file system is read-only", "write to a writable location"),
    errno.EMFILE: ("too many open files", "raise the limit ('ulimit -n'), or close other programs"),
    errno.ENFILE: ("too many open files in the system", "close other programs, or raise the system's file limit"),
}


def environment_fault(exc: OSError, action: str | None = None) -> EnvironmentFault | None:
    """The :class:`EnvironmentFault` for an ``OSError`` caused by the environment, else
    ``None``. ``action`` says what was being done ("writing the model to m.model")."""
    if exc.errno not in _FAULTS:
        return None
    what, hint = _FAULTS[exc.errno]
    where = action or (f"accessing {exc.filename}" if exc.filename else "reading or writing files")
    return EnvironmentFault(f"{where}: {what}", hint=hint)


@contextlib.contextmanager
def writing(action: str) -> Iterator[None]:
    """Turn environment ``OSError``s raised inside the block into an
    :class:`EnvironmentFault` that names ``action`` (e.g. "writing recs.csv")."""
    try:
        yield
    except OSError as exc:
        fault = environment_fault(exc, action)
        if fault is None:
            raise
        raise fault from exc


def check_free_space(path: str, needed: int, what: str) -> None:
    """Refuse before spending the compute when the file system holding ``path`` has less
    than ``needed`` bytes free (plus a 1% / 1 MiB margin)."""
    import os
    import shutil
    from pathlib import Path

    p = Path(path).resolve()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        free = shutil.disk_usage(p if p.is_dir() else p.parent).free
    except OSError:
        return  # unknown: the write itself will tell
    margin = max(1 << 20, needed // 100)
    if needed + margin > free:
        raise EnvironmentFault(f"{what} needs about {_size(needed)} but only {_size(free)} is free on {p if p.is_dir() else p.parent}",
                               hint=f"free some space there, or write elsewhere ({os.sep}tmp may be on another disk)")


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
