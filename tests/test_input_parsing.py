"""Input parsing shared by every command that reads interactions (issue 10 §5, §8):
one column resolver, quoting, separator hints, encodings, compressed outputs."""

from __future__ import annotations

import gzip
import io
import json

import polars as pl
import pytest

from recli.data.io import QUOTE_AUTO, read_table, to_utf8
from recli.data.schema import ColumnNames, resolve_columns, to_canonical
from recli.errors import InputError

ML_LATEST = "userId,movieId,rating,timestamp\n1,10,4.5,964982703\n1,20,3,964981247\n2,10,5,964982224\n" \
            "2,30,2,964983815\n3,20,4,964982931\n3,30,1,964982400\n"
# Last.fm play counts: tab-separated, an artist name holding double quotes
LASTFM = 'user\tartist\tplays\nu1\t"Weird Al" Yankovic\t12\nu2\tABBA\t3\nu1\tABBA\t5\nu3\t"Weird Al" Yankovic\t1\n'


def _csv(text: str) -> pl.DataFrame:
    return pl.read_csv(io.StringIO(text), infer_schema=False)


def _one_error(res) -> tuple[str, str]:
    assert res.exit_code == 2, (res.stdout, res.stderr)
    lines = res.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: "), res.stderr
    return lines[0], lines[1]


@pytest.fixture
def ml(tmp_path):
    p = tmp_path / "ratings.csv"
    p.write_text(ML_LATEST)
    return p


# ---- one column resolver ---------------------------------------------------------------------

def test_resolver_finds_aliases_and_named_columns():
    cols = ["userId", "movieId", "stars", "when"]
    assert resolve_columns(cols) == {"user": "userId", "item": "movieId", "rating": None, "timestamp": None}
    found = resolve_columns(cols, ColumnNames(rating="stars", timestamp="when"))
    assert found["rating"] == "stars" and found["timestamp"] == "when"
    with pytest.raises(InputError, match="--user-col"):
        resolve_columns(cols, ColumnNames(user="who"))
    with pytest.raises(InputError, match="same column"):
        resolve_columns(cols, ColumnNames(user="userId", item="userId"))


def test_to_canonical_renames_and_keeps_other_columns():
    df = pl.DataFrame({"userId": ["1"], "movieId": ["2"], "title": ["T"]})
    assert to_canonical(df, roles=("user", "item")).columns == ["user", "item", "title"]


def test_train_reads_movielens_column_names(cli, ml, tmp_path):
    res = cli(["train", ml, "--model", "popular", "-o", tmp_path / "m", "-q"])
    assert res.exit_code == 0, res.stderr
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    assert meta["counts"]["users"] == 3 and meta["counts"]["items"] == 3


def test_train_takes_the_column_options(cli, tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("who,what,stars\na,x,5\nb,y,3\n")
    res = cli(["train", p, "--model", "popular", "-o", tmp_path / "m", "--user-col", "who", "--item-col", "what",
               "--rating-col", "stars", "-q"])
    assert res.exit_code == 0, res.stderr
    assert cli(["recommend", tmp_path / "m", "--user", "a", "-k", "1"]).stdout.splitlines()[1].startswith("a,y,")


def test_eval_reads_movielens_test_and_items(cli, ml, tmp_path):
    recs = tmp_path / "recs.csv"
    recs.write_text("user,item,score\n1,30,1\n2,20,1\n3,10,1\n")
    items = tmp_path / "movies.csv"
    items.write_text("movieId,title,genres\n10,A,x|y\n20,B,y\n30,C,z\n")
    res = cli(["eval", recs, "--test", ml, "--items", items, "-m", "hit,ild", "-k", "1", "--format", "json"])
    assert res.exit_code == 0, res.stderr
    rows = {r["metric"]: r["value"] for r in json.loads(res.stdout)}
    assert rows["hit"] == 0.0


def test_eval_column_options(cli, tmp_path):
    recs = tmp_path / "recs.csv"
    recs.write_text("user,item,score\nu1,a,1\nu2,b,1\n")
    test = tmp_path / "test.csv"
    test.write_text("who,what\nu1,a\nu2,c\n")
    res = cli(["eval", recs, "--test", test, "--user-col", "who", "--item-col", "what", "-m", "hit", "-k", "1",
               "--format", "json"])
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)[0]["value"] == pytest.approx(0.5)


# ---- quoting -------------------------------------------------------------------------------

def test_tsv_fields_with_double_quotes_read_in_prep_and_train(cli, tmp_path):
    p = tmp_path / "lastfm.tsv"
    p.write_text(LASTFM)
    res = cli(["prep", p, "--item-col", "artist"])
    assert res.exit_code == 0, res.stderr
    assert '"Weird Al" Yankovic' in _csv(res.stdout)["item"].to_list()
    res = cli(["train", p, "--item-col", "artist", "--model", "popular", "-o", tmp_path / "m", "-q"])
    assert res.exit_code == 0, res.stderr
    top = cli(["recommend", tmp_path / "m", "--user", "u2", "-k", "1"])
    assert _csv(top.stdout)["item"].to_list() == ['"Weird Al" Yankovic']


def test_quote_and_no_quote_options(cli, tmp_path):
    p = tmp_path / "q.csv"
    p.write_text("user,item\nu1,'a,b'\nu2,c\n")
    res = cli(["prep", p, "--quote", "'"])
    assert res.exit_code == 0, res.stderr
    assert _csv(res.stdout)["item"].to_list() == ["a,b", "c"]
    p.write_text('user,item\nu1,5" disk\nu2,c\n')
    res = cli(["prep", p, "--no-quote"])
    assert res.exit_code == 0, res.stderr
    assert _csv(res.stdout)["item"].to_list() == ['5" disk', "c"]
    _one_error(cli(["prep", p, "--quote", "'", "--no-quote"]))


