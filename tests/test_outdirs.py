"""Output folders are replaced as a whole, never merged, and never over something else (issue 10 §3)."""

from __future__ import annotations

import json
import os

import pytest

from recli.data.outdir import check_output_dir, folder_kind, staged_dir
from recli.errors import OutputError
from tests.conftest import SAMPLE_DATA

SAMPLE = SAMPLE_DATA / "interactions.csv"
SPLIT = ["prep", SAMPLE, "--split", "random", "--seed", "3", "-q"]


def _names(path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def _one_error(res) -> str:
    assert res.exit_code == 2, (res.stdout, res.stderr)
    lines = res.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: ")
    return res.stderr


def test_rerun_without_valid_size_leaves_no_stale_valid_file(cli, tmp_path):
    out = tmp_path / "split"
    assert cli([*SPLIT, "--valid-size", "0.1", "--out", out]).exit_code == 0
    assert "valid.csv" in _names(out)
    res = cli([*SPLIT, "--out", out])
    assert res.exit_code == 0, res.stderr
    assert _names(out) == ["manifest.json", "test.csv", "train.csv"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging folder left behind"


def test_rerun_in_another_format_keeps_no_old_files(cli, tmp_path):
    out = tmp_path / "split"
    assert cli([*SPLIT, "--out", out]).exit_code == 0
    assert cli([*SPLIT, "--out", out, "--output-format", "parquet"]).exit_code == 0
    assert _names(out) == ["manifest.json", "test.parquet", "train.parquet"]


def test_prep_into_a_foreign_folder_is_refused_unless_forced(cli, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert "--force" in _one_error(cli([*SPLIT, "--out", out]))
    assert (out / "notes.txt").read_text() == "keep me"
    assert cli([*SPLIT, "--out", out, "--force"]).exit_code == 0
    assert _names(out) == ["manifest.json", "test.csv", "train.csv"]


def test_prep_into_an_empty_folder_is_fine(cli, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    assert cli([*SPLIT, "--out", out]).exit_code == 0
    assert folder_kind(out) == "prep"


@pytest.fixture
def model_dir(cli, tmp_path):
    path = tmp_path / "pop.model"
    res = cli(["train", SAMPLE, "--model", "popular", "-o", path, "-q"])
    assert res.exit_code == 0, res.stderr
    return path


def test_prep_into_a_model_is_refused(cli, model_dir):
    before = _names(model_dir)
    err = _one_error(cli([*SPLIT, "--out", model_dir]))
    assert "recli model" in err
    assert _names(model_dir) == before and folder_kind(model_dir) == "model"


def test_train_into_a_prep_folder_is_refused(cli, tmp_path):
    out = tmp_path / "split"
    assert cli([*SPLIT, "--out", out]).exit_code == 0
    err = _one_error(cli(["train", SAMPLE, "--model", "popular", "-o", out, "-q"]))
    assert "prep folder" in err and "--force" in err
    assert folder_kind(out) == "prep"
    res = cli(["train", SAMPLE, "--model", "popular", "-o", out, "-q", "--force"])
    assert res.exit_code == 0, res.stderr
    assert folder_kind(out) == "model" and "train.csv" not in _names(out)


def test_retraining_replaces_the_model_as_a_whole(cli, model_dir):
    (model_dir / "stray.npy").write_bytes(b"old")
    res = cli(["train", SAMPLE, "--model", "popular", "-o", model_dir, "-q"])
    assert res.exit_code == 0, res.stderr
    assert "stray.npy" not in _names(model_dir)


def test_a_failed_write_leaves_the_old_folder_untouched(tmp_path):
    out = tmp_path / "m"
    out.mkdir()
    (out / "meta.json").write_text(json.dumps({"format": "recli-model"}))
    with pytest.raises(RuntimeError), staged_dir(out, "model") as staging:
        (staging / "half.npy").write_bytes(b"x")
        raise RuntimeError("boom")
    assert _names(out) == ["meta.json"]
    assert _names(tmp_path) == ["m"]


def test_force_never_replaces_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "x").write_text("x")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputError, match="working directory"):
        check_output_dir(".", "prep")
    with pytest.raises(OutputError, match="working directory"):
        check_output_dir(".", "prep", force=True)
    with pytest.raises(OutputError, match="working directory"):
        check_output_dir(str(tmp_path.parent), "prep", force=True)
    assert os.path.exists(tmp_path / "x")


def test_a_file_in_the_way_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="not a directory"):
        check_output_dir(tmp_path / "f", "model", force=True)
