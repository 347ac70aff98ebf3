"""``recli info MODEL``: a model directory's metadata, checked."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from recli.cli._options import Quiet, Verbose

app = typer.Typer()


@app.command(help="Show a model's metadata: model, config, seed, threads, device, fit time, losses, counts, hashes. "
                  "A table on stdout, or JSON with --format json.")
def info(
    model: Annotated[str, typer.Argument(help="Model directory written by 'recli train -o'.")],
    fmt: Annotated[Optional[str], typer.Option("--format", help="table or json.")] = None,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Check every file's sha256 (sizes are always checked).")] = True,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    from recli.artifacts import read_meta, verify_files
    from recli.cli._render import check_listing_format, emit, emit_json, render_table

    listing = check_listing_format(fmt)
    meta = read_meta(model)
    verify_files(model, meta, checksums=verify)
    if listing == "json":
        return emit_json(meta)
    emit(render_table(["field", "value"], _rows(meta)))


def _rows(meta: dict) -> list[list[str]]:
    losses = meta.get("epoch_losses") or []
    rows = [["model", meta.get("model")], ["format version", meta.get("format_version")],
            ["recli version", meta.get("recli_version")], ["created", meta.get("created")],
            ["config", ", ".join(f"{k}={v}" for k, v in (meta.get("config") or {}).items())],
            ["seed", meta.get("seed")], ["threads", meta.get("threads")], ["device", meta.get("device")],
            ["fit seconds", meta.get("fit_seconds")], ["epochs", meta.get("epochs")],
            ["epoch losses", " ".join(f"{x:.6g}" for x in losses) if len(losses) <= 8 else
             f"{losses[0]:.6g} ... {losses[-1]:.6g} ({len(losses)} epochs)"]]
    if "valid_scores" in meta:
        rows.append([meta.get("valid_metric", "validation"), " ".join(f"{x:.4f}" for x in meta["valid_scores"])])
        rows.append(["best epoch", meta.get("best_epoch")])
    counts = meta.get("counts") or {}
    rows += [["users", counts.get("users")], ["items", counts.get("items")],
             ["interactions", counts.get("interactions")], ["training rows", counts.get("rows")],
             ["training source", meta.get("train_source")], ["training fingerprint", meta.get("training_fingerprint")],
             *([f"{side} features", f"{f.get('features')} features from {f.get('source')}"
                + (" (with prep's transform)" if "transform" in f else "")]
               for side, f in (meta.get("features") or {}).items()),
             ["users hash", meta.get("users_hash")], ["items hash", meta.get("items_hash")],
             ["files", f"{len(meta['files'])} files, {sum(f['bytes'] for f in meta['files'].values())} bytes"]]
    return rows
