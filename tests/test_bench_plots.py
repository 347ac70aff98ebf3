"""``recli bench --plot`` and ``--from-report``: charts of handmade report rows (nothing is
measured), and bad reports refused with one error line."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from recli.stages.bench.plots import CHARTS
from recli.stages.bench.report import render

PNG = b"\x89PNG\r\n\x1a\n"
SIZES = {"small": (10_000, 2_000, 200_000), "medium": (100_000, 20_000, 5_000_000), "large": (500_000, 100_000, 20_000_000)}
ENV = {"cpu": "test cpu", "cores": 2, "versions": {"recli": "0"}}


def _row(dataset: str, library: str, model: str, measure: str, value: float, ratio: float | None = None, **extra) -> dict:
    users, items, nnz = SIZES[dataset]
    factors = None if model in ("itemknn", "") else 64
    unit = {"fit": "s/iteration" if factors else "s", "recommend_all": "users/s", "recommend_one": "ms"}.get(measure, "s")
    return {"dataset": dataset, "users": users, "items": items, "interactions": nnz, "library": library, "model": model,
            "threads": 2, "factors": factors, "device": "cpu", "measure": measure, "unit": unit, "value": value,
            "values": [] if value is None else [value], "repeats": 1, "ratio": ratio, "status": "ok", "note": None, **extra}


def _rows(dataset: str, scale: float) -> list[dict]:
    """recli and implicit on als and itemknn: fit time and recommend-all throughput that
    scale with the data, the other measures once; ratios as recli ÷ implicit."""
    rows = [_row(dataset, "recli", "", "prep", 2.0 * scale)]
    for model, fit, peer_fit in (("als", 0.3, 0.7), ("itemknn", 0.8, 1.9)):
        for measure, ours, theirs in (("fit", fit * scale, peer_fit * scale), ("recommend_all", 15_000 / scale, 12_000 / scale),
                                      ("recommend_one", 3.0, 1.3), ("eval", 6.6 * scale, 8.8 * scale)):
            rows.append(_row(dataset, "recli", model, measure, ours, ndcg_at_10=0.13, total_s=10 * ours))
            rows.append(_row(dataset, "implicit", model, measure, theirs, ours / theirs))
    rows.append({**_row(dataset, "lightfm", "als", "fit", None), "status": "skipped", "note": "lightfm has no als"})
    return rows


def _invoke(args: list) -> object:
    from recli import console
    from recli.cli import app

    console.reset()
    return CliRunner().invoke(app, ["bench", *map(str, args)], catch_exceptions=False)


def _save(path, rows: list[dict]) -> str:
    path.write_text(render(rows, ENV, [], "json" if path.suffix == ".json" else "csv"), encoding="utf-8")
    return str(path)


def _assert_charts(folder) -> None:
    for name in CHARTS:
        data = (folder / name).read_bytes()
        assert data[:8] == PNG and len(data) > 5_000, name
    assert not [p for p in folder.iterdir() if p.name not in CHARTS]  # no temporary files left behind


def test_charts_of_three_reports_json_and_csv(tmp_path):
    reports = [_save(tmp_path / "small.json", _rows("small", 1)), _save(tmp_path / "medium.csv", _rows("medium", 20)),
               _save(tmp_path / "large.json", _rows("large", 90))]
    result = _invoke(["--from-report", reports[0], "--from-report", reports[1], "--from-report", reports[2],
                      "--plot", tmp_path / "charts"])
    assert result.exit_code == 0, result.stderr
    _assert_charts(tmp_path / "charts")


def test_the_peer_panels_pair_recli_with_each_peer_and_the_size_lines_span_every_report(tmp_path):
    from recli.stages.bench.plots import _peer_panels
    from recli.stages.bench.report import read_reports

    rows = read_reports([_save(tmp_path / "small.csv", _rows("small", 1)), _save(tmp_path / "large.json", _rows("large", 90))])
    panels = _peer_panels(rows)
    assert set(panels) == {(d, m) for d in ("small", "large") for m in ("fit", "recommend_all", "recommend_one", "eval")}
    ours, peers = panels["large", "fit"]["als\nf=64 t=2"]
    assert ours == pytest.approx(27.0) and peers == {"implicit": (pytest.approx(63.0), pytest.approx(27 / 63))}
    assert list(panels["small", "eval"]) == ["als\nf=64 t=2", "itemknn\nt=2"]
    fit = sorted((r["interactions"], r["value"]) for r in rows
                 if r["library"] == "recli" and r["model"] == "als" and r["measure"] == "fit")
    assert fit == [(200_000, pytest.approx(0.3)), (20_000_000, pytest.approx(27.0))]


def test_a_later_report_replaces_the_same_configuration(tmp_path):
    from recli.stages.bench.report import read_reports

    first = _save(tmp_path / "a.json", _rows("small", 1))
    second = _save(tmp_path / "b.json", [_row("small", "recli", "als", "fit", 0.25)])
    rows = read_reports([first, second])
    assert len(rows) == len(_rows("small", 1))
    assert [r["value"] for r in rows if r["library"] == "recli" and r["model"] == "als" and r["measure"] == "fit"] == [0.25]


def test_plot_after_a_run_writes_every_chart_even_without_data(tmp_path):
    from recli.stages.bench.plots import write_plots

    skipped = {k: v for k, v in _row("small", "lightfm", "als", "fit", None).items() if k not in ("unit", "value", "ratio")}
    write_plots([_row("small", "recli", "", "prep", 1.0), {**skipped, "status": "skipped"}], str(tmp_path / "charts"))
    _assert_charts(tmp_path / "charts")


def _bad_cases(tmp_path) -> list[tuple[list, str]]:
    md = tmp_path / "r.md"
    md.write_text("| dataset |\n")
    other = tmp_path / "other.csv"
    other.write_text("user,item\n1,2\n")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    only_prep = _save(tmp_path / "prep.json", [_row("small", "recli", "", "prep", 1.0)])
    skipped = _save(tmp_path / "skipped.csv", [{**_row("small", "implicit", "als", "fit", None), "status": "skipped"}])
    good = _save(tmp_path / "good.json", _rows("small", 1))
    return [
        (["--from-report", tmp_path / "missing.json", "--plot", tmp_path / "c"], "does not exist"),
        (["--from-report", md, "--plot", tmp_path / "c"], "only JSON and CSV"),
        (["--from-report", other, "--plot", tmp_path / "c"], "not a recli bench report: no column 'dataset'"),
        (["--from-report", broken, "--plot", tmp_path / "c"], "cannot read report"),
        (["--from-report", only_prep, "--plot", tmp_path / "c"], "nothing to plot"),
        (["--from-report", skipped, "--plot", tmp_path / "c"], "nothing to plot"),
        (["--from-report", good], "needs --plot DIR"),
        (["--from-report", good, "--synthetic", "small", "--plot", tmp_path / "c"], "measures nothing"),
    ]


def test_bad_reports_are_one_error_line_and_exit_2(tmp_path):
    for args, message in _bad_cases(tmp_path):
        result = _invoke(args)
        assert result.exit_code == 2, (args, result.stderr)
        assert result.stderr.count("error:") == 1 and message in result.stderr and "hint:" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "c").exists()


def test_without_matplotlib_plot_is_refused_before_anything_runs(tmp_path, monkeypatch):
    from recli.stages.bench import runner

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    monkeypatch.setattr(runner, "_child", lambda *a: pytest.fail("no measure may start without matplotlib"))
    good = _save(tmp_path / "good.json", _rows("small", 1))
    for args in (["--from-report", good, "--plot", tmp_path / "c"], ["--synthetic", "20x10x50", "--plot", tmp_path / "c"]):
        result = _invoke(args)
        assert result.exit_code == 2, result.stderr
        assert result.stderr.count("error:") == 1 and "needs matplotlib" in result.stderr
        assert "hint: pip install 'recli[bench]'" in result.stderr
    assert not (tmp_path / "c").exists()
