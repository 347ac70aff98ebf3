"""``recli bench --plot DIR``: PNG charts of bench rows (matplotlib, Agg backend), of a run
or of saved reports (``--from-report``, one per data set or several data sets in one).

Four files, always written (a chart without data says so), each to a temporary name
renamed into place:

* ``peers.png``: one panel per data set (rows) and measure (columns); for every
  configuration recli's value next to each peer's, the peer bar labelled with the ratio
  recli ÷ peer (times: below 1 means recli is faster; users/s: above 1);
* ``time_vs_size.png``: fit seconds per iteration (per fit for one-pass models) and
  all-users recommend users/s against training interactions, log-log, one line per
  library × model × factors × threads;
* ``time_vs_threads.png``: fit time against threads;
* ``quality_vs_time.png``: NDCG@10 against total fit seconds.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from recli.errors import ConfigError, InputError, OutputError

CHARTS = ("time_vs_threads.png", "time_vs_size.png", "peers.png", "quality_vs_time.png")
_CONFIG = ("dataset", "model", "threads", "factors", "device", "dtype")
_PEER_MEASURES = ("fit", "recommend_all", "recommend_one", "eval")
_PREFIX = {"factors": "f=", "threads": "t="}


def require_matplotlib() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (files only, no display)."""
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("--plot needs matplotlib, which is not installed",
                          hint="pip install 'recli[bench]' (or pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _ok(rows: list[dict], measure: str) -> list[dict]:
    return [r for r in rows if r.get("status") == "ok" and r["measure"] == measure and r.get("value") is not None]


def _peer_panels(rows: list[dict]) -> dict[tuple[str, str], dict[str, tuple[float, dict[str, tuple[float, float]]]]]:
    """(dataset, measure) -> configuration label -> (recli's value, {peer: (value, ratio)})."""
    ours = {tuple(r[c] for c in (*_CONFIG, "measure")): r["value"]
            for m in _PEER_MEASURES for r in _ok(rows, m) if r["library"] == "recli"}
    panels: dict = defaultdict(dict)
    for m in _PEER_MEASURES:
        for r in _ok(rows, m):
            key = tuple(r[c] for c in (*_CONFIG, "measure"))
            if r["library"] == "recli" or r.get("ratio") is None or key not in ours:
                continue
            label = "\n".join([r["model"], " ".join(_PREFIX[c] + str(r[c]) for c in _PREFIX if r[c] is not None)]
                              + ([r["device"]] if r["device"] != "cpu" else []))
            panels[r["dataset"], m].setdefault(label, (ours[key], {}))[1][r["library"]] = (r["value"], r["ratio"])
    return panels


def plottable(rows: list[dict]) -> bool:
    """Whether a chart has data: a measured fit or all-users recommend, or a peer with a ratio."""
    return bool(_ok(rows, "fit") or _ok(rows, "recommend_all") or _peer_panels(rows))


def _lines(ax, rows: list[dict], x: str, group: tuple[str, ...]) -> bool:
    series = defaultdict(list)
    for r in rows:
        if r.get(x) is not None:  # a 16-bit --dtype is its own line; float32 is the unnamed default
            series[" ".join(_PREFIX.get(g, "") + str(r[g]) for g in (*group, "dtype") if r.get(g) not in (None, "float32"))
                   ].append((r[x], r["value"]))
    for label, points in sorted(series.items()):
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    return bool(series)


def _label(ax, has_data: bool, title: str, legend: bool = True) -> None:
    ax.set_title(title, fontsize="medium")
    if not has_data:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    elif legend:
        ax.legend(fontsize="x-small")


def _save(fig, path: Path) -> None:
    from recli.data.io import atomic_path

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def _draw_peers(plt, rows: list[dict], path: Path) -> None:
    panels = _peer_panels(rows)
    size = {r["dataset"]: r.get("interactions") or 0 for r in rows}
    datasets = sorted({d for d, _ in panels}, key=lambda d: (size[d], d)) or [None]
    measures = [m for m in _PEER_MEASURES if any(pm == m for _, pm in panels)] or [None]
    libs = ["recli", *sorted({p for groups in panels.values() for _, peers in groups.values() for p in peers})]
    units = defaultdict(set)
    for r in rows:
        units[r["dataset"], r["measure"]].add(r.get("unit"))  # a run's skipped rows have no unit
    fig, axes = plt.subplots(len(datasets), len(measures), figsize=(1 + 3.6 * len(measures), 0.8 + 3.2 * len(datasets)),
                             squeeze=False)
    width = 0.8 / len(libs)
    for (i, d), (j, m) in ((a, b) for a in enumerate(datasets) for b in enumerate(measures)):
        ax, groups = axes[i][j], panels.get((d, m), {})
        for g, (ours, peers) in enumerate(groups.values()):
            for b, lib in enumerate(libs):
                if lib == "recli" or lib in peers:
                    value, ratio = (ours, None) if lib == "recli" else peers[lib]
                    x = g + (b - (len(libs) - 1) / 2) * width
                    ax.bar(x, value, width, color=f"C{b}")
                    if ratio is not None:
                        ax.text(x, value, f"{ratio:.2f}", ha="center", va="bottom", fontsize="x-small")
        ax.set_xticks(range(len(groups)), list(groups), fontsize="x-small")
        ax.set_ylabel(" or ".join(sorted(u for u in units[d, m] if u)), fontsize="small")
        ax.margins(y=0.15)  # room for the ratio labels
        _label(ax, bool(groups), f"{d}: {m}" if d else "recli against peers", legend=False)
    if panels:
        fig.legend([plt.Rectangle((0, 0), 1, 1, color=f"C{b}") for b in range(len(libs))], libs, loc="upper right",
                   fontsize="small")
    fig.suptitle("recli against peers (labels: recli ÷ peer; times: < 1 means recli is faster, users/s: > 1)",
                 fontsize="small")
    _save(fig, path)


def _draw_sizes(plt, rows: list[dict], path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, measure, ylabel in zip(axes, ("fit", "recommend_all"),
                                   ("fit seconds per iteration (or per fit)", "all-users recommend, users/s")):
        has = _lines(ax, _ok(rows, measure), "interactions", ("library", "model", "factors", "threads"))
        if has:
            ax.set_xscale("log")
            ax.set_yscale("log")
        ax.set_xlabel("training interactions")
        ax.set_ylabel(ylabel)
        _label(ax, has, f"{measure} against data size")
    _save(fig, path)


def write_plots(rows: list[dict], folder: str) -> list[Path]:
    """Write the four charts into ``folder`` (created); returns their paths."""
    plt = require_matplotlib()
    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--plot {folder!r} is a file, not a folder", hint="give a folder for the charts")
    out.mkdir(parents=True, exist_ok=True)
    fit = _ok(rows, "fit")
    paths = [out / name for name in CHARTS]

    fig, ax = plt.subplots(figsize=(7, 4.5))
    has = _lines(ax, fit, "threads", ("library", "model", "factors", "dataset"))
    ax.set_xlabel("threads (0 = every core)")
    ax.set_ylabel("fit seconds per iteration (or per fit)")
    _label(ax, has, "fit time against threads")
    _save(fig, paths[0])

    _draw_sizes(plt, rows, paths[1])
    _draw_peers(plt, rows, paths[2])

    fig, ax = plt.subplots(figsize=(7, 4.5))
    has = False
    for r in fit:
        if r.get("ndcg_at_10") is not None and r.get("total_s"):
            ax.scatter(r["total_s"], r["ndcg_at_10"], label=f"{r['library']} {r['model']} f={r['factors']} t={r['threads']}"
                       + (f" {r['dtype']}" if r.get("dtype") not in (None, "float32") else ""))
            has = True
    ax.set_xlabel("fit seconds (whole fit)")
    ax.set_ylabel("NDCG@10 (holdout)")
    _label(ax, has, "quality against time")
    _save(fig, paths[3])
    plt.close("all")
    return paths


def plot_reports(reports: list[str], folder: str) -> list[Path]:
    """The charts of saved reports (``recli bench --from-report``): their rows together,
    so several reports give the data-size axis and one panel row per data set."""
    from recli.stages.bench.report import read_reports

    require_matplotlib()
    rows = read_reports(reports)
    if not plottable(rows):
        raise InputError(f"nothing to plot in {', '.join(reports)}: no measured fit or recommend_all rows and no peer ratios",
                         hint="plot reports of runs that measured at least one model (recli bench ... -o FILE.json)")
    return write_plots(rows, folder)
