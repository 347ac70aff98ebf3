"""Output folders recli writes (``prep --out``, ``train -o``): replaced as a whole, atomically.

Every file goes into a hidden staging directory beside the target (same filesystem).
Only when all of it is written is the old folder renamed aside, the staging directory
renamed into place and the old one removed, so the folder never mixes files of two runs
(a stale ``valid.csv`` would leak into the next split) and a failed run leaves the old
folder untouched.

An existing folder is replaced only when recli wrote it as the same *kind* of output,
recognised by its marker file: ``manifest.json`` with ``"command": "prep"`` (a prep
folder) or ``meta.json`` with ``"format": "recli-model"`` (a model). An empty folder is
also fine. Anything else is refused unless ``force`` is given. The working directory, its
parents and the home directory are never replaced.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from recli.data.io import EXTENSIONS, default_mode, split_compression, write_table
from recli.errors import EnvironmentFault, OutputError, environment_fault

if TYPE_CHECKING:
    import polars as pl

# kind → (marker file, key, value): what identifies a folder recli wrote
# A tune study folder (``study.json``) is checked by the same rule but never swapped as a
# whole: it is a resumable workspace whose files are each written atomically.
KINDS = {"prep": ("manifest.json", "command", "prep"), "model": ("meta.json", "format", "recli-model"),
         "tune": ("study.json", "command", "tune"),
         "spark-als": ("metadata/part-00000", "class", "org.apache.spark.ml.recommendation.ALSModel")}
_DESCRIBE = {"prep": "a recli prep folder", "model": "a recli model", "tune": "a recli tune study folder",
             "spark-als": "a Spark ALSModel folder"}


def folder_kind(path: str | os.PathLike) -> str | None:
    """The kind of recli output folder ``path`` is (``prep``/``model``/``tune``), else ``None``."""
    for kind, (marker, key, value) in KINDS.items():
        try:
            data = json.loads((Path(path) / marker).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and data.get(key) == value:
            return kind
    return None


def _protected(target: Path) -> bool:
    """The cwd, its parents and the home directory are never replaced, whatever ``force`` says."""
    resolved = target.resolve()
    cwd = Path.cwd().resolve()
    return resolved == cwd or resolved in cwd.parents or resolved == Path.home().resolve()


def check_output_dir(out_dir: str | os.PathLike, kind: str, *, force: bool = False, option: str = "--out") -> None:
    """Fail early (before any work) when ``out_dir`` cannot become a ``kind`` output folder.

    Parameters
    ----------
    out_dir : the folder to write; it may not exist yet.
    kind : ``"prep"``, ``"model"`` or ``"tune"`` (see :data:`KINDS`).
    force : replace an existing folder that recli did not write as ``kind``.
    option : the option name used in messages (``--out``, ``-o``).

    Raises
    ------
    OutputError : a file is in the way, the parent is missing or not writable, or the folder
        holds something else than a ``kind`` output and ``force`` is not given.
    """
    target = Path(os.path.abspath(out_dir))  # "." and "a/.." get a real name and parent
    parent = target.parent
    if _protected(target):
        raise OutputError(f"{option} {str(out_dir)!r} is the working directory, one of its parents or the home "
                          "directory; refusing to replace it", hint=f"choose a new folder for {option}, e.g. {option} out")
    if target.exists() and not target.is_dir():
        raise OutputError(f"{option} {str(out_dir)!r} exists and is not a directory; refusing to replace it",
                          hint=f"choose a directory path for {option}")
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"cannot create {option} {str(out_dir)!r}: {str(parent)!r} is not a directory",
                          hint=f"choose an {option} path inside a writable directory")
    if not parent.exists():
        raise OutputError(f"the parent directory of {option} {str(out_dir)!r} does not exist",
                          hint=f"create it first (mkdir -p {parent}) or choose another {option}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise EnvironmentFault(f"output directory {str(parent)!r} is not writable: permission denied",
                               hint=f"choose a writable {option} directory, or fix its permissions")
    if not target.is_dir() or not any(target.iterdir()):
        return
    found = folder_kind(target)
    if found == kind or force:
        return
    what = f"it is {_DESCRIBE[found]}" if found else "it holds files recli did not write"
    raise OutputError(f"{option} {str(out_dir)!r} is not {_DESCRIBE[kind]} ({what}); refusing to replace it",
                      hint=f"choose another {option} folder, or add --force to replace the whole folder")


@contextlib.contextmanager
def staged_dir(out_dir: str | os.PathLike, kind: str, *, force: bool = False, option: str = "--out") -> Iterator[Path]:
    """Yield an empty hidden staging folder beside ``out_dir``; on success it replaces ``out_dir``.

    The caller writes every file (including the kind's marker file) into the yielded path.
    On any exception the staging folder is removed and ``out_dir`` is left as it was.
    """
    check_output_dir(out_dir, kind, force=force, option=option)
    target = Path(os.path.abspath(out_dir))
    parent = target.parent
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent))
    except OSError as exc:
        raise _write_error(exc, parent, option) from None
    try:
        staging.chmod(default_mode(directory=True))  # mkdtemp makes it 0700; outputs are shared like any file
        yield staging
        _swap(staging, target)
    except OSError as exc:
        raise _write_error(exc, Path(out_dir), option) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_error(exc: OSError, where: Path, option: str) -> Exception:
    """An environment fault (full disk, permissions: exit 4) names what was being written;
    any other failure to write is an output error."""
    fault = environment_fault(exc, f"writing {option} {str(where)!r}")
    if fault is not None:
        return fault
    return OutputError(f"cannot write to {str(where)!r}: {exc.strerror or exc}",
                       hint=f"check the {option} path")


def _swap(staging: Path, target: Path) -> None:
    """Rename ``staging`` to ``target``; an old ``target`` is moved aside first (a folder
    cannot be renamed over a non-empty one), put back if the rename fails, removed after."""
    if not target.exists():
        os.rename(staging, target)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=staging.parent))
    old = aside / "old"
    os.rename(target, old)
    try:
        os.rename(staging, target)
    except OSError:
        os.rename(old, target)
        shutil.rmtree(aside, ignore_errors=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def write_dir(out_dir: str, tables: dict[str, pl.DataFrame], fmt: str, manifest: dict, *,
              force: bool = False, parquet: dict[str, pl.DataFrame] | None = None) -> dict[str, str]:
    """Write ``tables`` (name → frame) as ``name.<fmt>`` plus ``manifest.json``, replacing ``out_dir``.

    ``fmt`` may name a compression (``csv.gz``); the ``parquet`` tables are always written as
    ``name.parquet``. ``manifest`` must carry ``"command": "prep"``; it gets a ``files`` entry
    mapping names to file names, which is returned.
    """
    base, gz = split_compression(fmt)
    files = {name: name + EXTENSIONS[base] + (".gz" if gz else "") for name in tables}
    files.update({name: name + EXTENSIONS["parquet"] for name in parquet or {}})
    with staged_dir(out_dir, "prep", force=force) as staging:
        for name, frame in {**tables, **(parquet or {})}.items():
            write_table(frame, str(staging / files[name]), "parquet" if name in (parquet or {}) else fmt)
        manifest = dict(manifest, files=dict(files, manifest="manifest.json"))
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")
        for name in [*files.values(), "manifest.json"]:
            os.chmod(staging / name, default_mode(directory=False))
    return files
