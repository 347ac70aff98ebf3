"""Plain-text tables for listing commands (``--list-models``, ``--show-params``, ``info``).

What the user asked to see is the command's output, so it goes to stdout: an aligned
text table by default (greppable, no colour codes), JSON with ``--format json``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from recli.errors import ConfigError

LISTING_FORMATS = ("table", "json")


def check_listing_format(fmt: str | None) -> str:
    fmt = (fmt or "table").lower()
    if fmt not in LISTING_FORMATS:
        raise ConfigError(f"unknown format {fmt!r} for this listing", hint="use --format table or --format json")
    return fmt


def render_table(header: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(c) for c in header]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines) + "\n"


def emit(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def emit_json(value: Any) -> None:
    emit(json.dumps(value, indent=2, default=str) + "\n")
