"""Read and write tables in csv, tsv, parquet and jsonl (optionally gzip-compressed).

``-`` means stdin for inputs and stdout for outputs. The format comes from ``fmt`` if
given, else from the file extension, else (stdin) from sniffing: Parquet starts with
``PAR1``, gzip with ``1f 8b``, JSON lines with ``{``; otherwise delimited text whose
separator is inferred from the first line.

Every column of delimited text is read as a string, so ids keep leading zeros and are
never cast to float; callers cast measure columns explicitly and count failures.

Text is UTF-8 unless ``encoding`` says otherwise; a byte-order mark is honoured whatever
``encoding`` says (UTF-8 BOM dropped, UTF-16 LE/BE decoded). Undecodable bytes are an
error naming the line. The quote character is ``"`` except for tab-separated text, which
has none by default (a TSV field may hold ``"Weird Al" Yankovic``).

Outputs go to a temporary file beside the target and are renamed into place. A format
``csv.gz``/``tsv.gz``/``jsonl.gz``, or a file name ending ``.gz``, gzip-compresses text.
"""

from __future__ import annotations

import codecs
import contextlib
import gzip
import io
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Callable, Iterator, Sequence

if TYPE_CHECKING:  # Polars loads lazily: writing a small CSV (one user's top-k) never needs it
    import polars as pl

    from recli.data.schema import ColumnNames

from recli.errors import InputError, OutputError, environment_fault

FORMATS = ("csv", "tsv", "parquet", "jsonl")
# Text formats may be gzip-compressed: "csv.gz" writes gzip, and any input is gunzipped when it starts with 1f 8b.
COMPRESSED = tuple(f"{f}.gz" for f in FORMATS if f != "parquet")
EXTENSIONS = {"csv": ".csv", "tsv": ".tsv", "parquet": ".parquet", "jsonl": ".jsonl"}
# The quote setting that means "a double quote, except none for tab-separated text".
QUOTE_AUTO = "auto"
# A byte-order mark and the encoding of what follows it (the mark itself is dropped).
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
_CHUNK = 1 << 24  # UTF-8 validation reads this many bytes at a time (bounded memory)
SEPARATORS = {"comma": ",", ",": ",", "tab": "\t", "\\t": "\t", "\t": "\t", "semicolon": ";", ";": ";",
              "pipe": "|", "|": "|", "::": "::", "double-colon": "::", "space": " ", " ": " "}
# Bytes that cannot occur in text data: stands in for the two-character "::" separator.
_DOUBLE_COLON_SUB = "\x1f"


def format_from_path(path: str) -> str | None:
    """Infer a format from a file name; ``None`` when the extension says nothing."""
    name = path.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for ext, fmt in ((".csv", "csv"), (".tsv", "tsv"), (".tab", "tsv"), (".parquet", "parquet"),
                     (".pq", "parquet"), (".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json", "jsonl")):
        if name.endswith(ext):
            return fmt
    return None


def check_format(fmt: str | None, option: str = "--format") -> str | None:
    """``fmt`` lower-cased when it is one of :data:`FORMATS` or :data:`COMPRESSED`."""
    if fmt is None:
        return None
    fmt = fmt.lower()
    if fmt not in FORMATS + COMPRESSED:
        raise InputError(f"unknown format {fmt!r} for {option}", hint=f"use one of: {', '.join(FORMATS + COMPRESSED)}")
    return fmt


def split_compression(fmt: str) -> tuple[str, bool]:
    """``"csv.gz"`` → ``("csv", True)``; ``"csv"`` → ``("csv", False)``."""
    return fmt.removesuffix(".gz"), fmt.endswith(".gz")


def check_quote(quote: str | None, no_quote: bool = False) -> str | None:
    """The quote setting from ``--quote CHAR`` / ``--no-quote``: a character, ``None`` (no
    quoting) or :data:`QUOTE_AUTO` when neither is given."""
    if no_quote and quote is not None:
        raise InputError("--quote and --no-quote exclude each other", hint="drop one of them")
    if no_quote:
        return None
    if quote is None or quote == QUOTE_AUTO:
        return QUOTE_AUTO
    if len(quote) != 1:
        raise InputError(f"--quote {quote!r} is not one character", hint="use e.g. --quote \"'\", or --no-quote")
    return quote


def check_encoding(encoding: str | None) -> str | None:
    """``encoding`` as Python names it, or ``None`` (UTF-8)."""
    if encoding is None:
        return None
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise InputError(f"unknown --encoding {encoding!r}",
                         hint="use e.g. --encoding latin-1, cp1252, utf-16 or utf-8") from None


