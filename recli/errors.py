"""Typed errors that carry a next step.

Library code raises these; only :func:`recli.cli.main` (through the CLI group) turns
them into ``error: ...`` / ``hint: ...`` lines on stderr and an exit code.

Exit codes
----------
0  success
1  internal failure (a bug; rerun with ``--debug`` for the traceback)
2  bad usage or bad input data
3  a quality gate failed (``recli eval --fail-under``)
130 interrupted (Ctrl-C)
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_GATE = 3
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


class ModelFitError(RecliError):
    """Training diverged: the loss or the learned arrays hold NaN or infinity.

    The one error for a diverged fit, from every model and from the train stage's final
    check. Exit 2, not 1: divergence is not a bug in recli but a setting the user can fix
    (a smaller learning rate or alpha, more regularisation), and the hint says which.
    """
