"""The model file: one directory, written atomically, loaded without pickle.

Layout of ``MODEL/`` (format version 1)::

    meta.json              format, versions, model name, full config, seed, threads, device,
                           fit time, per-epoch losses, counts, training-data fingerprint,
                           vocabulary hashes, and the size + sha256 of every other file
    users.parquet          the user id vocabulary (row i = user index i)
    items.parquet          the item id vocabulary
    user_ids.npy           the same vocabularies as sorted NumPy unicode arrays (added
    item_ids.npy           later; optional): a one-user request looks ids up with
                           ``np.searchsorted`` and never imports Polars
    model.<name>.npy       the model's arrays (``Model.to_arrays()``), little-endian
    train.indptr.npy       the training interactions as CSR (int64 / int32 / float32),
    train.indices.npy      kept to filter seen items and to fold in or explain users
    train.data.npy

Why a directory of ``.npy`` files rather than one ``.npz``/``.safetensors`` file: every
``.npy`` can be memory-mapped (``np.load(mmap_mode="r")``), so ``recli recommend`` for
one user touches only the pages it reads, and ``.npy`` is read by NumPy alone with
``allow_pickle=False`` (no extra dependency, no code execution on load). Parquet keeps the
string vocabularies compact and readable by any tool; ``meta.json`` is plain text.

Writing goes to a hidden temporary directory beside the target that replaces it as a
whole (:func:`recli.data.outdir.staged_dir`), so a crash never leaves a half-written
model, and a folder that is not a model (a ``prep`` folder, anything else) is refused
unless ``force`` is given. Loading refuses, with an
:class:`ArtifactError`, a directory that is not a recli model, a file of a newer format
version, a missing or truncated file (size check) and a corrupt one (sha256 check).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from recli import __version__, user_cache_dir
from recli.data.vocab import Vocab
from recli.errors import ArtifactError, ConfigError

if TYPE_CHECKING:
    import scipy.sparse as sp

FORMAT = "recli-model"
# 2: a model's own arrays no longer repeat the training matrix; from_arrays receives the
#    train.* arrays (version 1 files, whose kNN/EASE arrays hold their own copy, still load)
FORMAT_VERSION = 2
META = "meta.json"
_NAME = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass
class ModelFile:
    """A loaded model with its vocabularies, training interactions and metadata."""

    model: Any
    users: Vocab
    items: Vocab
    train: tuple[np.ndarray, np.ndarray, np.ndarray]  # (indptr int64, indices int32, data float32), maybe mmap
    meta: dict[str, Any]
    path: Path | None = None

    @property
    def user_items(self) -> sp.csr_matrix:
        """The training interactions as a scipy CSR (built on demand: serving only needs
        the raw ``train`` arrays, which stay memory-mapped)."""
        from recli.data.matrix import csr_from_arrays

        return csr_from_arrays(*self.train, (len(self.users), len(self.items)))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _save_array(directory: Path, name: str, array: np.ndarray) -> str:
    array = np.asarray(array)
    if array.dtype.hasobject:
        raise ArtifactError(f"array {name!r} has dtype object and cannot be stored", hint="store numeric arrays only")
    array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    fname = f"{name}.npy"
    np.save(directory / fname, array, allow_pickle=False)
    return fname


def check_model_space(path: str | os.PathLike, cls: Any, config: Any, n_users: int, n_items: int, nnz: int) -> None:
    """Refuse before the fit when the disk holding ``path`` cannot take the model file:
    the model's arrays (``cls.stored_bytes``), the training CSR (8 bytes per interaction
    and per user) and the id vocabularies (Parquet and NumPy, about 64 bytes per id)."""
    from recli.errors import check_free_space

    needed = cls.stored_bytes(config, n_users, n_items) + 8 * (nnz + n_users + 1) + 64 * (n_users + n_items)
    check_free_space(str(path), needed, f"the model {str(path)!r}")


def save_model(path: str | os.PathLike, model: Any, users: Vocab, items: Vocab, user_items: sp.csr_matrix,
               meta: dict[str, Any], *, force: bool = False) -> dict[str, Any]:
    """Write the model directory atomically, replacing an old model (or with ``force``
    any folder) as a whole, and return the metadata written.

    ``meta`` holds the run facts (config, seed, threads, device, fit time, losses,
    fingerprint, ...); format fields, counts, hashes and the file list are added here.
    """
    from recli.data.matrix import csr_arrays
    from recli.data.outdir import staged_dir

    with staged_dir(path, "model", force=force, option="-o") as tmp:
        files = []
        for name, array in model.to_arrays().items():
            if not _NAME.match(name):
                raise ArtifactError(f"array name {name!r} is not a safe file name", hint="use letters, digits and _")
            files.append(_save_array(tmp, f"model.{name}", array))
        for name, array in zip(("indptr", "indices", "data"), csr_arrays(user_items)):
            files.append(_save_array(tmp, f"train.{name}", array))
        users.to_frame().write_parquet(tmp / "users.parquet")
        items.to_frame().write_parquet(tmp / "items.parquet")
        files += ["users.parquet", "items.parquet"]
        files += [_save_array(tmp, f"{n}_ids", a) for n, a in (("user", _id_array(users)), ("item", _id_array(items)))
                  if a is not None]
        full = {"format": FORMAT, "format_version": FORMAT_VERSION, "recli_version": __version__,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **meta,
                "model": model.name, "arrays": sorted(model.to_arrays()),
                "counts": {"users": len(users), "items": len(items), "interactions": int(user_items.nnz),
                           **meta.get("counts", {})},
                "users_hash": users.hash, "items_hash": items.hash,
                "files": {f: {"bytes": (tmp / f).stat().st_size, "sha256": _sha256(tmp / f)} for f in files}}
        (tmp / META).write_text(json.dumps(full, indent=2, default=_json_default) + "\n", encoding="utf-8")
    return full


def _id_array(vocab: Vocab) -> np.ndarray | None:
    """The vocabulary as a NumPy unicode array, or ``None`` when NumPy's order would not
    match the vocabulary's (then loading uses the Parquet file only)."""
    array = vocab.array
    if array.dtype.kind != "U" or array.tolist() != vocab.ids.to_list():  # e.g. a trailing NUL dropped
        return None
    if array.shape[0] > 1 and not bool(np.all(array[:-1] < array[1:])):
        return None
    return array


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in meta.json")


