"""The conventions every command relies on: formats, stdin, atomic writes, errors."""

from __future__ import annotations

import gzip
import io

import polars as pl
import pytest

from recli.data import io as rio
from recli.errors import InputError, OutputError
from tests.conftest import run_recli


def test_version_and_help(cli):
    res = cli(["--version"])
    assert res.exit_code == 0
    assert res.stdout.startswith("recli ")
    res = cli(["--help"])
    assert res.exit_code == 0


def test_unknown_command_is_one_error_line():
    res = run_recli(["no-such-command"])
    assert res.returncode == 2
    err = res.stderr.decode()
    assert err.startswith("error: ")
    assert "hint: " in err
    assert "Traceback" not in err
    assert res.stdout == b""


@pytest.mark.parametrize("sep, text", [
    (",", "user,item,rating\n001,a,5\n002,b,3\n"),
    ("\t", "user\titem\trating\n001\ta\t5\n002\tb\t3\n"),
    (";", "user;item;rating\n001;a;5\n002;b;3\n"),
    ("|", "user|item|rating\n001|a|5\n002|b|3\n"),
])
def test_separator_is_sniffed_and_ids_stay_strings(tmp_path, sep, text):
    p = tmp_path / "x.txt"
    p.write_text(text)
    df = rio.read_table(str(p))
    assert df.columns == ["user", "item", "rating"]
    assert df["user"].to_list() == ["001", "002"]


def test_double_colon_separator_headerless(tmp_path):
    p = tmp_path / "ratings.dat"
    p.write_text("1::1193::5::978300760\n1::661::3::978302109\n")
    df = rio.read_table(str(p), has_header=False, columns=["user", "item", "rating", "timestamp"])
    assert df.shape == (2, 4)
    assert df["item"].to_list() == ["1193", "661"]


def test_trailing_delimiter_is_dropped(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("user,item,rating,\n1,a,5,\n2,b,4,\n")
    df = rio.read_table(str(p))
    assert df.columns == ["user", "item", "rating"]


def test_ragged_lines_rejected(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("user,item\n1,a\n2,b,extra,more\n")
    with pytest.raises(InputError):
        rio.read_table(str(p))


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet", "jsonl"])
def test_round_trip_every_format(tmp_path, fmt):
    df = pl.DataFrame({"user": ["007", "8"], "item": ["x", "y"], "rating": ["4.5", "3"]})
    dest = tmp_path / f"out.{fmt}"
    rio.write_table(df, str(dest))
    back = rio.read_table(str(dest))
    assert back["user"].to_list() == ["007", "8"]
    assert not list(tmp_path.glob(".*tmp")), "temporary file left behind"


def test_gzip_csv(tmp_path):
    p = tmp_path / "d.csv.gz"
    p.write_bytes(gzip.compress(b"user,item\n1,a\n"))
    assert rio.read_table(str(p)).shape == (1, 2)
    rio.write_table(pl.DataFrame({"a": ["1"]}), str(tmp_path / "o.csv.gz"))
    assert gzip.decompress((tmp_path / "o.csv.gz").read_bytes()).startswith(b"a\n")


def test_parquet_sniffed_on_stdin(monkeypatch):
    buf = io.BytesIO()
    pl.DataFrame({"user": ["1"], "item": ["a"]}).write_parquet(buf)

    class FakeStdin:
        buffer = io.BytesIO(buf.getvalue())

    monkeypatch.setattr("sys.stdin", FakeStdin())
    df = rio.read_table("-")
    assert df.columns == ["user", "item"]


@pytest.mark.parametrize("content, fragment", [("", "empty"), ("user,item\n", "no rows")])
def test_empty_inputs(tmp_path, content, fragment):
    p = tmp_path / "e.csv"
    p.write_text(content)
    with pytest.raises(InputError, match=fragment):
        rio.read_table(str(p))


def test_missing_file():
    with pytest.raises(InputError, match="does not exist") as info:
        rio.read_table("/no/such/file.csv")
    assert info.value.hint


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    dest = tmp_path / "out.csv"
    with pytest.raises(RuntimeError), rio.atomic_path(dest) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []


def test_unwritable_directory():
    with pytest.raises(OutputError), rio.atomic_path("/no/such/dir/out.csv"):
        pass


def test_config_file_precedence(tmp_path):
    from recli.config import load_config_file, to_default_map

    cfg = tmp_path / "recli.toml"
    cfg.write_text("[prep]\nmin-user-interactions = 5\nseed = 3\n")
    assert to_default_map(load_config_file(str(cfg))) == {"prep": {"min_user_interactions": 5, "seed": 3}}


def test_outputs_get_umask_permissions_not_private_temp_modes(tmp_path, cli):
    """mkstemp/mkdtemp create 0600/0700 entries; finished outputs must look like open()'s."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        rio.write_table(pl.DataFrame({"user": ["1"], "item": ["a"]}), str(tmp_path / "o.csv"))
        assert stat.S_IMODE((tmp_path / "o.csv").stat().st_mode) == 0o644
        (tmp_path / "t.csv").write_text("user,item\n1,a\n2,b\n2,a\n")
        res = cli(["train", tmp_path / "t.csv", "--model", "popular", "-o", tmp_path / "m", "-q"])
        assert res.exit_code == 0, res.stderr
        assert stat.S_IMODE((tmp_path / "m").stat().st_mode) == 0o755
    finally:
        os.umask(old)
