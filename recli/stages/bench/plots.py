"""``recli bench --plot DIR``: PNG charts of a bench run's rows (matplotlib, Agg backend).

Four files, always written (a chart without data says so): ``time_vs_threads.png`` (fit
time per iteration or per fit against threads), ``time_vs_size.png`` (the same against
training interactions), ``peers.png`` (recli ÷ peer per model and measure) and
``quality_vs_time.png`` (NDCG@10 against total fit seconds).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

CHARTS = ("time_vs_threads.png", "time_vs_size.png", "peers.png", "quality_vs_time.png")


def _ok(rows: list[dict], measure: str) -> list[dict]:
    return [r for r in rows if r.get("status") == "ok" and r["measure"] == measure and r.get("value") is not None]


def _lines(ax, rows: list[dict], x: str, group: tuple[str, ...]) -> bool:
    series = defaultdict(list)
    for r in rows:
        if r.get(x) is not None:
            series[" ".join(str(r[g]) for g in group if r.get(g) is not None)].append((r[x], r["value"]))
    for label, points in sorted(series.items()):
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    return bool(series)


def _finish(fig, ax, path: Path, has_data: bool, title: str, legend: bool = True) -> None:
    ax.set_title(title)
    if has_data and legend:
        ax.legend(fontsize="small")
    else:
        ax.text(0.5, 0.5, "no data in this run", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)


def write_plots(rows: list[dict], folder: str) -> list[Path]:
    """Write the four charts into ``folder`` (created); returns their paths."""
    try:
        import matplotlib
    except ImportError:
        from recli.errors import ConfigError

        raise ConfigError("--plot needs matplotlib, which is not installed",
                          hint="pip install 'recli[bench]' (or pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    fit = _ok(rows, "fit")
    paths = [out / name for name in CHARTS]

    fig, ax = plt.subplots(figsize=(7, 4.5))
    has = _lines(ax, fit, "threads", ("library", "model", "factors", "dataset"))
    ax.set_xlabel("threads (0 = every core)")
    ax.set_ylabel("fit seconds per iteration (or per fit)")
    _finish(fig, ax, paths[0], has, "fit time against threads")

    fig, ax = plt.subplots(figsize=(7, 4.5))
    has = _lines(ax, fit, "interactions", ("library", "model", "factors", "threads"))
    ax.set_xscale("log")
    ax.set_xlabel("training interactions")
    ax.set_ylabel("fit seconds per iteration (or per fit)")
    _finish(fig, ax, paths[1], has, "fit time against data size")

    fig, ax = plt.subplots(figsize=(7, 4.5))
    peer = [r for r in rows if r.get("ratio") is not None]
    labels = [f"{r['model']} {r['measure']}\nvs {r['library']} t={r['threads']}" for r in peer]
    ax.bar(range(len(peer)), [r["ratio"] for r in peer])
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xticks(range(len(peer)), labels, rotation=60, ha="right", fontsize="x-small")
    ax.set_ylabel("recli ÷ peer (times: < 1 faster; users/s: > 1 faster)")
    _finish(fig, ax, paths[2], bool(peer), "recli against peers", legend=False)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    has = False
    for r in fit:
        if r.get("ndcg_at_10") is not None and r.get("total_s"):
            ax.scatter(r["total_s"], r["ndcg_at_10"], label=f"{r['library']} {r['model']} f={r['factors']} t={r['threads']}")
            has = True
    ax.set_xlabel("fit seconds (whole fit)")
    ax.set_ylabel("NDCG@10 (holdout)")
    _finish(fig, ax, paths[3], has, "quality against time")
    plt.close("all")
    return paths
