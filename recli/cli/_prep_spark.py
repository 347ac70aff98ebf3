"""``prep --engine spark``: run :mod:`recli.stages.spark.prep`, write the Parquet folders and
``manifest.json`` into ``--out`` (replaced as a whole), and show the local report."""

from __future__ import annotations

import json


def emit_spark(source: str, opts, out: str | None, output_format: str | None, force: bool, spark: tuple) -> None:
    from recli.cli._prep_output import _show_report
    from recli.console import progress
    from recli.data.io import ReadOptions
    from recli.data.outdir import check_output_dir, staged_dir
    from recli.data.schema import ColumnNames
    from recli.errors import ConfigError
    from recli.stages.prep import input_info, manifest
    from recli.stages.spark import prep as stage
    from recli.stages.spark import session

    if out is None:
        raise ConfigError("prep --engine spark writes Parquet folders to --out DIR, not stdout", hint="pass --out DIR")
    if output_format not in (None, "parquet"):
        raise ConfigError(f"prep --engine spark writes Parquet, not {output_format}", hint="drop --output-format")
    check_output_dir(out, "prep", force=force)
    c = opts.clean
    read = ReadOptions(fmt=opts.input_format, sep=opts.sep, quote=opts.quote, encoding=opts.encoding,
                       columns=ColumnNames(c.user_col, c.item_col, c.rating_col, c.time_col))
    with progress() as bar, staged_dir(out, "prep", force=force) as tmp:
        bar.add_task("prep on Spark", total=None)
        parts, report = stage.prep(session.session(session.settings(*spark)), source, opts, read)
        report["input"] = input_info(source)
        files = {name: f"{name}.parquet" for name in parts}
        for name, part in parts.items():
            stage.output(part).write.parquet(str(tmp / files[name]))
        data = dict(manifest(opts, report, {}, "parquet", out), engine="spark", files=dict(files, manifest="manifest.json"))
        (tmp / "manifest.json").write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    _show_report(report, out)
