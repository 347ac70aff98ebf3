"""``recli bench --dtype``: one cell per factor storage type, the ``dtype`` column, the
NDCG@10 change against float32 (``ndcg_delta``), models without factors skipped at 16-bit
types, bad input, and version 1 reports still read. The measuring children are replaced
by a stand-in that returns a known NDCG per dtype, so the test checks the plumbing and the
arithmetic in well under a second; what a child does with the dtype is checked on
``job_config``."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from recli.stages.bench import runner
from recli.stages.bench.report import render

TINY = "200x100x2000"
NDCG = {"float32": 0.30, "float16": 0.29, "bfloat16": 0.25, None: 0.31}  # None: a peer's job


def _invoke(args: list) -> object:
    from recli import console
    from recli.cli import app

    console.reset()
    return CliRunner().invoke(app, ["bench", *map(str, args)], catch_exceptions=False)


@pytest.fixture()
def jobs(monkeypatch) -> list[dict]:
    """Every job a child would have run; each answers with the NDCG of its dtype."""
    seen: list[dict] = []

    def child(job: dict, work) -> dict:
        seen.append(job)
        dtype = job.get("dtype") if job["library"] == "recli" else None
        return {"value": 1.0, "unit": "s", "peak_rss_mb": 10.0, "ndcg_at_10": NDCG[dtype], "recall_at_10": 0.2}

    monkeypatch.setattr(runner, "_child", child)
    return seen


def test_each_dtype_is_a_row_with_its_ndcg_change_against_float32(jobs):
    result = _invoke(["--synthetic", TINY, "--models", "als,itemknn", "--threads", "1", "--factors", "8", "--repeat", "1",
                      "--against", "implicit", "--dtype", "float16,bfloat16", "--format", "json"])
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)["rows"]
    als = [r for r in rows if r["model"] == "als" and r["library"] == "recli"]
    assert sorted({r["dtype"] for r in als}) == ["bfloat16", "float16", "float32"]
    assert len(als) == 12 and all(r["status"] == "ok" for r in als)
    for r in als:
        assert r["ndcg_at_10"] == pytest.approx(NDCG[r["dtype"]])
        expected = None if r["dtype"] == "float32" else NDCG[r["dtype"]] - NDCG["float32"]
        assert r["ndcg_delta"] == (None if expected is None else pytest.approx(expected))
    # the dtype reaches every child of its cell; peers store float32 and pair with float32 cells only
    assert {j["dtype"] for j in jobs if j.get("model") == "als" and j["library"] == "recli"} == set(NDCG) - {None}
    peers = [r for r in rows if r["library"] == "implicit"]
    assert peers and {r["dtype"] for r in peers} == {"float32"} and all(r["ndcg_delta"] is None for r in peers)
    prep = [r for r in rows if r["measure"] == "prep"]
    assert prep[0]["dtype"] is None


def test_a_model_without_factor_matrices_is_skipped_at_a_16_bit_dtype(jobs):
    result = _invoke(["--synthetic", TINY, "--models", "itemknn", "--threads", "1", "--repeat", "1",
                      "--dtype", "float32,bfloat16", "--format", "json"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    rows = {r["dtype"]: r for r in doc["rows"] if r["model"] == "itemknn" and r["measure"] == "fit"}
    assert rows["float32"]["status"] == "ok"
    assert rows["bfloat16"]["status"] == "skipped" and "stores no factor matrices" in rows["bfloat16"]["note"]
    assert rows["bfloat16"]["ndcg_delta"] is None
    assert not [j for j in jobs if j.get("model") == "itemknn" and j["dtype"] == "bfloat16"]
    assert any("--dtype bfloat16: itemknn stores no factor matrices" in n for n in doc["notes"])
    md = render(doc["rows"], doc["environment"], doc["notes"], "markdown")
    assert "| float32 |" in md and sum("| bfloat16 | (all) |" in line for line in md.splitlines()) == 1


def test_the_default_is_float32_only(jobs):
    result = _invoke(["--synthetic", TINY, "--models", "als", "--threads", "1", "--factors", "8", "--repeat", "1",
                      "--format", "json"])
    assert result.exit_code == 0, result.stderr
    rows = [r for r in json.loads(result.stdout)["rows"] if r["model"] == "als"]
    assert len(rows) == 4 and {r["dtype"] for r in rows} == {"float32"}
    assert all(r["ndcg_delta"] is None for r in rows)


def test_a_child_trains_at_its_dtype():
    from recli.stages.bench.child import job_config

    job = {"model": "als", "factors": 8, "params": [], "seed": 1}
    assert job_config({**job, "dtype": "bfloat16"})[1].dtype == "bfloat16"
    assert job_config(job)[1].dtype == "float32"
    assert not hasattr(job_config({**job, "model": "itemknn", "factors": None, "dtype": "float32"})[1], "dtype")


@pytest.mark.parametrize("args, message", [
    (["--dtype", "float8"], "unknown --dtype 'float8'"),
    (["--dtype", ","], "--dtype is empty"),
    (["--param", "dtype=float16"], "--param dtype is recli bench's --dtype axis"),
    (["--dtype", "float16", "--check", "parity"], "--check parity compares the backends at float32"),
])
def test_bad_dtype_input_is_one_error_line_and_exit_2(args, message, monkeypatch):
    monkeypatch.setattr(runner, "_child", lambda *a: pytest.fail("no measure may start on bad input"))
    result = _invoke(["--synthetic", TINY, *args])
    assert result.exit_code == 2, result.stderr
    assert result.stderr.count("error:") == 1 and message in result.stderr and "hint:" in result.stderr


def test_a_version_1_report_reads_as_float32_and_a_later_report_replaces_it(tmp_path):
    from recli.stages.bench.report import read_reports

    base = {"dataset": "small", "interactions": 10, "library": "recli", "model": "als", "threads": 1, "factors": 8,
            "device": "cpu", "measure": "fit", "unit": "s/iteration", "ratio": None, "status": "ok"}
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"schema_version": 1, "rows": [{**base, "value": 1.0},
                                                             {**base, "model": "", "measure": "prep", "value": 2.0}]}))
    new = tmp_path / "new.json"
    new.write_text(json.dumps({"schema_version": 2, "rows": [{**base, "dtype": "float32", "value": 3.0},
                                                             {**base, "dtype": "float16", "value": 4.0}]}))
    rows = read_reports([str(old)])
    assert [(r["measure"], r["dtype"]) for r in rows] == [("fit", "float32"), ("prep", None)]
    rows = read_reports([str(old), str(new)])
    assert sorted((r["measure"], r["dtype"], r["value"]) for r in rows if r["measure"] == "fit") == [
        ("fit", "float16", 4.0), ("fit", "float32", 3.0)]
