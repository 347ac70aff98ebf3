"""``recli bench`` (issue 12): end to end on a tiny preset (no timing assertions), the
output schema, the load guard, the parity check, peers, plots and bad input."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from recli.stages.bench import machine
from recli.stages.bench.report import COLUMNS, SCHEMA_VERSION, render
from recli.stages.bench.spec import BenchRequest, cells, parse_synthetic

TINY = "200x100x2000"
PNG = b"\x89PNG\r\n\x1a\n"


def _invoke(args: list[str]):
    from recli import console
    from recli.cli import app

    console.reset()
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One real run: two models, implicit as a peer, lightfm named too but made to look
    uninstalled, a faked busy machine, JSON results and charts."""
    from recli.stages.bench import peers

    out = tmp_path_factory.mktemp("bench")
    other = iter(range(0, 10**9, 10**6))  # other processes burn 10⁶ CPU seconds between reads
    real_installed = peers.installed
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(peers, "installed", lambda lib: None if lib == "lightfm" else real_installed(lib))
        mp.setattr(machine, "load_average", lambda: 99.0)
        mp.setattr(machine, "busy_cpu_seconds", lambda: float(next(other)))
        result = _invoke(["bench", "--synthetic", TINY, "--models", "als,itemknn", "--threads", "1", "--factors", "8",
                          "--repeat", "1", "--param", "iterations=2", "--against", "implicit,lightfm",
                          "-o", out / "bench.json", "--plot", out / "charts"])
    assert result.exit_code == 0, result.stderr
    return result, json.loads((out / "bench.json").read_text()), out


def test_every_column_and_measure_is_present(run):
    _, doc, _ = run
    assert doc["schema_version"] == SCHEMA_VERSION
    rows = doc["rows"]
    expected = [c for c in COLUMNS if c not in ("machine", "versions")]
    assert all(list(r) == expected for r in rows)
    ok = [r for r in rows if r["library"] == "recli" and r["status"] == "ok"]
    assert {(r["model"], r["measure"]) for r in ok} == {
        ("", "prep"), *((m, x) for m in ("als", "itemknn") for x in ("fit", "recommend_all", "recommend_one", "eval"))}
    for r in ok:
        assert r["value"] > 0 and r["peak_rss_mb"] > 0 and r["repeats"] == 1
    fit = {r["model"]: r for r in ok if r["measure"] == "fit"}
    assert fit["als"]["unit"] == "s/iteration" and fit["itemknn"]["unit"] == "s"
    assert fit["als"]["compile_s"] is not None and fit["als"]["gflops"] > 0
    assert 0 < fit["als"]["ndcg_at_10"] <= 1 and 0 < fit["als"]["recall_at_10"] <= 1
    env = doc["environment"]
    assert env["cores"] >= 1 and env["versions"]["implicit"] == "0.7.3" and "load_start" in env


def test_peer_rows_carry_the_ratio_and_missing_peers_are_skipped_with_the_install_line(run):
    result, doc, _ = run
    implicit = [r for r in doc["rows"] if r["library"] == "implicit" and r["status"] == "ok"]
    assert {(r["model"], r["measure"]) for r in implicit} == {
        (m, x) for m in ("als", "itemknn") for x in ("fit", "recommend_all", "recommend_one", "eval")}
    ours = {(r["model"], r["measure"]): r["value"] for r in doc["rows"] if r["library"] == "recli" and r["model"]}
    for r in implicit:
        assert r["ratio"] == pytest.approx(ours[r["model"], r["measure"]] / r["value"])
    lightfm = [r for r in doc["rows"] if r["library"] == "lightfm"]
    assert lightfm and all(r["status"] == "skipped" for r in lightfm)
    assert any("lightfm is not installed" in r["note"] and "lightfm-next==1.19.0" in r["note"] for r in lightfm)
    assert "lightfm is not installed" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_faked_busy_machine_marks_every_measured_row_noisy(run):
    result, doc, _ = run
    measured = [r for r in doc["rows"] if r["status"] == "ok"]
    assert measured and all(r["noisy"] is True and r["load_start"] == 99.0 for r in measured)
    assert "busy" in result.stderr and "--wait-quiet" in result.stderr


