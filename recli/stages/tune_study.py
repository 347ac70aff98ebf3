"""``recli tune`` from start to end: check, load, run the study, write DIR.

DIR holds ``study.json`` (written first: it marks the folder as a tune study), the
journal (``journal.log``, without ``--storage``), ``trials.csv``, ``best.toml``, and with
``--plot`` the PNG charts, with ``--final-train`` the ``model`` folder. Each file is
replaced atomically on its own; the folder itself is a resumable workspace, never swapped.
"""

from __future__ import annotations

import csv
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from recli.console import log, progress, show_progress
from recli.stages import tune as tn
from recli.stages import tune_storage as st

FILES = {"study": "study.json", "trials": "trials.csv", "best": "best.toml", "model": "model"}
MIN_TRIALS_FOR_IMPORTANCE = 10


def tune(opts: tn.TuneOptions, final_train: bool = False, plot: bool = False) -> dict[str, Any]:
    """Run (or continue) the study of ``opts``; returns the best result (``--format json``)."""
    import contextlib

    from recli.data.outdir import check_output_dir

    st.require_optuna()
    plan = tn.plan_study(opts)
    check_output_dir(opts.out, "tune", option="--out")
    data, folds = tn.load_folds(opts)
    tn.existing_study_check(opts, plan)
    Path(opts.out).mkdir(exist_ok=True)
    marker = Path(opts.out) / FILES["study"]
    if not marker.exists():  # first, so that a folder cut short is still known as a study
        write_study_json(opts, plan, data, folds, None)
    lock = st.folder_lock(opts.out) if plan.db_path is None else contextlib.nullcontext()
    with lock:
        _warn_if_data_changed(marker, data)
        write_study_json(opts, plan, data, folds, None)
        s = tn.open_study(opts, plan, folds)
        procs = tn.start_workers(opts) if opts.workers > 1 else []
        try:
            _run_with_progress(s, opts)
        finally:
            tn.join_workers(procs)
        return write_outputs(s, opts, data, folds, final_train, plot)


def _warn_if_data_changed(marker: Path, data: Any) -> None:
    """A study continued on other TRAIN data mixes scores of two data sets: say so."""
    try:
        old = json.loads(marker.read_text(encoding="utf-8")).get("data", {}).get("train_fingerprint")
    except (OSError, ValueError):
        return
    if old and old != data.fingerprint:
        log.warning("TRAIN differs from the data this study was run on (its fingerprint changed); "
                    "earlier trials were scored on the old data")


def _run_with_progress(s: tn.Study, opts: tn.TuneOptions) -> None:
    """The trials, with a progress line on a TTY: trials done, best so far, ETA."""
    plan, start = s.plan, time.monotonic()
    with progress() as bar:
        task = bar.add_task(f"tuning {plan.cls.name}", total=plan.trials, completed=s.resumed)

        def on_trial(study: Any, done: int) -> None:
            if not show_progress():  # the best value is a storage read: only for a visible bar
                return
            ran = max(1, done - s.resumed)
            eta = (time.monotonic() - start) / ran * max(0, plan.trials - done)
            best = _best_text(study, plan)
            bar.update(task, completed=done, description=f"tuning {plan.cls.name}{best}  ETA {eta:.0f}s")

        if s.resumed:
            log.info(f"resuming the study: {s.resumed} of {plan.trials} trials already finished")
        s.ran = tn.run_trials(s.study, s.runner, plan, opts.timeout, on_trial)
        s.wall = time.monotonic() - start


def _best_text(study: Any, plan: tn.Plan) -> str:
    if len(plan.objectives) > 1:
        return ""
    try:
        return f"  best {plan.objectives[0].key} {study.best_value:.4f}"
    except ValueError:  # no completed trial yet
        return ""


def complete_trials(study: Any) -> list[Any]:
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def front_numbers(study: Any, plan: tn.Plan) -> set[int]:
    """Trial numbers on the Pareto front (multi-objective), or the best trial's (one metric)."""
    if not complete_trials(study):
        return set()
    if len(plan.objectives) == 1:
        return {study.best_trial.number}
    return {t.number for t in study.best_trials}


def pick_best(study: Any, plan: tn.Plan, pick: str | None) -> Any:
    """The best trial; on a front, the member best on ``--pick`` (default: the first metric)."""
    if not complete_trials(study):
        return None
    if len(plan.objectives) == 1:
        return study.best_trial
    i = tn.pick_index(plan.objectives, pick)
    sign = 1.0 if plan.objectives[i].maximize else -1.0
    return max(study.best_trials, key=lambda t: (sign * t.values[i], -t.number))


