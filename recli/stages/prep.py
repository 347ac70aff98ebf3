"""``prep``: raw interaction log → clean, filtered, optionally split and normalised frames.

:func:`prep` reads the input, runs every cleaning rule (:mod:`recli.data.clean`), the
filters (:mod:`recli.data.filter`), the split (:mod:`recli.data.split`) and the
normalisation (:mod:`recli.data.normalize`), and returns the frames plus a report that
accounts for every input row: ``rows_read == sum(dropped) + rows written``. It never
prints or exits; ``on_stage(name)`` is called as each stage starts (the CLI draws a
progress bar with it).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import polars as pl

from recli import __version__
from recli.data import clean as cl
from recli.data import normalize as nz
from recli.data import split as sp
from recli.data.filter import core_mask
from recli.data.io import QUOTE_AUTO, read_table, resolve_separator
from recli.data.schema import RATING, TIMESTAMP, USER, conform
from recli.errors import ConfigError, InputError
from recli.stages import prep_features as pf

STAGES = ("read", "clean", "filter", "split", "normalise", "features")
QUANTILES = (0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)


@dataclass
class PrepOptions:
    """Every ``recli prep`` option except the output ones (see ``recli prep --help``)."""

    input_format: str | None = None
    sep: str | None = None
    quote: str | None = QUOTE_AUTO
    encoding: str | None = None
    has_header: bool = True
    columns: list[str] | None = None
    clean: cl.CleanOptions = field(default_factory=cl.CleanOptions)
    normalize: str = "none"
    min_user_interactions: int = 0
    min_item_interactions: int = 0
    k_core: bool = False
    split: str | None = None
    test_size: float = 0.2
    valid_size: float | None = None
    cut_date: str | None = None
    drop_cold: bool = False
    seed: int = 0
    item_side: pf.SideTableOptions = field(default_factory=pf.SideTableOptions)
    user_side: pf.SideTableOptions = field(default_factory=pf.SideTableOptions)

    def sides(self) -> list[tuple[str, pf.SideTableOptions]]:
        """``(role, options)`` of each side table given."""
        return [(role, side) for role, side in (("item", self.item_side), ("user", self.user_side)) if side.given]


@dataclass
class PrepResult:
    """Frames by name (``data``, or ``train``/``test``/``valid``), the report, user means and
    the side features by role (long frame, fitted transform, report entry)."""

    frames: dict[str, pl.DataFrame]
    report: dict
    user_means: pl.DataFrame | None = None
    features: dict[str, tuple] = field(default_factory=dict)


def _choice(value: str | None, allowed: tuple[str, ...], option: str) -> None:
    if value is not None and value not in allowed:
        raise ConfigError(f"{option} {value!r} is not one of: {', '.join(allowed)}", hint=f"use e.g. {option} {allowed[0]}")


def validate(opts: PrepOptions, has_output_dir: bool) -> None:
    """Refuse unknown values and conflicting options before any data is read."""
    c = opts.clean
    resolve_separator(opts.sep)
    _choice(opts.split, sp.STRATEGIES, "--split")
    _choice(opts.normalize, nz.METHODS, "--normalize")
    _choice(c.on_invalid, cl.ON_INVALID, "--on-invalid")
    _choice(c.dedupe, cl.DEDUPE, "--dedupe")
    _choice(c.weight, cl.WEIGHTS, "--weight")
    conflicts = [
        (opts.columns is not None and opts.has_header, "--columns needs --no-header",
         "add --no-header for a headerless file, or use --user-col/--item-col to pick header columns"),
        (opts.split is not None and not has_output_dir, f"--split {opts.split} needs --out DIR",
         "add --out DIR to write train/test files, or drop --split to print the cleaned data"),
        (opts.split is None and (opts.valid_size is not None or opts.cut_date is not None or opts.drop_cold),
         "--valid-size, --cut-date and --drop-cold need --split", "add e.g. --split random"),
        (opts.drop_cold and opts.split in sp.COLD, f"--drop-cold would remove every test row of --split {opts.split}",
         "drop --drop-cold: a cold split holds out items (users) unseen in training on purpose"),
        (opts.cut_date is not None and opts.split != "temporal", "--cut-date only applies to --split temporal",
         "use --split temporal --cut-date DATE, or --test-size for other splits"),
        (c.implicit and opts.normalize != "none", "--normalize applies to explicit ratings, not --implicit",
         "drop --normalize, or drop --implicit to keep explicit ratings"),
        (not c.implicit and (c.min_rating is not None or c.weight != "raw"), "--min-rating and --weight need --implicit",
         "add --implicit to turn ratings into positive feedback"),
        (c.rating_range is not None and c.rating_range[0] > c.rating_range[1], "--rating-range MIN is above MAX",
         "use e.g. --rating-range 1,5"),
    ]
    for bad, message, hint in conflicts:
        if bad:
            raise ConfigError(message, hint=hint)
    if opts.min_user_interactions < 0 or opts.min_item_interactions < 0:
        raise ConfigError("minimum interaction counts must be >= 0", hint="use e.g. --min-user-interactions 5")
    if opts.split is not None:
        sp.parse_size(opts.test_size, "--test-size")
        if opts.valid_size is not None:
            sp.parse_size(opts.valid_size, "--valid-size")
    if opts.cut_date is not None:
        cl.parse_time_value(opts.cut_date)
    for role, side in opts.sides():
        pf.validate_side(side, role, has_output_dir)


def input_info(source: str) -> dict:
    """Path, size and SHA-256 of the input file (stdin: path ``-``, filled in by
    :func:`hash_raw` as the bytes are read)."""
    if source == "-" or not os.path.isfile(source):
        return {"path": source, "size_bytes": None, "sha256": None}
    with open(source, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    return {"path": os.path.abspath(source), "size_bytes": os.path.getsize(source), "sha256": digest}


def hash_raw(info: dict) -> Callable[[bytes], None]:
    """A ``read_table(on_raw=...)`` callback recording the size and SHA-256 of what was read
    into ``info`` (for stdin, whose bytes can only be seen once)."""
    def record(data: bytes) -> None:
        if info.get("sha256") is None:
            info.update(size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    return record


def _check_columns_needed(df: pl.DataFrame, opts: PrepOptions) -> None:
    c = opts.clean
    needs_rating = [(c.fill_rating, "--fill-rating"), (c.rating_range, "--rating-range"),
                    (None if opts.normalize == "none" else opts.normalize, "--normalize"),
                    (c.min_rating, "--min-rating"), (None if c.weight in ("raw", "binary") else c.weight, "--weight")]
    for value, flag in needs_rating:
        if value is not None and RATING not in df.columns:
            raise ConfigError(f"{flag} needs a rating column but none was found; columns: {', '.join(df.columns)}",
                              hint="name the rating column with --rating-col, or drop " + flag)


def _filter(df: pl.DataFrame, opts: PrepOptions, tally: cl.Tally) -> tuple[pl.DataFrame, int]:
    res = core_mask(df[cl.UCODE].to_numpy(), df[cl.ICODE].to_numpy(), opts.min_user_interactions,
                    opts.min_item_interactions, iterate=opts.k_core)
    prefix = "k-core: " if opts.k_core else ""
    tally.drop(f"{prefix}user with < {opts.min_user_interactions} interactions", res.dropped_user)
    tally.drop(f"{prefix}item with < {opts.min_item_interactions} interactions", res.dropped_item)
    if res.dropped_user or res.dropped_item:
        df = df.filter(pl.Series(res.keep))
    if df.height == 0:
        raise InputError("the filters removed every row",
                         hint="lower --min-user-interactions / --min-item-interactions, or drop --k-core")
    return df, res.passes


def prep(source: str, opts: PrepOptions, on_stage: Callable[[str], None] | None = None,
         has_output_dir: bool = True) -> PrepResult:
    """Run the whole ``prep`` pipeline on ``source`` (a path or ``-``).

    Raises
    ------
    InputError / ConfigError : bad input data or options (the CLI turns them into exit code 2).
    """
    step = on_stage or (lambda name: None)
    validate(opts, has_output_dir)
    step("read")
    info = input_info(source)
    # no local name for the raw table: prep_table can free it once it is encoded
    result = prep_table(read_table(source, opts.input_format, sep=opts.sep, has_header=opts.has_header,
                                   columns=opts.columns, on_raw=hash_raw(info), quote=opts.quote,
                                   encoding=opts.encoding), opts, step)
    result.report["input"] = info
    step("features")
    for role, side in opts.sides():
        fitted, entry = pf.extract(side, role, result.frames)
        result.features[role] = (fitted.frame, pf.manifest_entry(fitted, role, side, entry))
    if result.features:
        result.report["features"] = {role: entry["counts"] for role, (_, entry) in result.features.items()}
    return result


def prep_table(raw: pl.DataFrame, opts: PrepOptions, on_stage: Callable[[str], None] | None = None) -> PrepResult:
    """The ``prep`` pipeline on a table already read (columns as read, e.g. all strings)."""
    step = on_stage or (lambda name: None)
    rows_read = raw.height
    step("clean")
    tally = cl.Tally()
    df, vocab = cl.clean(raw, opts.clean, tally, opts.has_header)
    del raw
    _check_columns_needed(df, opts)
    if df.height == 0:
        raise InputError("no rows are left after cleaning", hint="check the dropped-row reasons with -v, "
                         "the rating range (--rating-range) and the column choices (--*-col)")
    step("filter")
    df, passes = _filter(df, opts, tally)
    step("split")
    parts, split_report = _split(df, opts, tally) if opts.split else ({"data": df}, None)
    step("normalise")
    fit_on = parts.get("train", parts.get("data"))
    params, user_means = nz.fit(fit_on, opts.normalize)
    frames = {name: conform(vocab.decode(nz.apply(part, params, user_means))) for name, part in parts.items()}
    report = _report(rows_read, tally, df, frames, passes, split_report, params)
    if user_means is not None:
        user_means = pl.DataFrame({USER: vocab.users.gather(user_means[cl.UCODE]), "mean": user_means["mean"]}).sort(USER)
    return PrepResult(frames, report, user_means)


def _split(df: pl.DataFrame, opts: PrepOptions, tally: cl.Tally) -> tuple[dict[str, pl.DataFrame], dict]:
    users = df[cl.UCODE].to_numpy()
    ts = df[TIMESTAMP].to_numpy() if TIMESTAMP in df.columns else None
    cut = cl.parse_time_value(opts.cut_date) if opts.cut_date else None
    test_mask, info = sp.split_mask(opts.split, sp.parse_size(opts.test_size), users, ts,
                                    np.random.default_rng(opts.seed), cut=cut, items=df[cl.ICODE].to_numpy())
    parts = {"train": df.filter(pl.Series(~test_mask)), "test": df.filter(pl.Series(test_mask))}
    if not parts["test"].height:
        raise InputError(f"--split {opts.split} --test-size {opts.test_size} leaves the test set empty",
                         hint="use a larger --test-size, or filter fewer users (per-user splits keep one row in train)")
    report = {"strategy": info.strategy, "size": info.size, "cut_timestamp": info.cut_timestamp,
              "ties_at_cut": info.ties_at_cut, "ties_in_train": info.ties_in_train}
    if opts.valid_size is not None:
        train = parts["train"]
        v_users = train[cl.UCODE].to_numpy()
        v_ts = train[TIMESTAMP].to_numpy() if ts is not None else None
        v_mask, v_info = sp.split_mask(opts.split, sp.parse_size(opts.valid_size, "--valid-size"), v_users, v_ts,
                                       np.random.default_rng([opts.seed, 1]), what="validation",
                                       items=train[cl.ICODE].to_numpy())
        parts["train"], parts["valid"] = train.filter(pl.Series(~v_mask)), train.filter(pl.Series(v_mask))
        if not parts["valid"].height:
            raise InputError(f"--split {opts.split} --valid-size {opts.valid_size} leaves the validation set empty",
                             hint="use a larger --valid-size, or drop --valid-size (e.g. a temporal cut that falls "
                                  "on tied timestamps keeps them all in train)")
        report["valid_cut_timestamp"] = v_info.cut_timestamp
    report.update(_cold(parts, opts, tally))
    return parts, report


def _cold(parts: dict[str, pl.DataFrame], opts: PrepOptions, tally: cl.Tally) -> dict:
    """Count (and with ``--drop-cold`` remove) held-out rows whose user or item is not in train."""
    train = parts["train"]
    n_u = int(max(p[cl.UCODE].max() or 0 for p in parts.values())) + 1
    n_i = int(max(p[cl.ICODE].max() or 0 for p in parts.values())) + 1
    seen_u = np.zeros(n_u, dtype=bool)
    seen_i = np.zeros(n_i, dtype=bool)
    seen_u[train[cl.UCODE].to_numpy()] = True
    seen_i[train[cl.ICODE].to_numpy()] = True
    out: dict = {}
    for name in ("test", "valid"):
        if name not in parts:
            continue
        part = parts[name]
        u, i = part[cl.UCODE].to_numpy(), part[cl.ICODE].to_numpy()
        cold = ~seen_u[u] | ~seen_i[i]
        out[f"cold_users_in_{name}"] = int(np.unique(u[~seen_u[u]]).size)
        out[f"cold_items_in_{name}"] = int(np.unique(i[~seen_i[i]]).size)
        out[f"cold_rows_in_{name}"] = int(cold.sum())
        out[f"{name}_pairs_seen_in_train"] = _pairs_seen(train, part, n_i) if opts.clean.dedupe == "none" else 0
        if opts.drop_cold and cold.any():
            parts[name] = part.filter(pl.Series(~cold))
            tally.drop(f"cold user or item in {name} (--drop-cold)", int(cold.sum()))
    if opts.drop_cold and parts["test"].height == 0:
        raise InputError("--drop-cold removed every test row",
                         hint="use a per-user split (leave-last, leave-random) or drop --drop-cold")
    return out


def _pairs_seen(train: pl.DataFrame, part: pl.DataFrame, n_items: int) -> int:
    """Rows of ``part`` whose (user, item) pair also occurs in ``train`` (only possible with --dedupe none)."""
    key_train = train[cl.UCODE].cast(pl.UInt64) * n_items + train[cl.ICODE].cast(pl.UInt64)
    key = part[cl.UCODE].cast(pl.UInt64) * n_items + part[cl.ICODE].cast(pl.UInt64)
    return int(key.is_in(key_train.unique().implode()).sum())


def _per_user_quantiles(df: pl.DataFrame) -> dict[str, float]:
    counts = np.bincount(df[cl.UCODE].to_numpy())
    counts = counts[counts > 0]
    qs = np.quantile(counts, QUANTILES)
    names = ["min", "p25", "p50", "p75", "p90", "p99", "max"]
    return {name: float(q) for name, q in zip(names, qs)}


def _report(rows_read: int, tally: cl.Tally, df: pl.DataFrame, frames: dict[str, pl.DataFrame], passes: int,
            split_report: dict | None, params: dict) -> dict:
    n_users = df[cl.UCODE].n_unique()
    n_items = df[cl.ICODE].n_unique()
    return {
        "rows_read": rows_read,
        "dropped": dict(tally.dropped),
        "changed": dict(tally.changed),
        "rows_clean": df.height,
        "rows_written": {name: f.height for name, f in frames.items()},
        "users": n_users,
        "items": n_items,
        "density": df.height / (n_users * n_items),
        "interactions_per_user": _per_user_quantiles(df),
        "filter_passes": passes,
        "split": split_report,
        "normalization": params,
    }


def manifest(opts: PrepOptions, report: dict, files: dict[str, str], output_format: str, out: str | None = None,
             features: dict[str, dict] | None = None) -> dict:
    """Everything needed to reproduce or audit a ``prep`` run, as JSON-ready data; ``features``
    (role → :func:`recli.stages.prep_features.manifest_entry`) becomes the ``features`` key."""
    options = asdict(opts)
    options["output_format"] = output_format
    options["out"] = os.path.abspath(out) if out else None
    return {
        "recli_version": __version__,
        "command": "prep",
        "input": report.get("input"),
        "seed": opts.seed,
        "options": options,
        "files": files,
        "rows": {"read": report["rows_read"], "dropped": report["dropped"], "written": report["rows_written"]},
        "normalization": report["normalization"],
        "report": {k: v for k, v in report.items() if k != "input"},
        **({"features": features} if features else {}),
    }