@dataclass(frozen=True)
class ReadOptions:
    """How to read an input table: ``fmt``, ``sep``, ``quote`` (a character, ``None`` or
    :data:`QUOTE_AUTO`), ``encoding`` (``None`` = UTF-8) and the column names to look for
    (``None``: the usual names)."""

    fmt: str | None = None
    sep: str | None = None
    quote: str | None = QUOTE_AUTO
    encoding: str | None = None
    columns: ColumnNames | None = None


def resolve_separator(sep: str | None) -> str | None:
    """Map a user-facing separator name (``tab``, ``,``, ``::`` ...) to the character."""
    if sep is None:
        return None
    if sep in SEPARATORS:
        return SEPARATORS[sep]
    raise InputError(f"unknown separator {sep!r}",
                     hint="use one of: comma (,), tab, semicolon (;), pipe (|), space, '::'")


def sniff_separator(first_line: str) -> str:
    """Pick the separator that splits the first line most often (``::`` wins over ``:``)."""
    if "::" in first_line:
        return "::"
    counts = {s: first_line.count(s) for s in ("\t", ",", ";", "|")}
    best = max(counts, key=lambda s: counts[s])
    if counts[best] == 0:
        return " " if len(first_line.split()) > 1 else ","
    return best


def _read_source_bytes(source: str) -> bytes:
    if source == "-":
        data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
        if not data:
            raise InputError("standard input is empty", hint="pipe data in, e.g. 'cat data.csv | recli ...', or pass a file path")
        return data
    path = Path(source)
    if not path.exists():
        raise InputError(f"input file {source!r} does not exist", hint="check the path, or use '-' to read stdin")
    if path.is_dir():
        raise InputError(f"input {source!r} is a directory, not a file", hint="pass a file inside it")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {source!r}: {exc.strerror}", hint="check the file permissions") from None


def _detect_format(source: str, data: bytes, fmt: str | None) -> tuple[str, bytes]:
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if fmt:
        return split_compression(fmt)[0], data
    by_name = format_from_path(source) if source != "-" else None
    if by_name:
        return by_name, data
    if data[:4] == b"PAR1":
        return "parquet", data
    if data.lstrip()[:1] == b"{":
        return "jsonl", data
    return "csv", data


def _decode_error(name: str, data: bytes, pos: int, encoding: str) -> InputError:
    line = data.count(b"\n", 0, pos) + 1
    col = pos - (data.rfind(b"\n", 0, pos) + 1) + 1
    return InputError(f"{name} is not valid {encoding}: line {line}, byte {col} is 0x{data[pos]:02x}",
                      hint="name the file's encoding, e.g. --encoding latin-1 (or cp1252, utf-16)")


def to_utf8(data: bytes, encoding: str | None = None, name: str = "input") -> bytes:
    """Text bytes in ``encoding`` (``None`` = UTF-8; a BOM overrides it) → UTF-8 without BOM.

    Raises
    ------
    InputError : bytes that do not decode, naming the line and suggesting ``--encoding``.
    """
    for bom, enc in _BOMS:
        if data.startswith(bom):
            data, encoding = data[len(bom):], enc
            break
    encoding = check_encoding(encoding) or "utf-8"
    if encoding == "utf-8":
        decoder = codecs.getincrementaldecoder("utf-8")()
        for start in range(0, len(data), _CHUNK):  # validate only: UTF-8 needs no conversion
            pending = len(decoder.getstate()[0])  # bytes of a character split across chunks
            try:
                decoder.decode(data[start:start + _CHUNK], final=start + _CHUNK >= len(data))
            except UnicodeDecodeError as exc:
                raise _decode_error(name, data, start - pending + exc.start, "utf-8") from None
        return data
    try:
        return data.decode(encoding).encode("utf-8")
    except UnicodeDecodeError as exc:
        raise _decode_error(name, data, exc.start, encoding) from None


