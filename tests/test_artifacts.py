"""The model directory: atomic writes, integrity checks, version checks, no pickle."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from recli.artifacts import FORMAT_VERSION, load_model, read_meta, save_model
from recli.data.matrix import build_interactions
from recli.errors import ArtifactError, OutputError
from recli.models.popular import Popular


@pytest.fixture
def saved(tmp_path):
    data = build_interactions(pl.DataFrame({"user": ["a", "a", "b", "c"], "item": ["x", "y", "x", "z"]}))
    model = Popular().fit(data.user_items)
    path = tmp_path / "model"
    save_model(path, model, data.users, data.items, data.user_items, {"config": {"window_days": 0.0, "measure": "users"}})
    return path, data


def test_layout_meta_and_mmap(saved):
    path, data = saved
    meta = read_meta(path)
    assert meta["format_version"] == FORMAT_VERSION and meta["model"] == "popular"
    assert meta["counts"] == {"users": 3, "items": 3, "interactions": 4}
    assert set(meta["files"]) == {"model.popularity.npy", "train.indptr.npy", "train.indices.npy", "train.data.npy",
                                  "users.parquet", "items.parquet", "user_ids.npy", "item_ids.npy"}
    loaded = load_model(path)
    assert isinstance(loaded.train[1], np.memmap)  # served from the page cache
    np.testing.assert_array_equal(loaded.model.popularity, [2, 1, 1])
    assert loaded.users.ids.to_list() == ["a", "b", "c"]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")], "temporary directory left behind"


def test_overwrite_replaces_a_model_but_not_other_things(saved, tmp_path):
    path, data = saved
    save_model(path, Popular().fit(data.user_items), data.users, data.items, data.user_items, {"config": {}})
    load_model(path)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(OutputError, match="not a recli model"):
        save_model(other, Popular().fit(data.user_items), data.users, data.items, data.user_items, {})
    assert (other / "keep.txt").read_text() == "mine"


def _flip_byte(path):
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("damage, message", [
    (lambda p: _flip_byte(p / "model.popularity.npy"), "corrupt"),
    (lambda p: (p / "train.indices.npy").write_bytes((p / "train.indices.npy").read_bytes()[:-4]), "truncated"),
    (lambda p: (p / "items.parquet").unlink(), "missing"),
    (lambda p: (p / "meta.json").write_text("{not json"), "corrupt"),
    (lambda p: (p / "meta.json").unlink(), "not a recli model"),
])
def test_damaged_models_are_refused(saved, damage, message):
    path, _ = saved
    damage(path)
    with pytest.raises(ArtifactError, match=message):
        load_model(path)


def test_newer_format_is_refused(saved):
    path, _ = saved
    meta = json.loads((path / "meta.json").read_text())
    meta["format_version"] = FORMAT_VERSION + 1
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="newer") as info:
        load_model(path)
    assert "upgrade" in info.value.hint


def test_size_check_without_checksums_still_catches_truncation(saved):
    path, _ = saved
    _flip_byte(path / "model.popularity.npy")
    load_model(path, checksums=False)  # same size: only the checksum would notice
    (path / "train.data.npy").write_bytes(b"")
    with pytest.raises(ArtifactError, match="truncated"):
        load_model(path, checksums=False)


def test_pickled_arrays_are_never_loaded(saved):
    path, _ = saved
    np.save(path / "model.popularity.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    meta = json.loads((path / "meta.json").read_text())
    import hashlib

    raw = (path / "model.popularity.npy").read_bytes()
    meta["files"]["model.popularity.npy"] = {"bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="cannot read"):
        load_model(path)


def test_checksums_are_cached_per_file_version(saved, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path, _ = saved
    load_model(path)  # hashes and remembers
    assert list((tmp_path / "cache" / "recli" / "verified").iterdir())
    load_model(path)
    _flip_byte(path / "train.data.npy")  # a rewrite changes the mtime: hashed again
    with pytest.raises(ArtifactError, match="corrupt"):
        load_model(path)