def test_plots_are_png_files(run):
    from recli.stages.bench.plots import CHARTS

    _, _, out = run
    for name in CHARTS:
        assert (out / "charts" / name).read_bytes()[:8] == PNG


def test_csv_schema_is_stable(run):
    _, doc, _ = run
    text = render(doc["rows"], doc["environment"], doc["notes"], "csv")
    df = pl.read_csv(text.encode(), schema={c: t for c, (t, _) in COLUMNS.items()})
    assert df.columns == list(COLUMNS)
    assert df.height == len(doc["rows"])
    assert df["machine"].n_unique() == 1 and "implicit 0.7.3" in df["versions"][0]


def test_markdown_has_the_environment_and_one_line_per_skipped_cell(run):
    _, doc, _ = run
    text = render(doc["rows"], doc["environment"], doc["notes"], "markdown")
    assert text.startswith("- machine: ") and "| dataset | library |" in text
    assert "| probe_gflops | noisy |" in text and "- fastest CPU speed probe: " in text
    assert sum("| lightfm |" in line for line in text.splitlines()) == 2  # als and itemknn, all measures in one


def test_load_guard_is_quiet_below_half_the_cores_and_waits_with_wait_quiet(monkeypatch):
    monkeypatch.setattr(machine, "busy_cpu_seconds", lambda: 0.0)
    guard = machine.LoadGuard()
    pair, marks = guard.start()
    assert guard.end(pair, marks).noisy is False

    # other processes burn 20 CPU seconds per 5 s poll twice (4 cores' worth), then nothing
    readings = iter([0.0, 20.0, 20.0, 40.0, 40.0, 40.0, 40.0, 40.0, 40.0])
    slept = []
    monkeypatch.setattr(machine, "busy_cpu_seconds", lambda: next(readings))
    guard = machine.LoadGuard(wait_quiet=60, sleep=slept.append)
    pair, marks = guard.start()
    assert slept == [5.0, 5.0, 5.0]
    assert guard.end(pair, marks).noisy is False


def test_the_bench_own_load_does_not_make_pairs_noisy(monkeypatch):
    """The load average counts the bench itself: pairs are judged by the CPU time of
    other processes, none here, even at a load average of 2 on 2 cores."""
    monkeypatch.setattr(machine, "load_average", lambda: 2.0)
    monkeypatch.setattr(machine, "busy_cpu_seconds", lambda: 0.0)
    guard = machine.LoadGuard()
    for _ in range(2):
        pair, marks = guard.start()
        assert guard.end(pair, marks).noisy is False


def test_a_pair_whose_cpu_ran_slow_is_noisy_against_the_runs_fastest_probe(monkeypatch):
    """No load and no other process, but the speed probe reads 100 GFLOP/s around the first
    pair and 160 later (a shared host's other tenant): the first pair is noisy, judged
    once the run is over; a probe within 0.85 of the fastest is not."""
    monkeypatch.setattr(machine, "load_average", lambda: 0.0)
    monkeypatch.setattr(machine, "busy_cpu_seconds", lambda: 0.0)
    readings = iter([100.0, 104.0, 160.0, 150.0, 158.0, 130.0])
    asked = []
    guard = machine.LoadGuard(threads=2, probe=lambda threads: asked.append(threads) or next(readings))
    pairs = []
    for _ in range(3):
        pair, marks = guard.start()
        pairs.append(guard.end(pair, marks))
    assert [p.speed for p in pairs] == [100.0, 150.0, 130.0] and asked == [2] * 6
    assert guard.fastest == 160.0 and not any(p.noisy for p in pairs)
    assert [guard.slow(p.speed) for p in pairs] == [True, False, True]  # below 0.85 · 160 = 136
    assert guard.slow(137.0) is False
    assert guard.slow(None) is False