def best_config(plan: tn.Plan, trial: Any) -> dict[str, Any]:
    """Every parameter of the best configuration (fixed values, then the trial's)."""
    from recli.models.base import build_config, config_to_dict

    config = build_config(plan.cls.Config, {**plan.base, **trial.params}, plan.cls.name)
    return {k: v for k, v in config_to_dict(config).items() if v is not None}


def toml_text(model: str, params: dict[str, Any]) -> str:
    """``model = "NAME"`` and a ``[params]`` table: what ``recli train --params`` reads."""
    lines = [f"model = {json.dumps(model)}", "", "[params]"]
    for key, value in params.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (int, float)):
            text = repr(value)
        else:
            text = json.dumps(str(value), ensure_ascii=False)
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


def _write_text(path: Path, text: str) -> None:
    from recli.data.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def trial_rows(study: Any, plan: tn.Plan) -> tuple[list[str], list[list[Any]]]:
    """trials.csv: number, state, each parameter, each metric, fit time, epochs, pruned-at,
    whether on the front (the best trial, with one metric), the worker that ran it, the error."""
    front = front_numbers(study, plan)
    params = list(plan.space)
    header = ["number", "state", *params, *[o.key for o in plan.objectives], "fit_seconds", "epochs", "pruned_at",
              "front", "worker", "error"]
    rows = []
    for t in study.get_trials(deepcopy=False):
        values = list(t.values) if t.values is not None else [None] * len(plan.objectives)
        a = t.user_attrs.get("run", {})
        rows.append([t.number, t.state.name, *[t.params.get(p) for p in params], *values, a.get("fit_seconds"),
                     a.get("epochs"), a.get("pruned_at"), t.number in front, a.get("worker"), t.user_attrs.get("error")])
    return header, rows


def write_trials_csv(path: Path, study: Any, plan: tn.Plan) -> None:
    from recli.data.io import atomic_path

    header, rows = trial_rows(study, plan)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows([["" if v is None else v for v in row] for row in rows])


def write_study_json(opts: tn.TuneOptions, plan: tn.Plan, data: Any, folds: list, result: dict | None) -> None:
    """study.json: sampler, seed, space, metrics, data fingerprints, recli version (and the result)."""
    from recli import __version__

    doc = {"command": "tune", "recli_version": __version__, "model": plan.cls.name, "sampler": plan.sampler,
           "pruner": plan.pruner, "seed": opts.seed, "trials": plan.trials, "study_name": opts.study_name,
           "storage": opts.storage or st.JOURNAL, "space": tn.ts.space_to_dict(plan.space), "fixed": plan.base,
           "metrics": [{"metric": o.key, "direction": "maximize" if o.maximize else "minimize"} for o in plan.objectives],
           "data": {"train": opts.train_file, "train_fingerprint": data.fingerprint, "valid": opts.valid,
                    "valid_split": None if opts.valid else opts.valid_split, "cv": opts.cv,
                    "valid_fingerprints": [v.fingerprint for _, v in folds]}}
    if result is not None:
        doc["result"] = result
    _write_text(Path(opts.out) / FILES["study"], json.dumps(doc, indent=2, default=str) + "\n")


def importance_target(plan: tn.Plan) -> Any:
    """The value PED-ANOVA reads: Optuna's own for one metric; with several, the first
    metric, negated when maximised (PED-ANOVA rates how parameters reach low values)."""
    if len(plan.objectives) == 1:
        return None
    sign = -1.0 if plan.objectives[0].maximize else 1.0
    return lambda t: sign * t.values[0]


def importances(study: Any, plan: tn.Plan) -> dict[str, float]:
    """PED-ANOVA parameter importances of the first metric, once enough trials are complete."""
    import optuna

    if len(complete_trials(study)) < MIN_TRIALS_FOR_IMPORTANCE or len(plan.space) < 2:
        return {}
    target = importance_target(plan)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the sign note above, printed for any target
            values = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), target=target)
    except (ValueError, RuntimeError) as exc:  # e.g. every trial scored the same
        log.debug(f"no parameter importances: {exc}")
        return {}
    return {k: round(float(v), 4) for k, v in values.items()}