def check_destination(dest: str | os.PathLike, force: bool = False) -> None:
    """Fail early (before training) when ``dest`` cannot receive a model directory
    (:func:`recli.data.outdir.check_output_dir` with kind ``model``)."""
    from recli.data.outdir import check_output_dir

    check_output_dir(dest, "model", force=force, option="-o")


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """Parse and check ``meta.json`` (format and version) without reading any array."""
    p = Path(path)
    if not p.exists():
        raise ArtifactError(f"model {str(p)!r} does not exist", hint="train one with 'recli train TRAIN --model NAME -o MODEL'")
    if not p.is_dir() or not (p / META).exists():
        raise ArtifactError(f"{str(p)!r} is not a recli model (no {META} inside)",
                            hint="pass the directory written by 'recli train -o MODEL'")
    try:
        meta = json.loads((p / META).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{str(p / META)!r} is corrupt: {exc}", hint="retrain the model with recli train") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(meta.get("format_version"), int):
        raise ArtifactError(f"{str(p)!r} is not a recli model file (bad {META})", hint="retrain the model with recli train")
    if meta["format_version"] > FORMAT_VERSION:
        raise ArtifactError(f"{str(p)!r} has model format version {meta['format_version']}, newer than this recli "
                            f"{__version__} reads (up to {FORMAT_VERSION})",
                            hint="upgrade recli (pip install -U recli), or retrain the model with this version")
    if not isinstance(meta.get("files"), dict):
        raise ArtifactError(f"{str(p / META)!r} lists no files", hint="retrain the model with recli train")
    return meta


def _stamp(path: Path, meta: dict[str, Any]) -> Path:
    """Where a successful checksum pass over exactly these files (path, size, mtime,
    inode of each) is remembered, so a warm ``recommend`` does not re-hash the model."""
    stats = []
    for fname in sorted(meta["files"]) + [META]:
        st = (path / fname).stat()
        stats.append([fname, st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev])
    key = hashlib.sha256(json.dumps([str(path.resolve()), stats]).encode()).hexdigest()
    base = user_cache_dir() / "verified"
    return base / key


def verify_files(path: str | os.PathLike, meta: dict[str, Any], checksums: bool | None = True) -> None:
    """Every listed file exists with its recorded size, and its sha256 matches.

    ``checksums``: ``True`` always hashes; ``None`` hashes unless these very files (same
    path, size, mtime and inode) passed before — any rewrite of a file changes its mtime,
    so a damaged copy is hashed again; ``False`` checks sizes only.
    """
    p = Path(path)
    _check_sizes(p, meta)
    if checksums is False:
        return
    stamp = _stamp(p, meta)
    if checksums is None and stamp.exists():
        return
    for fname, info in meta["files"].items():
        if _sha256(p / fname) != info.get("sha256"):
            raise ArtifactError(f"model {str(p)!r} is corrupt: the checksum of {fname} does not match",
                                hint="copy the model again, or retrain it")
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.touch()
    except OSError:  # a read-only cache only costs the next run a re-check
        pass


def _check_sizes(p: Path, meta: dict[str, Any]) -> None:
    for fname, info in meta["files"].items():
        f = p / fname
        if not f.is_file():
            raise ArtifactError(f"model {str(p)!r} is incomplete: {fname} is missing", hint="retrain the model with recli train")
        size = f.stat().st_size
        if size != info.get("bytes"):
            raise ArtifactError(f"model {str(p)!r} is truncated or altered: {fname} has {size} bytes, "
                                f"expected {info.get('bytes')}", hint="copy the model again, or retrain it")


def _load_array(path: Path, fname: str, mmap: bool) -> np.ndarray:
    try:
        return np.load(path / fname, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ArtifactError(f"cannot read {fname} in model {str(path)!r}: {exc}", hint="retrain the model") from None


def _load_vocab(path: Path, meta: dict[str, Any], name: str, mmap: bool) -> Vocab:
    """From ``<name>_ids.npy`` when the model file has it (no Polars), else the Parquet file."""
    fname = f"{name}_ids.npy"
    if fname in meta["files"]:
        array = _load_array(path, fname, mmap)
        if array.dtype.kind != "U" or array.ndim != 1:
            raise ArtifactError(f"{fname} in model {str(path)!r} is not a 1-d unicode array",
                                hint="copy the model again, or retrain it")
        return Vocab.from_array(array)
    import polars as pl

    return Vocab.from_frame(pl.read_parquet(path / f"{name}s.parquet"))


def load_model(path: str | os.PathLike, backend: Any = None, *, checksums: bool | None = None,
               mmap: bool = True) -> ModelFile:
    """Load and check a model directory (``checksums`` as in :func:`verify_files`);
    arrays are memory-mapped read-only by default."""
    from recli.models import get_model_class, registry
    from recli.models.base import build_config

    p = Path(path)
    meta = read_meta(p)
    verify_files(p, meta, checksums)
    try:
        cls = get_model_class(str(meta.get("model")))
    except ConfigError:
        raise ArtifactError(f"model {str(p)!r} holds a {meta.get('model')!r} model, which this recli does not know",
                            hint=f"this recli knows: {', '.join(registry())}; upgrade recli") from None
    arrays = {name: _load_array(p, f"model.{name}.npy", mmap) for name in meta.get("arrays", [])}
    indptr, indices, data = (_load_array(p, f"train.{n}.npy", mmap) for n in ("indptr", "indices", "data"))
    users, items = (_load_vocab(p, meta, n, mmap) for n in ("user", "item"))
    # a vocabulary read from its .npy whose sha256 was checked needs no second hash
    # (that pass costs ~20 ms per 100k ids); with --no-verify, or from Parquet, it is checked
    checked = checksums is not False
    if any(not (checked and v._array is not None) and v.hash != meta.get(f"{n}_hash")
           for v, n in ((users, "users"), (items, "items"))):
        raise ArtifactError(f"model {str(p)!r}: the id vocabularies do not match their recorded hashes",
                            hint="copy the model again, or retrain it")
    shape = (len(users), len(items))
    if indptr.shape[0] != shape[0] + 1 or indices.shape != data.shape:
        raise ArtifactError(f"model {str(p)!r}: the training matrix does not match the vocabularies",
                            hint="retrain the model with recli train")
    config = build_config(cls.Config, meta.get("config", {}), cls.name)
    stored_train = {"train_indptr": indptr, "train_indices": indices, "train_data": data,
                    "train_shape": np.asarray(shape, np.int64)}
    model = cls.from_arrays(config, {**stored_train, **arrays}, backend)
    model.n_users, model.n_items = shape
    model.epoch_losses = list(meta.get("epoch_losses", []))
    return ModelFile(model, users, items, (indptr, indices, data), meta, p)