def read_table(source: str, fmt: str | None = None, *, sep: str | None = None, has_header: bool = True,
               columns: list[str] | None = None, all_strings: bool = True,
               on_raw: Callable[[bytes], None] | None = None, quote: str | None = QUOTE_AUTO,
               encoding: str | None = None) -> pl.DataFrame:
    """Read a table from a path or ``-`` (stdin).

    Parameters
    ----------
    source : path, or ``-`` for stdin.
    fmt : one of ``csv, tsv, parquet, jsonl`` (or a ``.gz`` variant); inferred when ``None``.
    sep : separator for delimited text; inferred from the first line when ``None``.
    quote : quote character of delimited text, ``None`` for none, :data:`QUOTE_AUTO` for
        ``"`` (none for tab-separated text).
    encoding : encoding of text formats (``None`` = UTF-8; a byte-order mark is detected).
    has_header : whether delimited text has a header line.
    columns : names to give the columns of headerless text.
    all_strings : read delimited text with every column as a string (ids stay exact).
    on_raw : called with the raw bytes as read (before decompression), e.g. to hash stdin,
        which cannot be read twice.

    Raises
    ------
    InputError : missing/empty file, header only, undecodable text, unreadable content.
    """
    import polars as pl

    fmt = check_format(fmt)
    data = _read_source_bytes(source)
    if on_raw is not None:
        on_raw(data)
    fmt, data = _detect_format(source, data, fmt)
    name = "stdin" if source == "-" else source
    if fmt != "parquet":
        data = to_utf8(data, encoding, name)
    if not data.strip():
        raise InputError(f"{name} is empty", hint="check that the file holds interactions, one per line")
    try:
        if fmt == "parquet":
            df = pl.read_parquet(io.BytesIO(data))
        elif fmt == "jsonl":
            df = pl.read_ndjson(io.BytesIO(data))
        else:
            df = _read_delimited(data, "\t" if (fmt == "tsv" and sep is None) else resolve_separator(sep),
                                 has_header, columns, all_strings, quote)
    except InputError:
        raise
    except Exception as exc:  # polars raises many error types for malformed input
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot parse {name} as {fmt}: {msg}",
                         hint="check the separator (--sep), the quoting (--quote/--no-quote), the header "
                              "(--no-header) and the format (--input-format)") from None
    if df.height == 0:
        raise InputError(f"{name} has a header but no rows", hint="check that the file holds data below the header")
    return df


def _read_delimited(data: bytes, sep: str | None, has_header: bool, columns: list[str] | None,
                    all_strings: bool, quote: str | None = QUOTE_AUTO) -> pl.DataFrame:
    import polars as pl

    first_line = data[: data.find(b"\n") if b"\n" in data else len(data)].decode("utf-8", "replace").rstrip("\r")
    if sep is None:
        sep = sniff_separator(first_line)
    if quote == QUOTE_AUTO:
        quote = None if sep == "\t" else '"'
    if sep == "::":
        data = data.replace(b"::", _DOUBLE_COLON_SUB.encode())
        sep = _DOUBLE_COLON_SUB
    n_fields = len(first_line.split("::" if sep == _DOUBLE_COLON_SUB else sep))
    trailing = first_line.endswith(sep) and sep not in (" ",)
    if columns is not None and not has_header:
        names = list(columns)
        if len(names) < n_fields - (1 if trailing else 0):
            raise InputError(f"--columns names {len(names)} columns but the first line has {n_fields}",
                             hint="name every column, e.g. --columns user,item,rating,timestamp")
    kwargs = {"separator": sep, "has_header": has_header, "quote_char": quote, "truncate_ragged_lines": False,
                  "infer_schema": not all_strings, "comment_prefix": None}
    try:
        df = pl.read_csv(io.BytesIO(data), **kwargs)
    except pl.exceptions.ComputeError as exc:
        text = str(exc)
        if "found more fields than defined" in text or "ragged" in text:
            from recli.data.schema import separator_hint

            other = separator_hint([first_line]) if sep not in first_line else None
            raise InputError("some lines have more fields than the header",
                             hint=other or "fix the ragged lines, or check the separator (--sep) and the quoting "
                                           "(--quote/--no-quote)") from None
        raise
    if trailing:
        # A trailing delimiter adds an empty, unnamed last column; drop it on purpose.
        last = df.columns[-1]
        if (last == "" or last.startswith("_duplicated_") or (not has_header)) and df[last].null_count() == df.height:
            df = df.drop(last)
    if not has_header:
        names = columns or [f"column_{i + 1}" for i in range(df.width)]
        if len(names) > df.width:
            names = names[: df.width]
        df = df.rename(dict(zip(df.columns[: len(names)], names)))
    df = df.rename({c: c.strip() for c in df.columns})
    return df