def write_outputs(s: tn.Study, opts: tn.TuneOptions, data: Any, folds: list, final_train: bool,
                  plot: bool) -> dict[str, Any]:
    """trials.csv, best.toml, study.json, the stderr summary, and the optional extras."""
    from recli.errors import InputError

    out, plan, study = Path(opts.out), s.plan, s.study
    write_trials_csv(out / FILES["trials"], study, plan)
    best = pick_best(study, plan, opts.pick)
    if best is None:
        raise InputError(f"no trial of the study completed ({len(study.trials)} failed or were pruned); "
                         f"see {out / FILES['trials']}", hint="check the errors in trials.csv, or widen the space")
    params = best_config(plan, best)
    _write_text(out / FILES["best"], toml_text(plan.cls.name, params))
    done, _ = tn.finished_count(study)
    result = {"model": plan.cls.name, "best_trial": best.number,
              "values": {o.key: v for o, v in zip(plan.objectives, best.values)}, "params": params,
              "searched": {k: best.params[k] for k in plan.space}, "trials": done,
              "front": sorted(front_numbers(study, plan)) if len(plan.objectives) > 1 else None,
              "importances": importances(study, plan), "out": str(out), "timing": _timing(s)}
    write_study_json(opts, plan, data, folds, result)
    _summary(result)
    if plot:
        from recli.stages.tune_plots import write_plots

        result["plots"] = write_plots(study, plan, out)
    if final_train:
        result["model_dir"] = str(final_model(opts, plan, params, out / FILES["model"]))
    return result


def _timing(s: tn.Study) -> dict[str, Any] | None:
    """This run's trials: wall time, time in fits, and the overhead per trial beyond the
    fit (sampling, validation scoring, storage), in milliseconds: the median over trials
    (the steady cost of one more trial) and the mean, which also spreads the one-time
    costs of the first trial (loading the scoring kernels) over the run."""
    if not s.ran:
        return None
    fits = s.runner.fit_total
    per_trial = s.runner.overheads or [(s.wall - fits) / s.ran]
    return {"trials_run": s.ran, "wall_seconds": round(s.wall, 3), "fit_seconds": round(fits, 3),
            "overhead_ms_per_trial": round(1000 * float(np.median(per_trial)), 2),
            "overhead_ms_mean": round(1000 * (s.wall - fits) / s.ran, 2)}


def _summary(result: dict[str, Any]) -> None:
    values = ", ".join(f"{k} {v:.4f}" for k, v in result["values"].items())
    log.info(f"best trial {result['best_trial']} of {result['trials']}: {values}")
    log.info("best parameters: " + ", ".join(f"{k}={v}" for k, v in result["searched"].items()))
    if result["importances"]:
        log.info("parameter importances (PED-ANOVA): "
                 + ", ".join(f"{k} {v:.2f}" for k, v in result["importances"].items()))
    if result["timing"]:
        t = result["timing"]
        log.info(f"{t['trials_run']} trials in {t['wall_seconds']:.1f}s, {t['fit_seconds']:.1f}s of it fitting "
                 f"({t['overhead_ms_per_trial']:.1f} ms per trial besides the fit, median; "
                 f"{t['overhead_ms_mean']:.1f} ms mean)")
    log.info(f"wrote {result['out']}/{FILES['trials']}, {FILES['best']} and {FILES['study']}")


def final_model(opts: tn.TuneOptions, plan: tn.Plan, params: dict[str, Any], dest: Path) -> Path:
    """Retrain the best configuration on TRAIN + VALID and write ``DIR/model``."""
    import polars as pl

    from recli.artifacts import save_model
    from recli.data.io import read_interactions
    from recli.models.base import build_config
    from recli.stages.train import interactions_from_frame, load_interactions, train

    tables = opts.feature_tables()
    if opts.valid:
        frames = [read_interactions(f, opts.read) for f in (opts.train_file, opts.valid)]
        full = interactions_from_frame(pl.concat(frames, how="diagonal_relaxed"), "training + validation data", tables)
    else:  # the validation cells came from TRAIN
        full = load_interactions(opts.train_file, read=opts.read, features=tables)
    config = build_config(plan.cls.Config, params, plan.cls.name)
    result = train(full, plan.cls, config, device=opts.device, threads=opts.threads, features=tables)
    result.meta["train_source"] = opts.train_file if not opts.valid else f"{opts.train_file} + {opts.valid}"
    save_model(dest, result.model, full.users, full.items, full.user_items, result.meta)
    log.info(f"retrained the best configuration on all the data -> {dest}")
    return dest
