"""End to end through real processes and pipes: the README quick start, and MovieLens 100K."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import polars as pl
import pytest

from tests.conftest import REPO_ROOT, SAMPLE_DATA

pytestmark = pytest.mark.slow


def _sh(script: str, cwd) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    recli = f"{sys.executable} -m recli"
    return subprocess.run(["bash", "-o", "pipefail", "-c", script.replace("recli ", recli + " ")],
                          capture_output=True, env=env, cwd=cwd, timeout=900)


def test_quick_start_pipeline(tmp_path):
    """prep → train → recommend | eval, as the README's first command runs it."""
    q = tmp_path / "qs"
    res = _sh(f"recli prep {SAMPLE_DATA / 'interactions.csv'} --split leave-random --test-size 0.2 --seed 42 --out {q} "
              f"&& recli train {q}/train.csv --model als --seed 42 --threads 1 -o {q}/als.model "
              f"&& recli recommend {q}/als.model --users {q}/test.csv -k 10 "
              f"| recli eval - --test {q}/test.csv --train {q}/train.csv -k 5,10 --format csv", tmp_path)
    assert res.returncode == 0, res.stderr.decode()
    out = pl.read_csv(io.BytesIO(res.stdout))
    assert set(out["metric"]) >= {"precision", "recall", "ndcg"}
    ndcg = out.filter((pl.col("metric") == "ndcg") & (pl.col("k") == 10))["value"][0]
    assert 0 < ndcg <= 1
    assert b"recli eval" in res.stderr  # the human table went to stderr
    # the in-process path gives the same number
    res2 = _sh(f"recli eval --model {q}/als.model --test {q}/test.csv -k 10 -m ndcg --format csv -q", tmp_path)
    assert res2.returncode == 0, res2.stderr.decode()
    assert pl.read_csv(io.BytesIO(res2.stdout))["value"][0] == pytest.approx(ndcg, abs=1e-12)


def test_movielens_100k_pipeline(tmp_path, ml100k):
    """Raw u.data (tab separated, no header) all the way to a gated evaluation."""
    q = tmp_path / "ml"
    res = _sh(f"recli prep {ml100k} --no-header --columns user,item,rating,timestamp "
              f"--split leave-random --test-size 0.2 --seed 42 --out {q} -q "
              f"&& recli train {q}/train.csv --model als --factors 32 --iterations 10 --seed 42 -o {q}/als.model -q "
              f"&& recli train {q}/train.csv --model popular -o {q}/pop.model -q "
              f"&& recli recommend {q}/pop.model --users {q}/test.csv -k 10 -q > {q}/pop.csv "
              f"&& recli recommend {q}/als.model --users {q}/test.csv -k 10 -q > {q}/als.csv "
              f"&& recli eval {q}/pop.csv {q}/als.csv --test {q}/test.csv -k 10 -m ndcg,recall "
              f"--fail-under ndcg@10=0.2 --format csv", tmp_path)
    assert res.returncode == 0, res.stderr.decode()
    out = pl.read_csv(io.BytesIO(res.stdout))
    ndcg = {r["model"]: r["value"] for r in out.filter(pl.col("metric") == "ndcg").iter_rows(named=True)}
    assert ndcg["als"] > ndcg["pop"] + 0.05, ndcg  # personalisation beats popularity clearly
    p = out.filter((pl.col("model") == "als") & (pl.col("metric") == "ndcg"))["p_ttest"][0]
    assert p < 1e-6  # and the paired test says so
