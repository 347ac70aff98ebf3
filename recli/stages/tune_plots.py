"""``recli tune --plot``: PNG charts of a study, drawn by Optuna's matplotlib visualisations.

Written into DIR: ``history.png`` (the first metric per trial, and the best so far),
``importances.png`` (PED-ANOVA importances; with enough complete trials and two or more
parameters), ``slice.png`` (the first metric against each parameter) and, with several
metrics, ``pareto.png`` (the front).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from recli.console import log
from recli.errors import ConfigError


def write_plots(study: Any, plan: Any, out: Path) -> list[str]:
    """Draw the charts into ``out``; returns the file names written."""
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("--plot needs matplotlib", hint="pip install 'recli[tune]' (or matplotlib)") from None
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as ovm

    from recli.stages.tune_study import MIN_TRIALS_FOR_IMPORTANCE, complete_trials, importance_target

    multi = len(plan.objectives) > 1
    key = plan.objectives[0].key
    target = (lambda t: t.values[0]) if multi else None
    charts = {"history": lambda: ovm.plot_optimization_history(study, target=target, target_name=key),
              "slice": lambda: ovm.plot_slice(study, target=target, target_name=key)}
    if len(complete_trials(study)) >= MIN_TRIALS_FOR_IMPORTANCE and len(plan.space) > 1:
        charts["importances"] = lambda: ovm.plot_param_importances(
            study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), target=importance_target(plan),
            target_name=key)
    if multi:
        charts["pareto"] = lambda: ovm.plot_pareto_front(study, target_names=[o.key for o in plan.objectives])
    written = []
    for name, draw in charts.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib charts experimental
            try:
                ax = draw()
            except (ValueError, RuntimeError) as exc:
                log.warning(f"no {name} chart: {exc}")
                continue
        fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
        _save(fig, out / f"{name}.png")
        plt.close(fig)
        written.append(f"{name}.png")
    log.info(f"wrote charts: {', '.join(written)}")
    return written


def _save(fig: Any, path: Path) -> None:
    from recli.data.io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
