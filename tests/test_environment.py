"""The environment recli runs in: Numba's cache location, configuration names, and
faults of the machine (full disk, permissions) as opposed to bugs."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, SAMPLE_DATA

# ---- Numba's cache never goes into the package -------------------------------------------------

def test_numba_cache_goes_to_the_user_cache_even_when_numba_is_imported_first(tmp_path):
    """``import numba`` before recli used to leave NUMBA_CACHE_DIR unread, so compiled
    kernels landed in ``recli/kernels/__pycache__`` inside site-packages."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), PYTHONPATH=str(REPO_ROOT))
    code = ("import numba, numpy as np\n"
            "from recli.kernels.topk import topk\n"
            "print(topk(np.random.default_rng(0).random((4, 30), dtype=np.float32), 3)[0].shape)\n"
            "from numba.core import config; print(config.CACHE_DIR)\n")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    from recli import kernel_sources_stamp

    cache = tmp_path / "cache" / "recli" / "numba" / kernel_sources_stamp()
    assert res.stdout.splitlines()[-1] == str(cache)
    assert list(cache.rglob("*.nbi")), "no compiled kernel index in the per-user cache"


@pytest.mark.parametrize("given", [None, "12"])
def test_openblas_threads_sleep_after_a_call_unless_the_user_says_otherwise(given):
    """recli sets OPENBLAS_THREAD_TIMEOUT before NumPy loads OpenBLAS (a spinning BLAS
    worker slows the Numba kernel after each product); a value the user gave is kept."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    env.update(PYTHONPATH=str(REPO_ROOT), **({"OPENBLAS_THREAD_TIMEOUT": given} if given else {}))
    code = "import recli, os, numpy; print(os.environ['OPENBLAS_THREAD_TIMEOUT'], 'numpy' in dir())"
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [given or "4", "True"]


def test_the_per_user_kernel_cache_changes_with_any_kernel_source(tmp_path):
    """Numba checks a cached kernel only against the file defining it, though it holds
    copies of what it calls from other files (the ALS sweep and ``als_cg.py``): the cache
    folder is named by every kernel source's size and time, so an edit to any one of
    them (or a checkout) starts a fresh cache."""
    from recli import kernel_sources_stamp

    copy = tmp_path / "kernels"
    shutil.copytree(REPO_ROOT / "recli" / "kernels", copy, ignore=shutil.ignore_patterns("__pycache__"))
    stamp = kernel_sources_stamp(copy)
    assert stamp == kernel_sources_stamp()  # copytree keeps the times: the same sources
    assert len(stamp) == 8 and int(stamp, 16) >= 0
    with open(copy / "als_cg.py", "a") as f:
        f.write("# edited\n")
    edited = kernel_sources_stamp(copy)
    assert edited != stamp
    os.utime(copy / "cuda" / "cg.py", ns=(0, 0))  # a file in a sub-package counts too
    assert kernel_sources_stamp(copy) not in (stamp, edited)


def test_numba_cache_dir_set_by_the_user_is_kept(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "mine"), PYTHONPATH=str(REPO_ROOT))
    res = subprocess.run([sys.executable, "-c", "import recli, os; print(os.environ['NUMBA_CACHE_DIR'])"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == str(tmp_path / "mine")


def test_tests_do_not_touch_the_real_home():
    from recli import user_cache_dir

    assert str(user_cache_dir()).startswith(os.environ["HOME"])
    assert "recli-test-home-" in os.environ["HOME"]


# ---- configuration names derive from the public option name ------------------------------------

@pytest.fixture
def pop_model(cli, tmp_path):
    out = tmp_path / "pop.model"
    res = cli(["train", SAMPLE_DATA / "interactions.csv", "--model", "popular", "-o", out])
    assert res.exit_code == 0, res.stderr
    return out


def _recommend(cli, model, tmp_path, env=None, config=None):
    args = (["--config", config] if config else []) + ["recommend", model, "--user", "u002474", "-k", "2"]
    return cli(args, env=env)


def test_environment_variable_uses_the_option_name(cli, pop_model, tmp_path):
    res = _recommend(cli, pop_model, tmp_path, env={"RECLI_RECOMMEND_FORMAT": "jsonl"})
    assert res.exit_code == 0, res.stderr
    assert res.stdout.startswith("{")
    assert "deprecated" not in res.stderr


def test_parameter_named_variable_is_a_deprecated_alias(cli, pop_model, tmp_path):
    res = _recommend(cli, pop_model, tmp_path, env={"RECLI_RECOMMEND_FMT": "jsonl"})
    assert res.exit_code == 0, res.stderr
    assert res.stdout.startswith("{")
    assert "RECLI_RECOMMEND_FMT is deprecated" in res.stderr and "RECLI_RECOMMEND_FORMAT" in res.stderr


def test_config_keys_use_the_option_name(cli, pop_model, tmp_path):
    cfg = tmp_path / "recli.toml"
    cfg.write_text('[recommend]\nformat = "jsonl"\nbatch-size = 7\n')
    res = _recommend(cli, pop_model, tmp_path, config=cfg)
    assert res.exit_code == 0, res.stderr
    assert res.stdout.startswith("{") and "deprecated" not in res.stderr
    cfg.write_text('[recommend]\nfmt = "jsonl"\n')
    res = _recommend(cli, pop_model, tmp_path, config=cfg)
    assert res.exit_code == 0 and res.stdout.startswith("{")
    assert "'fmt' in [recommend] is deprecated" in res.stderr


@pytest.mark.parametrize("text, needle, valid", [
    ('[recommend]\nformatt = "jsonl"\n', "unknown key 'formatt' in [recommend]", "format"),
    ('[recomend]\nformat = "jsonl"\n', "unknown table [recomend]", "recommend"),
    ('seed = 3\n', "outside a [command] table", "[prep]"),
])
def test_config_typos_are_errors_listing_valid_names(cli, pop_model, tmp_path, text, needle, valid):
    cfg = tmp_path / "recli.toml"
    cfg.write_text(text)
    res = _recommend(cli, pop_model, tmp_path, config=cfg)
    assert res.exit_code == 2
    assert needle in res.stderr and valid in res.stderr.split("hint:")[1]
    assert "Traceback" not in res.stderr


def test_train_params_file_and_deprecated_config_alias(cli, tmp_path):
    params = tmp_path / "best.toml"
    params.write_text('model = "popular"\n[params]\nmeasure = "sum"\n')
    for flag in ("--params", "--config"):
        out = tmp_path / f"m{flag}"
        res = cli(["train", SAMPLE_DATA / "interactions.csv", "--model", "popular", flag, params, "-o", out])
        assert res.exit_code == 0, res.stderr
        assert '"measure": "sum"' in (out / "meta.json").read_text()
        assert ("deprecated" in res.stderr) == (flag == "--config")


# ---- environment faults: exit 4, not a bug report ----------------------------------------------

def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_while_recommending_is_an_environment_fault(cli, pop_model, tmp_path, monkeypatch):
    import recli.data.stream

    monkeypatch.setattr(recli.data.stream, "write_stream", _disk_full)
    res = cli(["recommend", pop_model, "--all-users", "-o", tmp_path / "recs.csv"])
    assert res.exit_code == 4
    assert "no space left" in res.stderr and "hint:" in res.stderr
    assert "internal error" not in res.stderr and "report it" not in res.stderr


def test_full_disk_while_training_is_an_environment_fault(cli, tmp_path, monkeypatch):
    import numpy as np

    monkeypatch.setattr(np, "save", _disk_full)
    out = tmp_path / "m.model"
    res = cli(["train", SAMPLE_DATA / "interactions.csv", "--model", "popular", "-o", out])
    assert res.exit_code == 4 and "no space left" in res.stderr
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("cmd", [["recommend", "{model}", "--all-users", "-o", "{dir}"],
                                 ["--config", "{dir}", "recommend", "{model}", "--all-users"]])
def test_directory_given_as_output_file_is_a_usage_error(cli, pop_model, tmp_path, cmd):
    args = [a.format(model=pop_model, dir=tmp_path) for a in cmd]
    res = cli(args)
    assert res.exit_code == 2, res.stderr
    assert "internal error" not in res.stderr and "is a directory" in res.stderr


def test_free_space_check_refuses_before_the_work(tmp_path):
    from recli.errors import EnvironmentFault, check_free_space

    check_free_space(str(tmp_path / "x"), 10, "a small file")
    with pytest.raises(EnvironmentFault) as err:
        check_free_space(str(tmp_path / "new" / "x"), 1 << 60, "the model")
    assert "TiB" in err.value.message and err.value.exit_code == 4


def test_unknown_os_errors_stay_internal(cli, pop_model, tmp_path, monkeypatch):
    import recli.data.stream

    def boom(*a, **k):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(recli.data.stream, "write_stream", boom)
    res = cli(["recommend", pop_model, "--all-users", "-o", tmp_path / "recs.csv"])
    assert res.exit_code == 1 and "internal error" in res.stderr


def test_path_helper_is_importable_without_numba():
    res = subprocess.run([sys.executable, "-c", "import sys, recli; print('numba' in sys.modules)"],
                         env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)), capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "False"
    assert Path(REPO_ROOT / "recli" / "__init__.py").exists()


def test_full_disk_mid_write_names_the_file_and_leaves_nothing(tmp_path, monkeypatch):
    """The shared atomic writer turns ENOSPC into exit 4 naming the file, and removes its
    temporary file."""
    from recli.data.io import atomic_path
    from recli.errors import EnvironmentFault

    dest = tmp_path / "recs.csv"
    with pytest.raises(EnvironmentFault) as err, atomic_path(dest) as tmp:
        tmp.write_text("half")
        _disk_full()
    assert "recs.csv" in err.value.message and "no space left" in err.value.message
    assert list(tmp_path.iterdir()) == []


def test_model_folder_on_a_full_disk_names_the_folder(cli, tmp_path, monkeypatch):
    import numpy as np

    monkeypatch.setattr(np, "save", _disk_full)
    res = cli(["train", SAMPLE_DATA / "interactions.csv", "--model", "popular", "-o", tmp_path / "m.model"])
    assert res.exit_code == 4 and "writing -o" in res.stderr and "m.model" in res.stderr


def test_train_refuses_before_fitting_when_the_model_cannot_fit_on_disk(cli, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    import recli.models.ease as ease

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 << 20, 9 << 20, 1 << 20))
    monkeypatch.setattr(ease.EASE, "fit", lambda *a, **k: pytest.fail("fitted although the disk is full"))
    res = cli(["train", SAMPLE_DATA / "interactions.csv", "--model", "ease", "-o", tmp_path / "e.model"])
    assert res.exit_code == 4, res.stderr
    assert "needs about" in res.stderr and "MiB" in res.stderr and "e.model" in res.stderr
    assert not (tmp_path / "e.model").exists()


def test_recommend_all_refuses_before_scoring_when_the_output_cannot_fit(cli, pop_model, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    from recli.stages import recommend as stage

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 << 20, 9 << 20, 1 << 20))
    monkeypatch.setattr(stage, "recommend_batches", lambda *a, **k: pytest.fail("scored although the disk is full"))
    out = tmp_path / "recs.csv"
    res = cli(["recommend", pop_model, "--all-users", "-k", "500", "-o", out])
    assert res.exit_code == 4 and "needs about" in res.stderr and not out.exists()
