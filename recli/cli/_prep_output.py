"""Run the ``prep`` stage under a progress bar, write its outputs and show its report."""

from __future__ import annotations

import time

from recli import console
from recli.console import log


def emit(source: str, opts, out: str | None, output_format: str | None, fmt: str | None, force: bool = False) -> None:
    """Run :func:`recli.stages.prep.prep`, then write ``--out DIR`` (replacing it as a whole)
    or stdout, then the report."""
    from recli.data import io as rio
    from recli.data.outdir import check_output_dir, write_dir
    from recli.stages.prep import STAGES, manifest, prep

    dir_fmt = rio.check_format(output_format or fmt, "--output-format") or "csv"
    stdout_fmt = rio.output_format("-", fmt)
    if out is not None:
        check_output_dir(out, "prep", force=force)
    else:
        rio.check_stdout(stdout_fmt)
    started = time.perf_counter()
    with console.progress() as bar:
        task = bar.add_task("prep", total=len(STAGES) + 1)

        def on_stage(name: str) -> None:
            bar.update(task, description=f"prep: {name}", completed=STAGES.index(name))
            log.debug("prep: %s (at %.1f s)", name, time.perf_counter() - started)

        result = prep(source, opts, on_stage=on_stage, has_output_dir=out is not None)
        bar.update(task, description="prep: write", completed=len(STAGES))
        if out is None:
            rio.write_table(result.frames["data"], "-", stdout_fmt)
        else:
            tables = dict(result.frames)
            if result.user_means is not None:
                tables["user_means"] = result.user_means
            features = {role: entry for role, (_, entry) in result.features.items()}
            write_dir(out, tables, dir_fmt, manifest(opts, result.report, {}, dir_fmt, out, features), force=force,
                      parquet={f"{role}_features": frame for role, (frame, _) in result.features.items()})
        bar.update(task, completed=len(STAGES) + 1)
    log.debug("prep: done (at %.1f s)", time.perf_counter() - started)
    for role, counts in result.report.get("features", {}).items():
        if counts["matched"] < counts["ids"] or counts["interaction_ids_without_features"]:
            log.info(f"{role} features: {counts['matched']:,} of the {counts['ids']:,} ids with features occur in the "
                     f"interactions; {counts['interaction_ids_without_features']:,} of the "
                     f"{counts['interaction_ids']:,} interaction {role}s have no features")
    _show_report(result.report, out)


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.2f}"


def _show_report(report: dict, out: str | None) -> None:
    rows: list[tuple[str, str]] = [("rows read", f"{report['rows_read']:,}")]
    rows += [(f"dropped: {reason}", f"{n:,}") for reason, n in report["dropped"].items()]
    rows += [(f"changed: {reason}", f"{n:,}") for reason, n in report["changed"].items()]
    rows += [(f"rows written: {name}", f"{n:,}") for name, n in report["rows_written"].items()]
    rows += [("users", f"{report['users']:,}"), ("items", f"{report['items']:,}"),
             ("density", f"{report['density']:.3g}")]
    q = report["interactions_per_user"]
    rows.append(("interactions per user", " / ".join(f"{k} {_fmt(v)}" for k, v in q.items())))
    split = report.get("split")
    if split:
        rows.append(("split", f"{split['strategy']} ({split['size']})"))
        if split.get("cut_timestamp") is not None:
            rows.append(("temporal cut (epoch s)", str(split["cut_timestamp"])))
            rows.append(("timestamp ties at cut", f"{split['ties_at_cut']:,} ({split['ties_in_train']:,} in train)"))
        for name in ("test", "valid"):
            if f"cold_users_in_{name}" in split:
                rows.append((f"cold users / items in {name}",
                             f"{split[f'cold_users_in_{name}']:,} / {split[f'cold_items_in_{name}']:,}"))
                rows.append((f"{name} pairs already in train", f"{split[f'{name}_pairs_seen_in_train']:,}"))
    for role, counts in report.get("features", {}).items():
        kinds = ", ".join(f"{kind} {n:,}" for kind, n in counts["per_kind"].items())
        rows.append((f"{role} features", f"{counts['features']:,} ({kinds}) over {counts['ids']:,} {role}s"))
        rows.append((f"{role}s without features", f"{counts['ids_without_features']:,}"))
        if counts["dropped_min_count"] or counts["dropped_vocabulary_cap"]:
            rows.append((f"{role} features dropped", ", ".join(
                [f"{col} {n:,} under min_count" for col, n in counts["dropped_min_count"].items()]
                + [f"{col} {n:,} over the vocabulary cap" for col, n in counts["dropped_vocabulary_cap"].items()])))
    norm = report["normalization"]
    if norm["method"] != "none":
        rows.append(("normalization", ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                                for k, v in norm.items())))
    console.print_table("recli prep" + (f" → {out}" if out else ""), rows)