def test_read_table_quote_default_depends_on_the_separator(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text('a,b\n"1,2",3\n')
    assert read_table(str(p), quote=QUOTE_AUTO)["a"].to_list() == ["1,2"]
    p.write_text('a\tb\n"1\t2\n')
    assert read_table(str(p))["a"].to_list() == ['"1']


# ---- separator hint -------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["prep"], ["train", "--model", "popular", "-o", "OUT"]])
def test_wrong_separator_says_which_separator_the_header_holds(cli, ml, tmp_path, command):
    args = [str(tmp_path / "m") if a == "OUT" else a for a in command]
    error, hint = _one_error(cli([args[0], ml, *args[1:], "--sep", "tab"]))
    assert "user" in error
    assert "comma" in hint and "--sep" in hint


# ---- encodings ------------------------------------------------------------------------------

def test_non_utf8_input_names_the_line_and_suggests_encoding(cli, tmp_path):
    p = tmp_path / "latin.csv"
    p.write_bytes("user,item\nu1,a\nJosé,b\n".encode("latin-1"))
    error, hint = _one_error(cli(["prep", p]))
    assert "line 3" in error and "--encoding" in hint
    res = cli(["prep", p, "--encoding", "latin-1"])
    assert res.exit_code == 0, res.stderr
    assert _csv(res.stdout)["user"].to_list() == ["u1", "José"]
    _, hint = _one_error(cli(["train", p, "--model", "popular", "-o", tmp_path / "m"]))
    assert "--encoding" in hint


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-8-sig"])
def test_byte_order_marks_are_detected(cli, tmp_path, encoding):
    p = tmp_path / "bom.csv"
    data = "user,item\nJosé,a\nb,c\n".encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    p.write_bytes(data)
    res = cli(["prep", p])
    assert res.exit_code == 0, res.stderr
    df = _csv(res.stdout)
    assert df.columns == ["user", "item"] and df["user"].to_list() == ["José", "b"]


def test_utf16_without_bom_with_the_encoding_option(cli, tmp_path):
    p = tmp_path / "le.csv"
    p.write_bytes("user,item\nJosé,a\n".encode("utf-16-le"))
    res = cli(["prep", p, "--encoding", "utf-16-le"])
    assert res.exit_code == 0, res.stderr
    assert _csv(res.stdout)["user"].to_list() == ["José"]


def test_to_utf8_error_position_across_chunks(monkeypatch):
    import recli.data.io as rio

    monkeypatch.setattr(rio, "_CHUNK", 4)
    data = "ab\nçd\nef".encode() + b"\n\xff"
    with pytest.raises(InputError, match="line 4, byte 1 is 0xff"):
        to_utf8(data, name="x")
    assert to_utf8("ab\nçdé\n".encode()) == "ab\nçdé\n".encode()


# ---- compressed and tsv outputs (§8) ----------------------------------------------------------

@pytest.mark.parametrize("fmt, sep", [("csv.gz", ","), ("tsv.gz", "\t"), ("tsv", "\t")])
def test_prep_writes_compressed_and_tsv_folders(cli, ml, tmp_path, fmt, sep):
    out = tmp_path / "split"
    res = cli(["prep", ml, "--split", "random", "--test-size", "0.3", "--out", out, "--output-format", fmt, "-q"])
    assert res.exit_code == 0, res.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    name = manifest["files"]["train"]
    assert name == "train." + fmt
    raw = (out / name).read_bytes()
    text = (gzip.decompress(raw) if fmt.endswith(".gz") else raw).decode()
    assert text.splitlines()[0] == sep.join(["user", "item", "rating", "timestamp"])
    res = cli(["train", out / name, "--model", "popular", "-o", tmp_path / "m", "-q"])
    assert res.exit_code == 0, res.stderr


def test_prep_gzip_to_stdout(cli, ml):
    res = cli(["prep", ml, "--format", "csv.gz"])
    assert res.exit_code == 0, res.stderr
    assert gzip.decompress(res.stdout_bytes).decode().splitlines()[0] == "user,item,rating,timestamp"


def test_prep_help_documents_tsv_and_compressed_outputs():
    from typer.main import get_command

    from recli.cli.prep import app

    prep = get_command(app)
    opt = next(p for p in prep.params if "--output-format" in p.opts)
    assert all(f in opt.help for f in ("tsv", "csv.gz", "tsv.gz"))


def test_table_outputs_named_gz_are_compressed(cli, ml, tmp_path):
    assert cli(["train", ml, "--model", "popular", "-o", tmp_path / "m", "-q"]).exit_code == 0
    recs = tmp_path / "recs.csv.gz"
    res = cli(["recommend", tmp_path / "m", "--all-users", "-k", "2", "-o", recs])
    assert res.exit_code == 0, res.stderr
    assert gzip.decompress(recs.read_bytes()).decode().startswith("user,item,score,rank")
    res = cli(["eval", recs, "--test", ml, "-k", "2", "-o", tmp_path / "res.tsv.gz"])
    assert res.exit_code == 0, res.stderr
    assert gzip.decompress((tmp_path / "res.tsv.gz").read_bytes()).decode().startswith("model\tmetric")
