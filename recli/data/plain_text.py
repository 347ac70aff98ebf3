"""Text output without Polars: CSV fields and float32 values formatted exactly as
Polars' ``write_csv`` formats them, and bytes written to stdout or atomically to a file.

Serving a few users (``recli recommend MODEL --user ID``) writes through here, so that
path never pays Polars' import time; its bytes equal the Polars path's (checked in tests).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Iterator

import numpy as np

from recli.data.io import atomic_path, write_stdout_bytes

if TYPE_CHECKING:
    from recli.data.vocab import Vocab


def csv_field(text: str) -> str:
    """Polars' CSV quoting: quote empty strings and those holding a comma, quote or line break."""
    if text == "" or any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def format_float32(value: Any) -> str:
    """A float32 as Polars writes it in CSV: the shortest round-trip digits, positional for
    decimal exponents -6..12 (``5.0``, ``0.00001``), scientific otherwise (``1e-7``,
    ``1.5e+20``); ``NaN``, ``inf``, ``-inf``."""
    v = np.float32(value)
    if np.isnan(v):
        return "NaN"
    if np.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "-0.0" if np.signbit(v) else "0.0"
    sci = np.format_float_scientific(v, unique=True, trim="-", exp_digits=1)
    if -6 <= int(sci.rsplit("e", 1)[1]) <= 12:
        return np.format_float_positional(v, unique=True, trim="0")
    return sci


def csv_rows(ids: list[str], vocab: Vocab, batches: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> Iterator[list[str]]:
    """``owner,item,score,rank`` CSV fields from top-k batches ``(positions, items, scores)``:
    ``ids[position]`` owns row ``b`` of ``items``/``scores``; item ``-1`` is padding; ranks
    count from 1. The same rows, in the same order, as ``recommend.to_frame`` gives."""
    for pos, items, values in batches:
        for b, p in enumerate(pos):
            valid = np.flatnonzero(items[b] >= 0)
            names = vocab.lookup_list(items[b][valid])
            owner = csv_field(ids[p])
            for j, name in zip(valid, names, strict=True):
                yield [owner, csv_field(name), format_float32(values[b, j]), str(j + 1)]


def write_bytes(data: bytes, output: str) -> None:
    """``data`` to stdout (``-``) or to ``output``, renamed into place only once written."""
    if output == "-":
        write_stdout_bytes(data)
    else:
        with atomic_path(output) as tmp:
            tmp.write_bytes(data)


def write_csv_lines(header: Iterable[str], rows: Iterable[list[str]], output: str) -> int:
    """Write already formatted CSV ``rows`` under ``header`` as Polars' ``write_csv`` would
    (``\\n`` line ends, a final newline); returns the row count."""
    lines = [",".join(header)]
    lines += [",".join(row) for row in rows]
    write_bytes(("\n".join(lines) + "\n").encode("utf-8"), output)
    return len(lines) - 1
