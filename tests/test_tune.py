"""``recli tune``: spaces, samplers, pruning, storage and resume, workers, outputs, bad input.

Everything runs on a small synthetic log (300 users, 200 items) with tiny models, so the
file stays fast; the SIGKILL resume and the two-workers tests run real processes.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, run_recli

pytest.importorskip("optuna")

ALS_FAST = ["--model", "als", "--param", "factors=4", "--param", "iterations=4", "--space-param", "factors=int:2:8"]


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    from recli.data import synth

    path = tmp_path_factory.mktemp("tune-data") / "small.csv"
    synth.interactions(n_users=300, n_items=200, n_interactions=6000, seed=1).write_csv(path)
    return path


@pytest.fixture(scope="module")
def study(small, tmp_path_factory) -> tuple[Path, dict]:
    """One ALS study (TPE, plots) shared by the output tests."""
    from typer.testing import CliRunner

    from recli import console
    from recli.cli import app

    out = tmp_path_factory.mktemp("tune-study") / "study"
    console.reset()
    res = CliRunner().invoke(app, ["tune", str(small), *ALS_FAST, "--out", str(out), "--trials", "12", "--plot",
                                   "--format", "json", "--seed", "3", "--pruner", "none"], catch_exceptions=False)
    assert res.exit_code == 0, res.stderr
    return out, json.loads(res.stdout)


def read_trials(out: Path) -> list[dict]:
    with open(out / "trials.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def load_journal(out: Path):
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    storage = JournalStorage(JournalFileBackend(str(out / "journal.log")))
    return optuna.load_study(study_name="recli", storage=storage)


# -- search spaces and samplers ------------------------------------------------------

def grid_space(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "grid.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_grid_covers_exactly_the_grid(cli, small, tmp_path):
    out = tmp_path / "grid"
    space = grid_space(tmp_path, 'neighbours = { type = "int", low = 5, high = 15, step = 5 }',
                       'similarity = { type = "choice", values = ["cosine", "jaccard"] }')
    res = cli(["tune", small, "--model", "itemknn", "--out", out, "--sampler", "grid", "--space", space])
    assert res.exit_code == 0, res.stderr
    rows = read_trials(out)
    seen = sorted((int(r["neighbours"]), r["similarity"]) for r in rows)
    assert seen == sorted(itertools.product([5, 10, 15], ["cosine", "jaccard"]))
    assert {r["state"] for r in rows} == {"COMPLETE"}


@pytest.mark.parametrize("sampler", ["random", "tpe", "cmaes"])
def test_samplers_respect_bounds_log_scales_and_choices(sampler):
    import optuna

    from recli.stages import tune_space as ts
    from recli.stages.tune import Plan, make_sampler

    space = {"factors": ts.parse_dim("factors", {"type": "int", "low": 2, "high": 300, "log": True}),
             "reg": ts.parse_dim("reg", {"type": "float", "low": 1e-4, "high": 1.0, "log": True}),
             "shrink": ts.parse_dim("shrink", {"type": "float", "low": 0, "high": 10, "step": 2.5}),
             "sim": ts.parse_dim("sim", {"type": "choice", "values": ["cosine", "bm25"]})}
    plan = Plan(object, {}, space, [], sampler, "none", 60, None, None)
    study = optuna.create_study(sampler=make_sampler(plan, 0))
    drawn = []
    study.optimize(lambda t: drawn.append(ts.suggest(t, space)) or 0.0, n_trials=60)
    assert all(isinstance(d["factors"], int) and 2 <= d["factors"] <= 300 for d in drawn)
    assert all(1e-4 <= d["reg"] <= 1.0 for d in drawn)
    assert {d["shrink"] for d in drawn} <= {0.0, 2.5, 5.0, 7.5, 10.0}
    assert {d["sim"] for d in drawn} <= {"cosine", "bm25"}
    # log-uniform: about half the draws lie below the geometric midpoint 0.01 (uniform: 1%);
    # CMA-ES searches in the log space too, but moves its mean, so only its bounds are checked
    if sampler != "cmaes":
        assert sum(d["reg"] < 1e-2 for d in drawn) >= 10
    assert study.trials[0].distributions["reg"].log and study.trials[0].distributions["factors"].log


def test_same_seed_gives_the_same_trial_parameters(cli, small, tmp_path):
    params = []
    for name in ("a", "b"):
        res = cli(["tune", small, "--model", "itemknn", "--out", tmp_path / name, "--trials", "6", "--seed", "11"])
        assert res.exit_code == 0, res.stderr
        params.append([(r["neighbours"], r["similarity"], r["weighting"], r["shrink"]) for r in read_trials(tmp_path / name)])
    assert params[0] == params[1]
    assert len(set(params[0])) > 1


def test_space_file_and_show_space(cli, tmp_path):
    space = tmp_path / "space.toml"
    space.write_text('lambda = { type = "float", low = 1, high = 100, log = true }\n', encoding="utf-8")
    res = cli(["tune", "--model", "ease", "--show-space", "--space", space, "--format", "json"])
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout) == {"lambda_": {"type": "float", "low": 1.0, "high": 100.0, "log": True}}
    res = cli(["tune", "--model", "als", "--show-space"])
    assert "factors" in res.stdout and "log" in res.stdout


# -- trials: failures, pruning --------------------------------------------------------

def test_a_trial_that_raises_is_recorded_as_fail_and_the_study_completes(cli, small, tmp_path, monkeypatch):
    from recli.stages import tune

    real = tune.TrialRunner._fit

    def flaky(self, trial, config, *args, **kwargs):
        if config.neighbours == 10:
            raise RuntimeError("boom")
        return real(self, trial, config, *args, **kwargs)

    monkeypatch.setattr(tune.TrialRunner, "_fit", flaky)
    out = tmp_path / "fail"
    space = grid_space(tmp_path, 'neighbours = { type = "int", low = 5, high = 15, step = 5 }')
    res = cli(["tune", small, "--model", "itemknn", "--out", out, "--sampler", "grid", "--space", space])
    assert res.exit_code == 0, res.stderr
    rows = {int(r["neighbours"]): r for r in read_trials(out)}
    assert rows[10]["state"] == "FAIL" and "boom" in rows[10]["error"]
    assert rows[5]["state"] == rows[15]["state"] == "COMPLETE"
    assert "trial" in res.stderr and "boom" in res.stderr


def test_a_constructed_bad_trial_is_pruned_before_its_last_epoch(small, tmp_path):
    from optuna.trial import TrialState

    from recli.stages import tune as tn

    opts = tn.TuneOptions(str(small), "als", str(tmp_path / "prune"), trials=6,
                          params=["factors=4", "iterations=6", "alpha=4"], space_params=["regularization=float:0.01:2000:log"])
    plan = tn.plan_study(opts)
    assert plan.pruner == "median"
    _, folds = tn.load_folds(opts)
    Path(opts.out).mkdir()
    s = tn.open_study(opts, plan, folds)
    for reg in (0.05, 0.1, 0.2, 0.5, 1.0):
        s.study.enqueue_trial({"regularization": reg})
    s.study.enqueue_trial({"regularization": 2000.0})  # factors shrink to ~0: a near-random ranking
    tn.run_trials(s.study, s.runner, plan, None)
    bad = s.study.trials[5]
    assert bad.params["regularization"] == 2000.0
    assert bad.state == TrialState.PRUNED
    assert bad.user_attrs["run"]["pruned_at"] < 6
    assert all(t.state == TrialState.COMPLETE for t in s.study.trials[:5])


def test_multi_objective_front_is_non_dominated(cli, small, tmp_path):
    out = tmp_path / "mo"
    res = cli(["tune", small, "--model", "itemknn", "--out", out, "--trials", "10", "--metric", "ndcg@10",
               "--metric", "coverage@10", "--pick", "coverage@10", "--format", "json"])
    assert res.exit_code == 0, res.stderr
    rows = [r for r in read_trials(out) if r["state"] == "COMPLETE"]
    points = [(float(r["ndcg@10"]), float(r["coverage@10"]), r["front"] == "True") for r in rows]

    def dominates(a, b):
        return a[0] >= b[0] and a[1] >= b[1] and (a[0] > b[0] or a[1] > b[1])

    front = [p for p in points if p[2]]
    assert front
    assert not any(dominates(a, b) for a in front for b in front)
    assert all(any(dominates(f, p) for f in front) for p in points if not p[2])
    result = json.loads(res.stdout)
    assert result["values"]["coverage@10"] == max(p[1] for p in front)


# -- outputs --------------------------------------------------------------------------

def test_outputs_of_a_study(study):
    out, result = study
    rows = read_trials(out)
    assert len(rows) == 12 and result["trials"] == 12
    assert {"number", "state", "factors", "regularization", "alpha", "ndcg@10", "fit_seconds", "epochs",
            "pruned_at", "front"} <= set(rows[0])
    meta = json.loads((out / "study.json").read_text())
    assert meta["command"] == "tune" and meta["sampler"] == "tpe" and meta["seed"] == 3
    assert meta["space"]["factors"] == {"type": "int", "low": 2, "high": 8}
    assert meta["data"]["train_fingerprint"] and meta["recli_version"]
    best = [r for r in rows if r["front"] == "True"]
    assert len(best) == 1 and float(best[0]["ndcg@10"]) == pytest.approx(result["values"]["ndcg@10"])


def test_best_toml_round_trips_through_train(cli, study, small, tmp_path):
    from recli.config import tomllib

    out, result = study
    best = tomllib.loads((out / "best.toml").read_text())
    assert best == {"model": "als", "params": result["params"]}
    res = cli(["train", small, "--params", out / "best.toml", "-o", tmp_path / "m"])
    assert res.exit_code == 0, res.stderr
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    assert meta["model"] == "als" and meta["config"] == result["params"]


def test_plots_are_valid_png_files(study):
    out, result = study
    assert {"history.png", "slice.png", "importances.png"} <= set(result["plots"])
    for name in result["plots"]:
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[-8:-4] == b"IEND"


def test_final_train_with_a_validation_file(cli, small, tmp_path):
    import polars as pl

    df = pl.read_csv(small)
    df.head(5000).write_csv(tmp_path / "train.csv")
    df.tail(1000).write_csv(tmp_path / "valid.csv")
    out = tmp_path / "ft"
    res = cli(["tune", tmp_path / "train.csv", "--valid", tmp_path / "valid.csv", "--model", "ease", "--out", out,
               "--trials", "3", "--final-train"])
    assert res.exit_code == 0, res.stderr
    meta = json.loads((out / "model" / "meta.json").read_text())
    assert meta["model"] == "ease" and meta["counts"]["interactions"] == df.unique(["user", "item"]).height


def test_cv_averages_folds(cli, small, tmp_path):
    res = cli(["tune", small, "--model", "ease", "--out", tmp_path / "cv", "--trials", "2", "--cv", "2"])
    assert res.exit_code == 0, res.stderr
    assert len(json.loads((tmp_path / "cv" / "study.json").read_text())["data"]["valid_fingerprints"]) == 2


# -- storage, resume, workers ---------------------------------------------------------

def test_resume_after_sigkill_continues_without_repeating(small, tmp_path):
    from optuna.trial import TrialState

    out = tmp_path / "killed"
    args = [sys.executable, "-m", "recli", "tune", str(small), "--model", "als", "--param", "factors=4",
            "--param", "iterations=1000", "--space-param", "factors=int:2:8", "--pruner", "none",
            "--out", str(out), "--trials", "6", "--threads", "1"]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            if (out / "journal.log").exists():
                trials = load_journal(out).trials
                states = [t.state for t in trials]
                # kill mid-fit: the running trial has drawn all its parameters
                if states.count(TrialState.COMPLETE) >= 2 and states[-1] == TrialState.RUNNING and len(trials[-1].params) == 3:
                    break
        else:
            pytest.fail("the study never showed two complete trials and a running one before it ended")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = {t.number: t.params for t in load_journal(out).trials if t.state == TrialState.COMPLETE}
    killed = [t for t in load_journal(out).trials if t.state == TrialState.RUNNING]
    assert len(killed) == 1

    res = run_recli(args[3:], timeout=300)
    assert res.returncode == 0, res.stderr.decode()
    trials = load_journal(out).trials
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 6
    assert {t.number: t.params for t in complete if t.number in before} == before  # kept, not rerun
    dead = trials[killed[0].number]
    assert dead.state == TrialState.FAIL and "error" not in dead.user_attrs
    assert any(t.user_attrs.get("retry_of") == dead.number and t.params == dead.params for t in complete)
    assert len(read_trials(out)) == len(trials)


def test_two_workers_share_one_sqlite_study(small, tmp_path):
    import optuna
    from optuna.trial import TrialState

    db = tmp_path / "study.db"
    res = run_recli(["tune", small, *ALS_FAST, "--out", tmp_path / "w", "--trials", "8", "--storage", f"sqlite:///{db}",
                     "--workers", "2", "--threads", "2", "--pruner", "none"], timeout=300)
    assert res.returncode == 0, res.stderr.decode()
    trials = optuna.load_study(study_name="recli", storage=f"sqlite:///{db}").trials
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)) == 8
    assert all(t.state == TrialState.COMPLETE for t in trials)


def test_the_journal_folder_is_locked_to_one_process(small, tmp_path):
    import fcntl

    from recli.errors import ConfigError
    from recli.stages.tune_storage import folder_lock

    (tmp_path / "d").mkdir()
    with open(tmp_path / "d" / ".lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        with pytest.raises(ConfigError, match="another recli tune process"), folder_lock(str(tmp_path / "d")):
            pass


# -- bad input ------------------------------------------------------------------------

BAD = {
    "unknown parameter": (["--space-param", "foo=int:1:2"], "valid parameters: factors"),
    "low > high": (["--space-param", "factors=int:20:10"], "greater than high"),
    "log with low <= 0": (["--space-param", "regularization=float:0:1:log"], "needs low > 0"),
    "unknown metric": (["--metric", "bogus@10"], "unknown metric"),
    "unknown sampler": (["--sampler", "bogus"], "unknown sampler"),
    "no trials": (["--trials", "0"], "--trials 0"),
    "grid without steps": (["--sampler", "grid"], "values or a step"),
    "storage cannot be opened": (["--storage", "sqlite:////no/such/dir/s.db"], "cannot open storage"),
    "storage not sqlite": (["--storage", "mysql://u@h/db"], "cannot open storage"),
    "pruner on a front": (["--metric", "ndcg@10", "--metric", "coverage@10", "--pruner", "median"], "multi-objective"),
    "workers without a database": (["--workers", "2"], "--workers needs a database storage"),
    "bad validation split": (["--valid-split", "sideways:0.2"], "STRATEGY:SIZE"),
    "pick outside the metrics": (["--metric", "ndcg@10", "--metric", "coverage@10", "--pick", "recall@10"], "--pick"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_error_and_no_study(cli, small, tmp_path, case):
    extra, message = BAD[case]
    out = tmp_path / "bad"
    res = cli(["tune", small, "--model", "als", "--out", out, *extra])
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: ")
    assert message in res.stderr
    assert not out.exists()


def test_space_file_that_is_not_toml_names_the_line(cli, small, tmp_path):
    space = tmp_path / "space.toml"
    space.write_text('factors = { type = "int", low = 2, high = 8 }\nalpha = { type = "float", low = 1\n', encoding="utf-8")
    res = cli(["tune", small, "--model", "als", "--out", tmp_path / "bad", "--space", space])
    assert res.exit_code == 2 and "line 2" in res.stderr and "hint: " in res.stderr
    assert not (tmp_path / "bad").exists()


def test_resuming_with_another_model_or_space_says_what_differs(cli, study, small):
    out, _ = study
    before = (out / "journal.log").read_bytes()
    res = cli(["tune", small, "--model", "ease", "--out", out])
    assert res.exit_code == 2 and 'model: "als" in the study, "ease" now' in res.stderr
    res = cli(["tune", small, *ALS_FAST[:-1], "factors=int:2:16", "--out", out])
    assert res.exit_code == 2 and "space of factors" in res.stderr
    assert (out / "journal.log").read_bytes() == before


def test_a_database_study_with_another_model_is_refused_before_out_is_made(cli, small, tmp_path):
    db = f"sqlite:///{tmp_path / 'study.db'}"
    res = cli(["tune", small, "--model", "ease", "--out", tmp_path / "a", "--trials", "1", "--storage", db])
    assert res.exit_code == 0, res.stderr
    res = cli(["tune", small, "--model", "itemknn", "--out", tmp_path / "b", "--storage", db])
    assert res.exit_code == 2 and 'model: "ease" in the study, "itemknn" now' in res.stderr
    assert not (tmp_path / "b").exists()


def test_rerunning_a_finished_study_runs_no_trial(cli, study, small):
    out, result = study
    res = cli(["tune", small, *ALS_FAST, "--out", out, "--trials", "12", "--seed", "3", "--format", "json",
               "--pruner", "none"])
    assert res.exit_code == 0, res.stderr
    assert len(read_trials(out)) == 12 and json.loads(res.stdout)["best_trial"] == result["best_trial"]


def test_validation_novelty_matches_a_plain_numpy_reference(small):
    """tune --metric novelty@10: mean over users of the mean -log2(TRAIN users of i / TRAIN users)."""
    import numpy as np

    from recli.stages import tune as tn
    from recli.stages.train import resolve_config, train
    from recli.stages.validation import validation_score

    opts = tn.TuneOptions(str(small), "als", "unused")
    _, [(tr, va)] = tn.load_folds(opts)
    cls, config = resolve_config("als", params=["factors=4", "iterations=3"])
    model = train(tr, cls, config).model
    got = validation_score(model, va.user_items, tr.user_items, "novelty", 10)
    ui = tr.user_items
    pop = np.maximum(np.diff(ui.tocsc().indptr), 1) / ui.shape[0]
    users = np.flatnonzero(np.diff(va.user_items.indptr) > 0)
    per_user = []
    for u in users:
        scores = model.score(np.array([u]), None)[0].astype(np.float64)
        scores[ui.indices[ui.indptr[u]:ui.indptr[u + 1]]] = -np.inf
        top = np.argsort(-scores, kind="stable")[:10]
        per_user.append(np.mean(-np.log2(pop[top])))
    assert got == pytest.approx(float(np.mean(per_user)), rel=1e-6)


def test_a_silent_sqlite_trial_is_failed_and_retried(small, tmp_path, monkeypatch):
    """A worker that died mid-trial stops beating; past the grace period the trial is
    FAIL (not counted), its parameters run again, and the study still ends at N."""
    import optuna
    from optuna.trial import TrialState

    from recli.stages import tune as tn
    from recli.stages import tune_storage as st

    monkeypatch.setattr(st, "HEARTBEAT_S", 1)
    monkeypatch.setattr(st, "GRACE_S", 1)
    opts = tn.TuneOptions(str(small), "ease", str(tmp_path / "out"), trials=3,
                          storage=f"sqlite:///{tmp_path / 'study.db'}")
    plan = tn.plan_study(opts)
    _, folds = tn.load_folds(opts)
    s = tn.open_study(opts, plan, folds)
    # the dead worker: another process's storage on the same database (Optuna expects optimize())
    other = optuna.load_study(study_name=s.study.study_name, storage=optuna.storages.RDBStorage(opts.storage))
    dead = other.ask({"lambda_": optuna.distributions.FloatDistribution(1.0, 1e4, log=True)})
    other._storage.record_heartbeat(dead._trial_id)
    time.sleep(2.5)
    tn.run_trials(s.study, s.runner, plan, None)
    trials = s.study.trials
    assert trials[0].state == TrialState.FAIL and "error" not in trials[0].user_attrs
    assert [t.state for t in trials[1:]] == [TrialState.COMPLETE] * 3
    assert any(t.params == trials[0].params for t in trials[1:])


def test_a_sqlite_study_reads_the_trials_once_per_trial(small, tmp_path, monkeypatch):
    """The sampler, the pruner and the trial count share one read of the database per
    trial (tune_cache.trial_snapshots), and still see every finished trial."""
    from recli.stages import tune as tn

    opts = tn.TuneOptions(str(small), "als", str(tmp_path / "out"), trials=6, seed=1, pruner="none",
                          params=["factors=4", "iterations=2"], space_params=["factors=int:2:8"],
                          storage=f"sqlite:///{tmp_path / 'study.db'}")
    plan = tn.plan_study(opts)
    _, folds = tn.load_folds(opts)
    s = tn.open_study(opts, plan, folds)
    backend = s.study._storage._backend
    reads = []
    real = backend._get_trials
    monkeypatch.setattr(backend, "_get_trials", lambda *a, **k: reads.append(1) or real(*a, **k))
    ran = tn.run_trials(s.study, s.runner, plan, None)
    assert ran == 6 and len(s.runner.overheads) == 6
    assert len(reads) <= ran + 1  # one per trial, and one for the final count
    tn.tc.refresh(s.runner.storage)
    assert tn.finished_count(s.study) == (6, 0)


def test_threads_context_reuses_the_blas_view_until_a_module_is_imported():
    import sys
    import types

    from recli import backend

    with backend.threads_context(1):
        first = backend._blas_controller()
    with backend.threads_context(1):
        assert backend._blas_controller() is first
    sys.modules["recli_test_fake_module"] = types.ModuleType("recli_test_fake_module")
    try:
        assert backend._blas_controller() is not first
    finally:
        del sys.modules["recli_test_fake_module"]


def test_rmse_is_minimised_for_a_rating_model(cli, tmp_path):
    """mf predicts ratings: --metric rmse scores its validation pairs and is minimised."""
    from recli.data import synth

    path = tmp_path / "ratings.csv"
    df = synth.interactions(n_users=120, n_items=80, n_interactions=3000, seed=2)
    df.with_columns(((df["user"].str.len_bytes() + df["item"].str.len_bytes()) % 5 + 1).alias("rating")).write_csv(path)
    res = cli(["tune", path, "--model", "mf", "--param", "iterations=3", "--out", tmp_path / "t", "--trials", "4",
               "--metric", "rmse", "--pruner", "none", "--format", "json"])
    assert res.exit_code == 0, res.stderr
    rows = [r for r in read_trials(tmp_path / "t") if r["state"] == "COMPLETE"]
    best = json.loads(res.stdout)
    assert best["values"]["rmse"] == pytest.approx(min(float(r["rmse"]) for r in rows), rel=1e-4)


def test_a_feature_model_is_tuned_with_its_feature_file(cli, small, tmp_path):
    """--item-features reaches every trial's fit and the final retrain; a model that
    ignores features refuses the option before any study exists."""
    import polars as pl

    items = pl.read_csv(small)["item"].unique().sort()
    feats = tmp_path / "item_features.csv"
    pl.DataFrame({"item": items, "feature": [f"g{i % 4}" for i in range(items.len())],
                  "value": [1.0] * items.len()}).write_csv(feats)
    res = cli(["tune", small, "--model", "content", "--item-features", feats, "--out", tmp_path / "c", "--trials", "3",
               "--pruner", "none", "--final-train", "--format", "json"])
    assert res.exit_code == 0, res.stderr
    states = [r["state"] for r in read_trials(tmp_path / "c")]
    assert states == ["COMPLETE"] * 3
    meta = json.loads((tmp_path / "c" / "model" / "meta.json").read_text())
    assert meta["model"] == "content" and "item" in meta["features"]
    bad = cli(["tune", small, *ALS_FAST, "--item-features", feats, "--out", tmp_path / "a", "--trials", "2"])
    assert bad.exit_code == 2 and "does not learn from features" in bad.stderr
    assert not (tmp_path / "a").exists()


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_sqlite_writes_of_a_running_trial_are_collected_and_land_in_the_database(tmp_path):
    """tune_cache: the sampled parameters reach the database at flush (a killed trial is
    retried with them), user attributes with the final state, and a second storage on the
    same file reads back exactly what the trial wrote."""
    import optuna

    from recli.stages import tune_cache as tc
    from recli.stages.tune_storage import open_storage

    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = open_storage(url, str(tmp_path))
    assert hasattr(storage, "pending")
    study = optuna.create_study(storage=storage, study_name="s", sampler=optuna.samplers.RandomSampler(seed=3))
    other = optuna.storages.RDBStorage(url)
    for n in range(3):
        trial = study.ask()
        x = trial.suggest_float("x", 0.0, 1.0)
        k = trial.suggest_int("k", 1, 9)
        if n:  # the first trial's parameters go straight through (checked against the study)
            assert other.get_trial(trial._trial_id).params == {}
        tc.flush(storage)
        assert other.get_trial(trial._trial_id).params == {"x": x, "k": k}
        trial.set_user_attr("run", {"n": n})
        assert other.get_trial(trial._trial_id).user_attrs == {}
        assert storage.get_trial(trial._trial_id).user_attrs == {"run": {"n": n}}  # its own writes, from memory
        study.tell(trial, x + k)
        got = other.get_trial(trial._trial_id)
        assert got.state == optuna.trial.TrialState.COMPLETE and got.value == x + k
        assert got.params == {"x": x, "k": k} and got.user_attrs == {"run": {"n": n}}
    assert storage.pending == {} and storage.own == {}


def test_stale_trials_are_looked_for_once_per_heartbeat_unless_forced(tmp_path, monkeypatch):
    from recli.stages import tune_cache as tc
    from recli.stages.tune_storage import open_storage

    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}", str(tmp_path))
    sid = storage.create_new_study([__import__("optuna").study.StudyDirection.MAXIMIZE], "s")
    looks = []
    real = storage._backend._get_stale_trial_ids
    monkeypatch.setattr(storage._backend, "_get_stale_trial_ids", lambda s: looks.append(s) or real(s))
    for _ in range(5):
        storage._get_stale_trial_ids(sid)
    assert len(looks) == 1
    tc.expire_stale_check(storage)
    storage._get_stale_trial_ids(sid)
    assert len(looks) == 2


def test_tune_validation_by_blas_scores_ranks_as_the_exact_path(small):
    """tune scores validation with score_unordered (BLAS): the same scores up to rounding,
    so the same NDCG as the fixed-order path that recommend serves."""
    import numpy as np

    from recli.stages import tune as tn
    from recli.stages.train import resolve_config, train
    from recli.stages.validation import validation_score

    opts = tn.TuneOptions(str(small), "als", "unused")
    _, [(tr, va)] = tn.load_folds(opts)
    cls, config = resolve_config("als", params=["factors=8", "iterations=3"])
    model = train(tr, cls, config).model
    users = np.arange(model.n_users)
    exact, fast = model.score(users), model.score_unordered(users)
    np.testing.assert_allclose(fast, exact, rtol=1e-5, atol=1e-6 * np.abs(exact).max())
    want = validation_score(model, va.user_items, tr.user_items, "ndcg", 10)
    assert want > 0
    assert validation_score(model, va.user_items, tr.user_items, "ndcg", 10, exact=False) == pytest.approx(want)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_own_finished_trials_join_the_snapshot_without_a_full_read(tmp_path, monkeypatch):
    """After a trial of its own, the next snapshot takes that trial as written (equal to
    what the database holds); a trial written by anyone else forces the full read."""
    import optuna

    from recli.stages import tune_cache as tc
    from recli.stages.tune_storage import open_storage

    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = open_storage(url, str(tmp_path))
    study = optuna.create_study(storage=storage, study_name="s", sampler=optuna.samplers.RandomSampler(seed=3))
    full = []
    real = storage._backend._get_trials
    monkeypatch.setattr(storage._backend, "_get_trials", lambda *a, **k: full.append(1) or real(*a, **k))
    for n in range(3):
        trial = study.ask()
        trial.set_user_attr("n", n)
        study.tell(trial, trial.suggest_float("x", 0.0, 1.0))
        tc.refresh(storage)
        cached = study.get_trials(deepcopy=False)
    assert len(full) == 1  # the first snapshot only
    other = optuna.storages.RDBStorage(url)
    assert cached == other.get_all_trials(study._study_id)  # FrozenTrial equality: every field
    other_study = optuna.load_study(study_name="s", storage=other)
    other_study.tell(other_study.ask(), 0.5)  # another worker's trial
    tc.refresh(storage)
    assert len(study.get_trials()) == 4 and len(full) == 2


def test_a_trial_that_never_beat_turns_stale_after_the_grace_period(tmp_path):
    """A process killed between creating a trial and its first write leaves a RUNNING
    trial without a heartbeat: it is failed and retried like any stale trial."""
    import datetime

    import optuna
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    from recli.stages.tune_storage import GRACE_S, open_storage

    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = open_storage(url, str(tmp_path))
    sid = storage.create_new_study([optuna.study.StudyDirection.MAXIMIZE], "s")
    other = optuna.storages.RDBStorage(url)  # another process: no heartbeat thread, then killed
    young, old = other.create_new_trial(sid), other.create_new_trial(sid)
    with _create_scoped_session(other.scoped_session) as session:
        trial = session.get(models.TrialModel, old)
        trial._datetime_start_utc -= datetime.timedelta(seconds=GRACE_S + 5)
    assert storage._get_stale_trial_ids(sid) == [old]  # the young one is within its grace period
    assert young != old