def test_the_bench_marks_rows_noisy_whose_pairs_ran_while_the_cpu_was_slow(monkeypatch, tmp_path):
    """End to end: the probes around prep's pair read half the speed of the later ones;
    prep's row is noisy, the model's rows are not, and stderr says why."""
    speeds = iter([50.0, 50.0] + [100.0] * 20)
    monkeypatch.setattr(machine, "speed_probe", lambda threads: next(speeds))
    monkeypatch.setattr(machine, "busy_cpu_seconds", lambda: 0.0)
    out = tmp_path / "r.json"
    result = _invoke(["bench", "--synthetic", TINY, "--models", "popular", "--threads", "1", "--repeat", "1", "-o", out])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(out.read_text())
    noisy = {r["measure"]: r["noisy"] for r in doc["rows"] if r["status"] == "ok"}
    probes = {r["measure"]: r["probe_gflops"] for r in doc["rows"] if r["status"] == "ok"}
    assert noisy.pop("prep") is True and probes.pop("prep") == 50.0
    assert noisy and not any(noisy.values()) and set(probes.values()) == {100.0}
    assert doc["environment"]["probe_fastest_gflops"] == 100.0
    assert "the CPU ran slow" in result.stderr


def test_recli_measures_first_fill_numbas_cache_in_an_unmeasured_child(monkeypatch, tmp_path):
    """A compile's memory stays resident: the first child of each recli measure only warms
    up (filling Numba's cache), then the measured children run; repeats and peers do not
    warm up again. The warm-only child stops after the warm-up (no measured value)."""
    from recli.stages.bench import runner

    real, seen = runner._child, []

    def child(job, work):
        out = real(job, work)
        seen.append((job["library"], job["measure"], bool(job.get("warm_only")), "value" in out))
        return out

    monkeypatch.setattr(runner, "_child", child)
    result = _invoke(["bench", "--synthetic", TINY, "--models", "als", "--threads", "1", "--factors", "4",
                      "--repeat", "2", "--param", "iterations=2", "--against", "implicit", "-o", tmp_path / "r.json"])
    assert result.exit_code == 0, result.stderr
    recli = [(m, w, v) for lib, m, w, v in seen if lib == "recli" and m != "prep"]
    measures = ["fit", "recommend_all", "recommend_one", "eval"]
    assert [m for m, w, _ in recli if w] == measures and all(not v for _, w, v in recli if w)
    assert [m for m, w, _ in recli if not w] == measures * 2 and all(v for _, w, v in recli if not w)
    assert not any(w for lib, _, w, _ in seen if lib != "recli")


def test_the_speed_probe_measures_gflops():
    speed = machine.speed_probe(1, seconds=0.05)
    assert 0.1 < speed < 1e5


def test_quality_is_computed_the_same_way_for_peers_and_recli(tmp_path):
    """The peers' NDCG@10 / recall@10 helper agrees with `recli eval --model` on recli's lists."""
    from recli.artifacts import load_model, save_model
    from recli.backend import get_backend
    from recli.models.als import ALS, ALSConfig
    from recli.stages.bench.data import load, prepare
    from recli.stages.bench.peers import quality_of
    from recli.stages.evaluate_model import evaluate_model

    prepare(parse_synthetic("300x120x4000"), tmp_path / "d", None, 1, 0.2)
    data = load(tmp_path / "d")
    model = ALS(ALSConfig(factors=8, iterations=3), get_backend("cpu", 1)).fit(data.user_items)
    save_model(tmp_path / "m", model, data.users, data.items, data.user_items, {"config": {"factors": 8}})
    mf = load_model(tmp_path / "m")
    want = {r["metric"]: r["value"] for r in evaluate_model(mf, data.test, label="als", ks=(10,),
                                                            metrics=["ndcg", "recall"]).results.iter_rows(named=True)}

    def top10(uidx):
        scores = model.score(uidx, None)
        rows = data.user_items[uidx]
        scores[np.repeat(np.arange(len(uidx)), np.diff(rows.indptr)), rows.indices] = -np.inf
        return np.argsort(-scores, axis=1, kind="stable")[:, :10].astype(np.int32)

    got = quality_of(top10, data)
    assert got["ndcg_at_10"] == pytest.approx(want["ndcg"], abs=1e-6)
    assert got["recall_at_10"] == pytest.approx(want["recall"], abs=1e-6)


