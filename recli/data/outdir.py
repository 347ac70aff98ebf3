"""Write a set of tables plus a JSON manifest into a directory, all or nothing.

Files are first written into a hidden staging directory on the same filesystem, then
moved into place (the whole directory is renamed when it did not exist yet). Any
failure removes the staging directory, so a failed run leaves no partial file.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import polars as pl

from recli.data.io import default_mode, write_table
from recli.errors import OutputError

EXTENSIONS = {"csv": ".csv", "tsv": ".tsv", "parquet": ".parquet", "jsonl": ".jsonl"}


def check_writable(out_dir: str) -> None:
    """Fail early (before any work) when ``out_dir`` cannot be created or written."""
    target = Path(out_dir)
    if target.exists() and not target.is_dir():
        raise OutputError(f"--out {out_dir!r} exists and is not a directory", hint="choose a directory path for --out")
    where = target if target.exists() else target.parent
    if where.exists() and not where.is_dir():
        raise OutputError(f"cannot create --out {out_dir!r}: {str(where)!r} is not a directory",
                          hint="choose an --out path inside a writable directory")
    if not where.exists():
        raise OutputError(f"the parent directory of --out {out_dir!r} does not exist",
                          hint=f"create it first (mkdir -p {where}) or choose another --out")
    if not os.access(where, os.W_OK | os.X_OK):
        raise OutputError(f"output directory {str(where)!r} is not writable",
                          hint="choose a writable --out directory, or fix its permissions")


def write_dir(out_dir: str, tables: dict[str, pl.DataFrame], fmt: str, manifest: dict) -> dict[str, str]:
    """Write ``tables`` (name → frame) as ``name.<fmt>`` and ``manifest.json`` into ``out_dir``.

    ``manifest`` gets a ``files`` entry mapping names to file names. Returns that mapping.
    """
    check_writable(out_dir)
    target = Path(out_dir)
    exists = target.exists()
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target if exists else target.parent))
    except OSError as exc:
        raise OutputError(f"cannot write to {out_dir!r}: {exc.strerror}", hint="choose a writable --out directory") from None
    files = {name: name + EXTENSIONS[fmt] for name in tables}
    try:
        for name, frame in tables.items():
            write_table(frame, str(staging / files[name]), fmt)
        manifest = dict(manifest, files=dict(files, manifest="manifest.json"))
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")
        _default_permissions(staging, [*files.values(), "manifest.json"])
        if exists:
            for name in [*files.values(), "manifest.json"]:
                os.replace(staging / name, target / name)
            staging.rmdir()
        else:
            os.rename(staging, target)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise OutputError(f"cannot write to {out_dir!r}: {exc.strerror or exc}",
                          hint="check free disk space and permissions of --out") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return files


def _default_permissions(staging: Path, names: list[str]) -> None:
    """mkstemp/mkdtemp create private (0600/0700) entries; give them the usual umask modes."""
    os.chmod(staging, default_mode(directory=True))
    for name in names:
        os.chmod(staging / name, default_mode(directory=False))
