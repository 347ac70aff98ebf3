"""``recli prep`` from the command line: files, pipes, a terminal, bad input, config (issue #2)."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import subprocess
import sys
import time

import polars as pl
import pytest

from tests.conftest import REPO_ROOT, SAMPLE_DATA, run_recli

SAMPLE = SAMPLE_DATA / "interactions.csv"
QUICKSTART = ["prep", str(SAMPLE), "--split", "leave-random", "--test-size", "0.2", "--seed", "42"]


def small_csv(tmp_path, text="user,item,rating,timestamp\n001,a,5,10\n001,b,3,20\n002,a,4,30\n002,c,1,40\n"
              "003,b,2,50\n003,c,5,60\n"):
    p = tmp_path / "in.csv"
    p.write_text(text)
    return p


def read_csv_text(text: str) -> pl.DataFrame:
    return pl.read_csv(io.StringIO(text), infer_schema=False)


def test_readme_quickstart_writes_train_test_and_manifest(cli, tmp_path):
    out = tmp_path / "qs"
    res = cli([*QUICKSTART, "--out", out])
    assert res.exit_code == 0, res.stderr
    assert res.stdout == ""                                   # data went to files; the report to stderr
    assert "rows read" in res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "test.csv", "train.csv"]
    train = pl.read_csv(out / "train.csv", infer_schema=False)
    test = pl.read_csv(out / "test.csv", infer_schema=False)
    assert train.columns == test.columns == ["user", "item", "rating", "timestamp"]
    man = json.loads((out / "manifest.json").read_text())
    assert man["seed"] == 42 and man["options"]["split"] == "leave-random"
    assert man["rows"]["written"] == {"train": train.height, "test": test.height}
    assert man["rows"]["read"] == sum(man["rows"]["dropped"].values()) + train.height + test.height
    assert man["input"]["size_bytes"] == SAMPLE.stat().st_size and len(man["input"]["sha256"]) == 64
    assert man["recli_version"] and man["report"]["interactions_per_user"]["p50"] > 0


def test_stdout_holds_only_the_cleaned_csv(cli, tmp_path):
    res = cli(["prep", small_csv(tmp_path), "--min-user-interactions", "2"])
    assert res.exit_code == 0
    df = read_csv_text(res.stdout)
    assert df.columns == ["user", "item", "rating", "timestamp"] and df.height == 6
    assert df["user"][0] == "001"
    assert "rows read" in res.stderr and "rows read" not in res.stdout


def test_stdin_dash_and_quiet(cli, tmp_path):
    res = cli(["prep", "-", "-q"], input=small_csv(tmp_path).read_text())
    assert res.exit_code == 0 and read_csv_text(res.stdout).height == 6
    assert res.stderr == ""


def test_stdin_input_is_hashed_in_the_manifest(cli, tmp_path):
    import gzip
    import hashlib

    raw = gzip.compress(SAMPLE.read_bytes())  # the hash is of the bytes as piped, compressed or not
    res = cli(["prep", "-", "--out", tmp_path / "o", "-q"], input=raw)
    assert res.exit_code == 0, res.stderr
    man = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert man["input"] == {"path": "-", "size_bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}


def test_valid_split_and_parquet_output(cli, tmp_path):
    out = tmp_path / "o"
    res = cli(["prep", SAMPLE, "--split", "leave-last", "--test-size", "1", "--valid-size", "1",
               "--output-format", "parquet", "--out", out])
    assert res.exit_code == 0, res.stderr
    parts = {n: pl.read_parquet(out / f"{n}.parquet") for n in ("train", "valid", "test")}
    clean = read_csv_text(cli(["prep", SAMPLE, "-q"]).stdout)
    assert sum(p.height for p in parts.values()) == clean.height
    assert parts["test"]["user"].n_unique() == parts["test"].height    # one row per user


def test_same_seed_same_files_different_seed_different_files(cli, tmp_path):
    def split(seed, name):
        assert cli(["prep", SAMPLE, "--split", "random", "--seed", seed, "--out", tmp_path / name, "-q"]).exit_code == 0
        return (tmp_path / name / "test.csv").read_bytes()
    assert split(1, "a") == split(1, "b")
    assert split(1, "a") != split(2, "c")


def test_headerless_double_colon_input(cli, tmp_path):
    p = tmp_path / "ratings.dat"
    p.write_text("1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978300000\n")
    res = cli(["prep", p, "--no-header", "--columns", "user,item,rating,timestamp", "--sep", "::"])
    assert res.exit_code == 0, res.stderr
    assert read_csv_text(res.stdout).height == 3


def test_column_flags(cli, tmp_path):
    p = tmp_path / "in.tsv"
    p.write_text("who\twhat\tstars\twhen\nu1\ti1\t4\t2024-01-01\n")
    res = cli(["prep", p, "--user-col", "who", "--item-col", "what", "--rating-col", "stars", "--time-col", "when"])
    assert res.exit_code == 0, res.stderr
    assert read_csv_text(res.stdout).row(0) == ("u1", "i1", "4.0", "1704067200")


# ---- bad input: one error line, a hint, exit 2, nothing written ----------------------------

BAD_CASES = {
    "missing file": (["nope.csv"], "does not exist"),
    "empty file": (["@empty"], "is empty"),
    "header only": (["@header"], "header but no rows"),
    "missing column": (["@noitem"], "columns found: user, thing"),
    "unparseable rating": (["@badrating", "--on-invalid", "error"], "invalid rating 'five'"),
    "unknown sep": (["@small", "--sep", "colon"], "unknown separator"),
    "unparseable timestamp": (["@badtime"], "unparseable timestamp"),
    "test size too big": (["@small", "--split", "random", "--test-size", "1.5"], "outside its range"),
    "test size zero": (["@small", "--split", "random", "--test-size", "0"], "outside its range"),
    "test size negative": (["@small", "--split", "random", "--test-size", "-0.1"], "outside its range"),
    "columns without no-header": (["@small", "--columns", "a,b"], "--columns needs --no-header"),
    "normalize with implicit": (["@small", "--implicit", "--normalize", "zscore"], "explicit ratings"),
    "cut date without temporal": (["@small", "--split", "random", "--cut-date", "2024-01-01"], "--cut-date only"),
    "unknown split": (["@small", "--split", "sideways"], "--split 'sideways' is not one of"),
    "filter removes every row": (["@small", "--min-user-interactions", "50"], "removed every row"),
    "ragged lines": (["@ragged"], "more fields"),
}


def _materialise(args: list[str], tmp_path) -> list[str]:
    files = {"@empty": "", "@header": "user,item,rating\n", "@noitem": "user,thing\n1,2\n",
             "@badrating": "user,item,rating\n1,a,5\n2,b,five\n", "@small": None,
             "@badtime": "user,item,timestamp\n1,a,10\n2,b,last tuesday\n",
             "@ragged": "user,item,rating\n1,a,5\n2,b,4,9,9\n"}
    out = []
    for a in args:
        if a in files:
            p = small_csv(tmp_path) if files[a] is None else tmp_path / "bad.csv"
            if files[a] is not None:
                p.write_text(files[a])
            a = str(p)
        out.append(a)
    return out


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_is_one_error_line_exit_2_and_no_output(cli, tmp_path, case):
    args, expected = BAD_CASES[case]
    out = tmp_path / "out"
    with_split = "--split" in args
    res = cli(["prep", *_materialise(args, tmp_path), *(["--out", out] if with_split else [])])
    assert res.exit_code == 2, (res.stdout, res.stderr)
    lines = res.stderr.splitlines()
    assert lines[0].startswith("error: ") and expected in lines[0]
    assert len(lines) == 2 and lines[1].startswith("hint: ")
    assert res.stdout == "" and not out.exists()


def test_split_without_out_is_a_conflict(cli, tmp_path):
    res = cli(["prep", small_csv(tmp_path), "--split", "random"])
    assert res.exit_code == 2 and res.stderr.startswith("error: --split random needs --out")


def test_unwritable_output_directory(cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = cli(["prep", small_csv(tmp_path), "--split", "random", "--out", blocker / "out"])
    assert res.exit_code == 2 and res.stderr.startswith("error: ") and "hint: " in res.stderr
    if os.geteuid() != 0:  # root ignores directory permissions
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        res = cli(["prep", small_csv(tmp_path), "--split", "random", "--out", ro / "out"])
        assert res.exit_code == 4 and "not writable" in res.stderr and not (ro / "out").exists()


def test_a_failed_write_leaves_nothing(cli, tmp_path, monkeypatch):
    import recli.data.outdir as outdir

    calls = []

    def flaky(df, dest, fmt=None):
        calls.append(dest)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        pl.DataFrame(df).write_csv(dest)

    monkeypatch.setattr(outdir, "write_table", flaky)
    out = tmp_path / "out"
    res = cli(["prep", small_csv(tmp_path), "--split", "random", "--out", out])
    assert res.exit_code == 4 and "no space left" in res.stderr.lower()  # an environment fault, not a bug
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["in.csv"]


# ---- configuration precedence: flag > RECLI_PREP_* > --config file > default ------------------

def _seed_used(cli, tmp_path, pre, post=(), env=None):
    out = tmp_path / f"o{len(list(tmp_path.iterdir()))}"
    res = cli([*pre, "prep", small_csv(tmp_path), "--split", "random", "--out", out, *post], env=env)
    assert res.exit_code == 0, res.stderr
    return json.loads((out / "manifest.json").read_text())


def test_env_and_config_file_set_defaults_and_flags_win(cli, tmp_path):
    cfg = tmp_path / "recli.toml"
    cfg.write_text("[prep]\nseed = 7\nmin-user-interactions = 2\n")
    assert _seed_used(cli, tmp_path, [])["seed"] == 0
    assert _seed_used(cli, tmp_path, [], env={"RECLI_PREP_SEED": "5"})["seed"] == 5
    assert _seed_used(cli, tmp_path, [], ["--seed", "3"], env={"RECLI_PREP_SEED": "5"})["seed"] == 3
    man = _seed_used(cli, tmp_path, ["--config", str(cfg)])
    assert man["seed"] == 7 and man["options"]["min_user_interactions"] == 2
    assert _seed_used(cli, tmp_path, ["--config", str(cfg)], env={"RECLI_PREP_SEED": "5"})["seed"] == 5
    assert _seed_used(cli, tmp_path, ["--config", str(cfg)], ["--seed", "9"], env={"RECLI_PREP_SEED": "5"})["seed"] == 9


# ---- real processes: pipes and a terminal ---------------------------------------------------------

def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_cat_pipe_into_prep_dash():
    cmd = f"cat {SAMPLE} | {sys.executable} -m recli prep - --k-core --min-user-interactions 5 --min-item-interactions 5"
    res = subprocess.run(cmd, shell=True, capture_output=True, env=_env(), timeout=300)
    assert res.returncode == 0, res.stderr.decode()
    df = pl.read_csv(io.BytesIO(res.stdout), infer_schema=False)
    assert df.columns == ["user", "item", "rating", "timestamp"]
    assert df.group_by("user").len()["len"].min() >= 5 and df.group_by("item").len()["len"].min() >= 5
    assert b"rows read" in res.stderr and b"Traceback" not in res.stderr


def test_pipe_into_head_ends_quietly():
    cmd = f"{sys.executable} -m recli prep {SAMPLE} | head -n 2"
    res = subprocess.run(cmd, shell=True, capture_output=True, env=_env(), timeout=300)
    assert res.returncode == 0
    assert res.stdout.decode().splitlines()[0] == "user,item,rating,timestamp"
    assert b"Traceback" not in res.stderr and b"error" not in res.stderr


def test_bad_input_through_a_real_process_has_no_traceback(tmp_path):
    res = run_recli(["prep", tmp_path / "missing.csv"])
    assert res.returncode == 2 and res.stdout == b""
    assert res.stderr.decode().startswith("error: ") and b"Traceback" not in res.stderr


def test_progress_bar_draws_on_a_terminal_while_stdout_holds_only_data():
    """stderr is a pseudo-terminal (so the progress bar draws), stdout a pipe (only CSV)."""
    master, slave = pty.openpty()
    env = _env()
    env.update(TERM="xterm-256color", COLUMNS="100")
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-m", "recli", "prep", str(SAMPLE)], stdout=subprocess.PIPE,
                            stderr=slave, stdin=subprocess.DEVNULL, env=env)
    os.close(slave)
    chunks, out = [], []
    deadline = time.time() + 120
    while time.time() < deadline:
        ready, _, _ = select.select([master, proc.stdout], [], [], 0.5)
        if master in ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                data = b""
            chunks.append(data)
        if proc.stdout in ready:
            data = proc.stdout.read1(1 << 20)
            out.append(data)
            if not data and proc.poll() is not None:
                break
        if proc.poll() is not None and not ready:
            break
    proc.wait(timeout=30)
    os.close(master)
    terminal = b"".join(chunks).decode("utf-8", "replace")
    stdout = b"".join(out)
    assert proc.returncode == 0
    assert "prep: " in terminal and "━" in terminal              # the rich bar drew on the terminal
    assert "rows read" in terminal
    df = pl.read_csv(io.BytesIO(stdout), infer_schema=False)     # stdout: nothing but the CSV
    assert df.columns == ["user", "item", "rating", "timestamp"] and df.height > 1000
    assert b"\x1b[" not in stdout and b"prep" not in stdout


# ---- MovieLens 100K --------------------------------------------------------------------------------

@pytest.mark.slow
def test_movielens_100k_reads_to_943_users_1682_items(cli, ml100k, tmp_path):
    res = cli(["prep", ml100k, "--no-header", "--columns", "user,item,rating,timestamp", "--sep", "tab"])
    assert res.exit_code == 0, res.stderr
    df = read_csv_text(res.stdout)
    assert (df.height, df["user"].n_unique(), df["item"].n_unique()) == (100_000, 943, 1682)
    out = tmp_path / "ml"
    res = cli(["prep", ml100k, "--no-header", "--columns", "user,item,rating,timestamp", "--split", "temporal",
               "--test-size", "0.1", "--k-core", "--min-user-interactions", "5", "--min-item-interactions", "5",
               "--rating-range", "1,5", "--out", out])
    assert res.exit_code == 0, res.stderr
    man = json.loads((out / "manifest.json").read_text())
    clean = man["report"]["rows_clean"]
    assert man["rows"]["written"]["test"] == int(clean * 0.1 + 0.5) and man["report"]["items"] < 1682
    assert man["rows"]["read"] == 100_000
    assert sum(man["rows"]["written"].values()) + sum(man["rows"]["dropped"].values()) == 100_000
    assert man["report"]["split"]["cut_timestamp"] is not None


def test_help_lists_every_option_group(cli):
    res = cli(["prep", "--help"])
    assert res.exit_code == 0
    for flag in ("--out", "--k-core", "--split", "--fill-rating", "--normalize", "--drop-cold", "--cut-date"):
        assert flag in res.stdout


def test_rerun_into_an_existing_directory_replaces_the_files(cli, tmp_path):
    # issue 10 §3: a folder recli did not write is refused (it used to be merged into); with
    # --force, and on every rerun, the folder is replaced as a whole
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    res = cli(["prep", SAMPLE, "--split", "random", "--seed", "1", "--out", out, "-q"])
    assert res.exit_code == 2 and "--force" in res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    for seed in ("1", "2"):
        res = cli(["prep", SAMPLE, "--split", "random", "--seed", seed, "--out", out, "-q", "--force"])
        assert res.exit_code == 0, res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "test.csv", "train.csv"]
    assert json.loads((out / "manifest.json").read_text())["seed"] == 2