def test_flop_and_byte_counts_match_a_hand_count():
    sizes = {"users": 2, "items": 3, "nnz": 4}
    flops, bytes_ = machine.work_of("als", "fit", sizes, {"factors": 2, "cg_steps": 3, "solver": "cg"})
    # users half: 2·3·4 + 4·(2·2·4 + 4·4·2) = 24 + 4·48 = 216; items half: 2·2·4 + 4·(2·3·4 + 32) = 16 + 224 = 240
    assert flops == 456
    # users half: 48 + 24 + 32 + 32 + 16 = 152; items half: 48 + 32 + 32 + 48 + 16 = 176
    assert bytes_ == 328
    assert machine.work_of("als", "recommend_all", sizes, {"factors": 2}) == (24, 48 + 40 + 16)
    assert machine.work_of("itemknn", "fit", sizes, {"neighbours": 5}) is None


def test_the_matrix_gives_models_without_factors_one_cell_per_thread_count():
    req = BenchRequest(synthetic="small,10x5x20", models="als,itemknn", threads="1,2", factors="8,16")
    got = cells(req)
    assert len(got) == 2 * (2 * 2 + 2)
    assert {c.factors for c in got if c.model == "itemknn"} == {None}
    assert parse_synthetic("medium").nnz == 5_000_000 and parse_synthetic("large").users == 500_000


def test_parity_passes_on_the_cpu_backends(tmp_path):
    result = _invoke(["bench", "--synthetic", "300x120x4000", "--models", "als,bpr", "--factors", "8", "--threads", "1",
                      "--param", "iterations=3", "--check", "parity", "--format", "json"])
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)["rows"]
    als = [r for r in rows if r["model"] == "als"]
    assert [r["backend"] for r in als] == ["xp-numpy"] and als[0]["status"] == "ok"
    assert als[0]["factors_max_rel_diff"] < 1e-3 and als[0]["top10_overlap"] >= 0.99
    assert [r["status"] for r in rows if r["model"] == "bpr"] == ["skipped"]


def test_parity_exits_3_on_a_perturbed_backend(monkeypatch):
    from recli.kernels.xp import XPKernels

    original = XPKernels.als_sweep

    def perturbed(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        args[3][:] += 0.01  # X (after indptr, indices, data): the rows this sweep solved
        return out

    monkeypatch.setattr(XPKernels, "als_sweep", perturbed)
    result = _invoke(["bench", "--synthetic", "300x120x4000", "--models", "als", "--factors", "8", "--threads", "1",
                      "--param", "iterations=3", "--check", "parity"])
    assert result.exit_code == 3
    assert result.stderr.count("error:") == 1 and "als on xp-numpy" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--synthetic", "huge"], "neither a preset nor USERSxITEMSxNNZ"),
    (["--synthetic", "10x10"], "neither a preset nor USERSxITEMSxNNZ"),
    (["--synthetic", "0x10x10"], "zero size"),
    (["--synthetic", TINY, "--models", "als,nope"], "unknown model 'nope'"),
    (["--synthetic", TINY, "--threads", "-1"], "--threads -1"),
    (["--synthetic", TINY, "--threads", "two"], "not a whole number"),
    (["--synthetic", TINY, "--device", "gpu"], "--device gpu needs CuPy"),
    (["--synthetic", TINY, "--against", "mahout"], "unknown peer 'mahout'"),
    (["--synthetic", TINY, "--format", "xml"], "unknown format 'xml'"),
    (["--synthetic", TINY, "--check", "speed"], "unknown check 'speed'"),
    (["--synthetic", TINY, "--param", "nope=1"], "--param nope"),
    ([], "give either a DATA file or --synthetic"),
])
def test_bad_input_is_one_error_line_and_exit_2(args, message, monkeypatch):
    from recli.stages.bench import runner

    monkeypatch.setattr("recli.backend.gpu_available", lambda: False)
    monkeypatch.setattr(runner, "_child", lambda *a: pytest.fail("no measure may start on bad input"))
    result = _invoke(["bench", *args])
    assert result.exit_code == 2, result.stderr
    assert result.stderr.count("error:") == 1 and message in result.stderr and "hint:" in result.stderr


