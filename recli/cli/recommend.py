"""``recli recommend MODEL``: top-k items per user, or similar items per item."""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer

from recli.cli._options import Device, FormatOpt, Quiet, Threads, Verbose

app = typer.Typer()
Opt = typer.Option


@app.command(help="Recommend k items per user (user,item,score,rank), or similar items per item "
                  "(item,similar_item,score,rank), from a model written by 'recli train'.")
def recommend(
    model: Annotated[str, typer.Argument(help="Model directory written by 'recli train -o'.")],
    users: Annotated[Optional[str], Opt("--users", help="Users to serve: a file with a 'user' column or one id per line; '-' for stdin.")] = None,
    user: Annotated[Optional[List[str]], Opt("--user", help="A user id (repeatable).")] = None,
    all_users: Annotated[bool, Opt("--all-users", help="Every training user, streamed in batches.")] = False,
    k: Annotated[int, Opt("-k", "--k", help="Items per user.")] = 10,
    include_seen: Annotated[bool, Opt("--include-seen", help="Keep items the user interacted with in training.")] = False,
    exclude_items: Annotated[Optional[str], Opt("--exclude-items", help="Never recommend these items (file: 'item' column or one per line).")] = None,
    only_items: Annotated[Optional[str], Opt("--only-items", help="Recommend only these items (file: 'item' column or one per line).")] = None,
    history: Annotated[Optional[str], Opt("--history", help="user,item[,rating] rows for users new to the model (folded in); '-' for stdin.")] = None,
    strict: Annotated[bool, Opt("--strict", help="Unknown users (or items) are an error instead of a warning.")] = False,
    fallback: Annotated[Optional[str], Opt("--fallback", help="'popular': serve unknown users the most popular items.")] = None,
    similar_items: Annotated[Optional[List[str]], Opt("--similar-items", help="Items to find similar items for (repeatable).")] = None,
    items_file: Annotated[Optional[str], Opt("--items-file", help="Items to find similar items for (file: 'item' column or one per line).")] = None,
    explain: Annotated[bool, Opt("--explain", help="Add the history items that contribute most to each recommendation.")] = False,
    explain_top: Annotated[int, Opt("--explain-top", help="Explaining items per recommendation (with --explain).")] = 3,
    batch_size: Annotated[int, Opt("--batch-size", help="Users scored at once; bounds memory at batch-size x items scores.")] = 1024,
    output: Annotated[str, Opt("--output", "-o", help="Output file, or '-' for stdout.")] = "-",
    fmt: FormatOpt = None,
    threads: Threads = 0,
    device: Device = "cpu",
    verify: Annotated[bool, Opt("--verify/--no-verify", help="Check the model files' sha256 (once per file version; sizes are always checked).")] = True,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    import time

    from recli.errors import ConfigError

    _check_options(k, batch_size, explain_top, users, user, all_users, similar_items, items_file, history, explain)
    started = time.perf_counter()
    from recli.artifacts import load_model
    from recli.backend import get_backend, threads_context
    from recli.console import log
    from recli.stages import recommend as stage

    def write_stream(*args):  # Polars (imported by recli.data.stream) only for these outputs
        from recli.data.stream import write_stream

        return write_stream(*args)

    mf = load_model(model, get_backend(device, threads), checksums=None if verify else False)
    if explain and not mf.model.can_explain:
        raise ConfigError(f"model {mf.model.name!r} cannot explain its recommendations",
                          hint="use --explain with a model that can (recli train --list-models shows 'explain')")
    banned = stage.item_ban_mask(mf.items, stage.read_ids(exclude_items, "item", "--exclude-items") if exclude_items else None,
                                 stage.read_ids(only_items, "item", "--only-items") if only_items else None)
    if similar_items or items_file:
        ids = list(similar_items or []) + (stage.read_ids(items_file, "item", "--items-file") if items_file else [])
        names, iidx = stage.plan_items(mf, list(dict.fromkeys(ids)), strict)
        with threads_context(threads, numba=stage.needs_numba(len(names), len(mf.items), batch_size)):
            frames = (stage.to_frame(names, mf.items, *batch, names=("item", "similar_item"))
                      for batch in stage.similar_batches(mf, iidx, k, banned=banned, batch_size=batch_size))
            rows = write_stream(frames, output, fmt, _empty(stage.SIMILAR_SCHEMA))
        n = len(names)
    else:
        hist = stage.read_history(history, mf) if history else None
        ids = None if all_users else list(dict.fromkeys((stage.read_ids(users, "user", "--users") if users else []) + list(user or [])))
        plan = stage.plan_users(mf, ids, all_users=all_users, history=hist, strict=strict, fallback=fallback)
        nested = explain and ((fmt or "").lower() == "jsonl" or output.lower().endswith((".jsonl", ".ndjson")))
        with threads_context(threads, numba=stage.needs_numba(len(plan.ids), len(mf.items), batch_size)):
            batches = stage.recommend_batches(mf, plan, k, include_seen=include_seen, banned=banned, batch_size=batch_size)
            if explain:
                frames = (stage.explain_frame(mf, plan, *b, top=explain_top, nested=nested) for b in batches)
                schema = stage.explain_schema(nested)
                rows = write_stream(frames, output, fmt, _empty(schema))
            elif _small_csv(fmt, output, users, all_users, history, fallback):
                rows = write_small_csv(stage.csv_rows(plan.ids, mf.items, batches), output)
            else:
                frames = (stage.to_frame(plan.ids, mf.items, *b) for b in batches)
                rows = write_stream(frames, output, fmt, _empty(stage.RECS_SCHEMA))
        n = len(plan.ids)
    log.debug(f"{rows} rows for {n} {'items' if (similar_items or items_file) else 'users'} "
              f"in {time.perf_counter() - started:.2f}s")


def _small_csv(fmt, output, users, all_users, history, fallback) -> bool:
    """``--user`` requests written as plain CSV: the stdlib writer below, no Polars."""
    from recli.data.io import output_format

    return (not (users or all_users or history or fallback) and output_format(output, fmt) == "csv"
            and not output.lower().endswith(".gz"))


def write_small_csv(rows, output: str) -> int:
    """Write ``user,item,score,rank`` rows (already formatted strings) as CSV, exactly as
    Polars' ``write_csv`` would, to stdout or atomically to ``output``; returns the row count."""
    from recli.data.io import atomic_path, write_stdout_bytes
    from recli.stages.recommend import RECS_COLUMNS

    lines = [",".join(RECS_COLUMNS)]
    lines += [",".join(row) for row in rows]
    data = ("\n".join(lines) + "\n").encode("utf-8")
    if output == "-":
        write_stdout_bytes(data)
    else:
        with atomic_path(output) as tmp:
            tmp.write_bytes(data)
    return len(lines) - 1


def _empty(schema):
    import polars as pl

    return pl.DataFrame(schema=schema)


def _check_options(k, batch_size, explain_top, users, user, all_users, similar_items, items_file, history, explain):
    from recli.errors import ConfigError

    if k < 1:
        raise ConfigError(f"-k must be at least 1 (got {k})", hint="ask for a positive number of items, e.g. -k 10")
    if batch_size < 1 or explain_top < 1:
        raise ConfigError("--batch-size and --explain-top must be at least 1", hint="e.g. --batch-size 1024")
    similar = bool(similar_items or items_file)
    by_user = bool(users or user or all_users)
    if similar and by_user:
        raise ConfigError("choose users (--users/--user/--all-users) or items (--similar-items/--items-file), not both",
                          hint="run recli recommend twice")
    if not similar and not by_user:
        raise ConfigError("no users given", hint="pass --user ID, --users FILE, --all-users, or --similar-items ITEM")
    if all_users and (users or user):
        raise ConfigError("--all-users cannot be combined with --users/--user", hint="drop one of them")
    if users == "-" and history == "-":
        raise ConfigError("--users and --history cannot both read stdin", hint="give one of them as a file")
    if similar and (explain or history):
        raise ConfigError("--explain and --history apply to user recommendations, not --similar-items",
                          hint="drop them, or ask for users")