# roles default to schema.CANONICAL / schema.REQUIRED, spelled out: importing schema loads Polars
def read_interactions(source: str, opts: ReadOptions | None = None, *,
                      roles: Sequence[str] = ("user", "item", "rating", "timestamp"),
                      required: Sequence[str] = ("user", "item"), what: str | None = None) -> pl.DataFrame:
    """Read a table and rename its columns to the canonical ``user, item, rating, timestamp``.

    The columns are found by :func:`recli.data.schema.resolve_columns` (``opts.columns``,
    else the usual aliases such as ``userId``/``movieId``), for the given ``roles``; the
    ``required`` ones must be present. Other columns are kept. ``what`` names the input
    in messages (default: the path).
    """
    from recli.data.schema import to_canonical

    opts = opts or ReadOptions()
    df = read_table(source, opts.fmt, sep=opts.sep, quote=opts.quote, encoding=opts.encoding)
    return to_canonical(df, opts.columns, roles=roles, required=required,
                        what=what or ("stdin" if source == "-" else source))


def is_binary(fmt: str) -> bool:
    return fmt == "parquet"


def output_format(dest: str, fmt: str | None, default: str = "csv") -> str:
    fmt = check_format(fmt)
    if fmt:
        return fmt
    if dest != "-":
        return format_from_path(dest) or default
    return default


def default_mode(directory: bool) -> int:
    """The mode a plain ``open()``/``mkdir()`` would give under the current umask
    (mkstemp/mkdtemp create private 0600/0700 entries, which outputs should not keep)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it into place only on success."""
    dest = Path(dest)
    parent = dest.parent if str(dest.parent) else Path(".")
    if not parent.exists():
        raise OutputError(f"output directory {str(parent)!r} does not exist", hint="create it first, or choose another path")
    if dest.is_dir():
        raise OutputError(f"{str(dest)!r} is a directory, not a file", hint="give a file name (e.g. -o out/recs.csv)")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise environment_fault(exc, f"writing {str(dest)!r}") or OutputError(
            f"cannot write to {str(parent)!r}: {exc.strerror}", hint="check permissions, or choose another output path") from None
    os.close(fd)
    os.chmod(tmp, default_mode(directory=False))
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    except OSError as exc:  # a full disk or a lost permission mid-write is the machine's fault, not recli's
        fault = environment_fault(exc, f"writing {str(dest)!r}")
        if fault is None:
            raise
        raise fault from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _write_to(df: pl.DataFrame, target: IO[bytes] | Path, fmt: str) -> None:
    fmt = split_compression(fmt)[0]
    if fmt == "parquet":
        df.write_parquet(target)
    elif fmt == "jsonl":
        df.write_ndjson(target)
    else:
        df.write_csv(target, separator="\t" if fmt == "tsv" else ",")


def write_table(df: pl.DataFrame, dest: str, fmt: str | None = None) -> None:
    """Write ``df`` to a path (atomically) or ``-`` (stdout).

    A ``.gz`` suffix or a ``csv.gz``-style format gzip-compresses text formats. Binary data
    (parquet, gzip) to a terminal is refused.
    """
    fmt = output_format(dest, fmt)
    gz = wants_gzip(dest, fmt)
    if dest == "-":
        check_stdout(fmt)
        buf = io.BytesIO()
        _write_to(df, buf, fmt)
        write_stdout_bytes(gzip.compress(buf.getvalue()) if gz else buf.getvalue())
        return
    with atomic_path(dest) as tmp:
        if gz:
            buf = io.BytesIO()
            _write_to(df, buf, fmt)
            with gzip.open(tmp, "wb") as fh:
                fh.write(buf.getvalue())
        else:
            _write_to(df, tmp, fmt)


def wants_gzip(dest: str, fmt: str) -> bool:
    """Whether text output to ``dest`` in ``fmt`` is gzip-compressed (``.gz`` name or format)."""
    return not is_binary(fmt) and (fmt.endswith(".gz") or (dest != "-" and dest.lower().endswith(".gz")))


def check_stdout(fmt: str) -> None:
    """Refuse binary output (parquet, gzip) to a terminal."""
    if (is_binary(fmt) or fmt.endswith(".gz")) and _isatty(sys.stdout):
        raise OutputError(f"refusing to write binary {fmt} to a terminal",
                          hint="redirect stdout to a file, or use --format csv")


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def write_stdout_bytes(data: bytes) -> None:
    """Write raw bytes to stdout whether it is a real stream or a test capture."""
    out = sys.stdout
    if hasattr(out, "buffer"):
        out.buffer.write(data)
        out.buffer.flush()
    else:  # pragma: no cover - text-only streams
        out.write(data.decode())
    out.flush()