def test_a_data_file_without_user_and_item_columns_is_refused(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("a,b\n1,2\n3,4\n")
    result = _invoke(["bench", str(path)])
    assert result.exit_code == 2
    assert result.stderr.count("error:") == 1 and "user column" in result.stderr


def test_a_data_file_is_benched_like_synthetic_data(tmp_path):
    from recli.data import synth

    path = tmp_path / "log.csv"
    synth.interactions(150, 60, 1500, seed=3).write_csv(path)
    result = _invoke(["bench", str(path), "--models", "popular", "--threads", "1", "--repeat", "1",
                      "--format", "csv"])
    assert result.exit_code == 0, result.stderr
    df = pl.read_csv(result.stdout.encode())
    assert df.columns == list(COLUMNS) and set(df["dataset"]) == {"log.csv"}
    assert set(df["status"]) == {"ok"} and df.filter(pl.col("measure") == "eval")["ndcg_at_10"][0] > 0


def test_output_files_take_their_format_from_the_extension():
    from recli.cli._bench_output import check_output

    assert check_output(None, "r.md") == "markdown" and check_output(None, "r.json") == "json"
    assert check_output(None, "r.txt") == "csv" and check_output(None, None) is None


def test_the_benchmarks_page_documents_every_column_and_measure():
    from recli.stages.bench.spec import MEASURES
    from tests.conftest import REPO_ROOT

    page = (REPO_ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    for name in COLUMNS:
        assert f"| `{name}` |" in page
    for measure in MEASURES:
        assert f"| `{measure}` |" in page


def test_lightfm_when_installed_is_measured_like_any_peer(tmp_path):
    """Runs only where LightFM is installed (pip install lightfm-next==1.19.0)."""
    pytest.importorskip("lightfm")
    out = tmp_path / "r.json"
    result = _invoke(["bench", "--synthetic", "300x120x4000", "--models", "warp", "--threads", "1", "--factors", "8",
                      "--repeat", "1", "--param", "iterations=2", "--against", "lightfm", "-o", out])
    assert result.exit_code == 0, result.stderr
    rows = [r for r in json.loads(out.read_text())["rows"] if r["library"] == "lightfm"]
    assert [r["status"] for r in rows] == ["ok"] * 4 and all(r["ratio"] > 0 for r in rows)
    assert 0 < rows[0]["ndcg_at_10"] <= 1


def test_a_model_without_gpu_kernels_is_a_skipped_cell_on_gpu(monkeypatch):
    monkeypatch.setattr("recli.backend.gpu_available", lambda: True)
    result = _invoke(["bench", "--synthetic", TINY, "--models", "popular", "--device", "gpu", "--repeat", "1",
                      "--against", "implicit", "--format", "json"])
    assert result.exit_code == 0, result.stderr
    rows = [r for r in json.loads(result.stdout)["rows"] if r["model"] == "popular"]
    assert len(rows) == 8 and all(r["status"] == "skipped" and "no GPU kernels" in r["note"] for r in rows)


def test_hybrid_maps_onto_lightfm_with_its_loss_schedule_and_alphas():
    """recli bench --models hybrid --against lightfm (issue #13): the same loss, schedule
    and alphas; logistic (LightFM's needs negative cells) and k-OS (LightFM steps once per
    user) are skipped."""
    pytest.importorskip("lightfm")
    from recli.models.base import build_config
    from recli.models.hybrid import Hybrid
    from recli.stages.bench import peers

    config = build_config(Hybrid.Config, {"factors": 8, "loss": "bpr", "schedule": "adadelta", "item_alpha": 1e-4,
                                          "rho": 0.9, "seed": 3}, "hybrid")
    model = peers.build("lightfm", "hybrid", config, 1)
    assert (model.loss, model.learning_schedule, model.rho, model.epsilon) == ("bpr", "adadelta", 0.9, 1e-6)
    assert model.item_alpha == 1e-4 and model.user_alpha == 0.0 and model.no_components == 8
    assert peers.skip_reason("lightfm", "hybrid", config, "cpu") is None
    logistic = build_config(Hybrid.Config, {"loss": "logistic"}, "hybrid")
    assert "negative cells" in peers.skip_reason("lightfm", "hybrid", logistic, "cpu")
    kos = build_config(Hybrid.Config, {"kos_k": 2}, "hybrid")
    assert "one step per user" in peers.skip_reason("lightfm", "hybrid", kos, "cpu")
