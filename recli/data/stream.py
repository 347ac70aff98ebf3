"""Write a table that arrives in batches, without holding it all in memory.

CSV/TSV/JSON lines are appended batch by batch (header once) to stdout or to a temporary
file renamed into place at the end (:func:`recli.data.io.atomic_path`), so a failed run
leaves no partial file; a ``.gz`` file name or a ``csv.gz``-style format gzips them.
Parquet is written row group by row group with pyarrow when it is
installed, else collected and written once.
"""

from __future__ import annotations

import gzip
import io
import queue
import threading
from typing import IO, Callable, Iterable, Iterator, TypeVar

import polars as pl

from recli.data.io import atomic_path, check_stdout, is_binary, output_format, split_compression, wants_gzip, write_stdout_bytes

T = TypeVar("T")
_DONE = object()


def ahead(produce: Callable[[], Iterable[T]], depth: int = 2) -> Iterator[T]:
    """The items of ``produce()``, computed in a worker thread up to ``depth`` items ahead
    of the consumer: the next batch is computed (kernels that release the GIL) while this
    thread formats and writes the last one. An exception in the worker is raised here;
    when the consumer stops early, the worker stops at its next item."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in produce():
                if not put((True, item)):
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            put((False, exc))
            return
        put((True, _DONE))

    worker = threading.Thread(target=work, name="recli-ahead", daemon=True)
    worker.start()
    try:
        while True:
            ok, item = slots.get()
            if not ok:
                raise item
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        worker.join()


def _text_bytes(df: pl.DataFrame, fmt: str, header: bool) -> bytes:
    fmt = split_compression(fmt)[0]
    buf = io.BytesIO()
    if fmt == "jsonl":
        df.write_ndjson(buf)
    else:
        df.write_csv(buf, separator="\t" if fmt == "tsv" else ",", include_header=header)
    return buf.getvalue()


def _write_text(frames: Iterator[pl.DataFrame], empty: pl.DataFrame, fmt: str, sink: IO[bytes] | None) -> int:
    rows, first = 0, True
    for df in frames:
        if df.height == 0:
            continue
        data = _text_bytes(df, fmt, header=first)
        write_stdout_bytes(data) if sink is None else sink.write(data)
        rows += df.height
        first = False
    if first and fmt != "jsonl":  # no rows at all: still a valid table with its header
        data = _text_bytes(empty, fmt, header=True)
        write_stdout_bytes(data) if sink is None else sink.write(data)
    return rows


def _write_parquet(frames: Iterator[pl.DataFrame], empty: pl.DataFrame, target) -> int:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow is optional
        collected = list(frames)
        df = pl.concat(collected) if collected else empty
        df.write_parquet(target)
        return df.height
    writer, rows = None, 0
    for df in frames:
        table = df.to_arrow()
        if writer is None:
            writer = pq.ParquetWriter(target, table.schema)
        writer.write_table(table)
        rows += df.height
    if writer is None:
        empty.write_parquet(target)
    else:
        writer.close()
    return rows


def write_stream(frames: Iterable[pl.DataFrame], dest: str, fmt: str | None, empty: pl.DataFrame) -> int:
    """Write every frame of ``frames`` to ``dest`` (``-`` = stdout); returns the row count.

    ``empty`` is a zero-row frame with the output schema, written when no rows come.
    """
    fmt = output_format(dest, fmt)
    frames = iter(frames)
    gz = wants_gzip(dest, fmt)
    if dest == "-":
        check_stdout(fmt)
        if is_binary(fmt):
            buf = io.BytesIO()
            rows = _write_parquet(frames, empty, buf)
            write_stdout_bytes(buf.getvalue())
            return rows
        if gz:  # gzip members concatenate: one member per batch keeps stdout streaming
            return _write_text(frames, empty, fmt, _GzipStdout())
        return _write_text(frames, empty, fmt, None)
    with atomic_path(dest) as tmp:
        if is_binary(fmt):
            return _write_parquet(frames, empty, str(tmp))
        opener = gzip.open if gz else open
        with opener(tmp, "wb") as fh:
            return _write_text(frames, empty, fmt, fh)


class _GzipStdout:
    """A sink that writes each chunk to stdout as its own gzip member."""

    def write(self, data: bytes) -> None:
        write_stdout_bytes(gzip.compress(data))
