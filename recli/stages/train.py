"""``recli train``: interactions + model name + parameters → a fitted model and its metadata."""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recli.backend import get_backend, threads_context
from recli.console import log
from recli.data.io import ReadOptions, read_interactions
from recli.data.matrix import ITEM, USER, Interactions, build_interactions, to_csr
from recli.data.side import FeatureTable, SideFeatures, distinct_ids, matched_ids, read_feature_table, side_features
from recli.errors import ConfigError, InputError
from recli.metrics.registry import METRICS, metric_key, parse_metric
from recli.models import get_model_class, registry
from recli.models.base import EpochCallback, EpochInfo, Model, build_config, config_to_dict, train_arrays


@dataclass
class TrainResult:
    model: Model
    data: Interactions
    meta: dict[str, Any]
    valid_scores: list[float] = field(default_factory=list)


def parse_param(text: str) -> tuple[str, str]:
    """``key=value`` → ``(key, value)``."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--param {text!r} is not key=value", hint="write parameters like --param factors=64")
    return key.strip(), value.strip()


def load_params_file(path: str, model_name: str | None) -> tuple[str | None, dict[str, Any]]:
    """Read a TOML/JSON parameter file.

    Accepted shapes: a flat table of parameters; ``model = "als"`` plus a ``[params]``
    table (what ``recli tune`` writes); or one table named after the model (``[als]``).
    Returns ``(model named in the file or None, params)``.
    """
    from recli.config import load_config_file

    data = load_config_file(path)
    file_model = data.get("model") if isinstance(data.get("model"), str) else None
    name = model_name or file_model
    if isinstance(data.get("params"), dict):
        params = data["params"]
    elif name and isinstance(data.get(name), dict):
        params = data[name]
    else:
        params = {k: v for k, v in data.items() if k != "model" and not isinstance(v, dict)}
    return file_model, dict(params)


def resolve_config(model_name: str | None, *, common: dict[str, Any] | None = None, params: list[str] | None = None,
                   config_file: str | None = None, seed: int | None = None) -> tuple[type[Model], Any]:
    """Model class and validated config. Precedence: named flags > ``--param`` > ``--config`` > defaults."""
    values: dict[str, Any] = {}
    if config_file:
        file_model, values = load_params_file(config_file, model_name)
        model_name = model_name or file_model
    if not model_name:
        raise ConfigError("no model chosen", hint="pass --model NAME (see 'recli train --list-models')")
    cls = get_model_class(model_name)
    for text in params or []:
        key, value = parse_param(text)
        values[key.replace("-", "_")] = value
    fields = set(cls.Config.__dataclass_fields__)
    common = dict(common or {})
    _check_dtype(cls, common.get("dtype"), fields)
    if "dtype" not in fields:
        common.pop("dtype", None)
    for key, value in common.items():
        if value is not None:
            values[key] = value
    if seed is not None and "seed" in fields:
        values["seed"] = seed
    return cls, build_config(cls.Config, values, cls.name)


def _check_dtype(cls: type[Model], dtype: str | None, fields: set[str]) -> None:
    """``--dtype`` applies to models that store factor matrices (a ``dtype`` config field);
    any other model stores float32 (or no floats at all) and refuses another type."""
    from recli.models._factors import FACTOR_DTYPES

    if dtype is not None and dtype not in FACTOR_DTYPES:
        raise ConfigError(f"--dtype {dtype} is not a storage type", hint=f"use one of: {', '.join(FACTOR_DTYPES)}")
    if dtype is None or "dtype" in fields or dtype == "float32":
        return
    able = ", ".join(name for name, m in registry().items() if "dtype" in m.Config.__dataclass_fields__)
    raise ConfigError(f"model {cls.name!r} stores no factor matrices, so --dtype {dtype} does not apply to it",
                      hint=f"drop --dtype, or use a factor model: {able}")


def load_interactions(source: str, fmt: str | None = None, read: ReadOptions | None = None,
                      features: list[FeatureTable] | None = None) -> Interactions:
    """Training interactions; columns found by the shared resolver (``read.columns``, else aliases).

    Every id of a feature table in ``features`` joins the vocabulary of its side, also
    without interactions; a table none of whose ids is in the training data is refused.
    """
    return interactions_from_frame(read_interactions(source, read or ReadOptions(fmt=fmt)), source, features)


def interactions_from_frame(df: Any, source: str, features: list[FeatureTable] | None = None) -> Interactions:
    """:func:`load_interactions` from the frame already read from ``source``."""
    extra: dict[str, Any] = {}
    for table in features or []:
        column = USER if table.side == "user" else ITEM
        matched, ids = matched_ids(table, df[column]), distinct_ids(table)
        log.info(f"--{table.side}-features: {ids.len()} {table.side}s with features, {matched} of them in the "
                 f"training data; the other {ids.len() - matched} join the catalogue without interactions")
        extra[f"extra_{table.side}s"] = ids
    return build_interactions(df, what="training data" if source == "-" else source, **extra)


def load_features(read: ReadOptions | None = None, **sources: str | None) -> list[FeatureTable]:
    """The feature files given as ``item=PATH`` / ``user=PATH`` (``None``: not given)."""
    return [read_feature_table(path, side, read) for side, path in sources.items() if path]


def check_feature_options(cls: type[Model], **sources: str | None) -> None:
    """Refuse, before anything is read, feature files the model cannot use and a model
    that needs a feature file it was not given (``item=PATH`` / ``user=PATH``)."""
    given = [side for side, path in sources.items() if path]
    able = ", ".join(name for name, m in registry().items() if m.uses_features)
    if given and not cls.uses_features:
        raise ConfigError(f"model {cls.name!r} does not learn from features, so --{given[0]}-features does not apply",
                          hint=f"drop --{given[0]}-features, or use a model that learns from features: {able}")
    for side in given:
        if side not in cls.feature_sides:
            raise ConfigError(f"model {cls.name!r} reads {' and '.join(cls.feature_sides)} features only, "
                              f"so --{side}-features does not apply",
                              hint=f"drop --{side}-features")
    for side in cls.required_features:
        if side not in given:
            raise ConfigError(f"model {cls.name!r} needs {side} features: it scores {side}s by them",
                              hint=f"pass --{side}-features FILE (the {side}_features.parquet recli prep writes, "
                                   f"or any {side},feature,value table)")


def _fit_kwargs(cls: type[Model], data: Interactions, features: dict[str, SideFeatures]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if "timestamps" in inspect.signature(cls.fit).parameters:
        kwargs["timestamps"] = data.timestamps
    if cls.uses_features:
        kwargs.update(item_features=features.get("item"), user_features=features.get("user"))
    return kwargs


def _side_features(data: Interactions, tables: list[FeatureTable]) -> tuple[dict[str, SideFeatures], dict[str, Any]]:
    """The feature matrices over the training vocabularies, and what ``meta.json`` records
    of them (source, counts and, from a ``recli prep`` folder, the fitted transform)."""
    out, meta = {}, {}
    for table in tables:
        vocab = data.users if table.side == "user" else data.items
        out[table.side], _ = side_features(table, vocab)
        matrix = out[table.side].matrix
        meta[table.side] = {"source": table.source, "features": int(matrix.shape[1]), "values": int(matrix.nnz),
                            "without_features": int((np.diff(matrix.indptr) == 0).sum())}
        if table.transform is not None:
            meta[table.side].update(transform=table.transform, id_column=table.id_column)
        if meta[table.side]["without_features"]:
            log.info(f"--{table.side}-features: {meta[table.side]['without_features']} {table.side}s of the training "
                     f"data have no feature in {table.source}")
    return out, meta


_POSITIVES_HINT = "keep the positive interactions with 'recli prep --implicit --min-rating N'"


def check_values(cls: type[Model], config: Any, data: Interactions) -> None:
    """Apply the model's value rule (:data:`recli.models.base.VALUE_KINDS`, from
    ``cls.accepted_values(config)``) to the training cells before the fit: refuse what the
    model cannot use (:class:`InputError`, exit 2) and say in a log line what it does with
    the rest. The model applies the same rule itself (``binary``: cells <= 0 left out)."""
    kind = cls.accepted_values(config)
    values = data.user_items.data
    cells, negative = values.size, int((values < 0).sum())
    if kind == "ratings" and (not data.has_ratings or (cells and values.min() == values.max())):
        why = "the training data has no rating column" if not data.has_ratings else f"every rating is {values[0]:g}"
        raise InputError(f"{cls.name} learns explicit ratings, but {why}",
                         hint="train on user,item,rating rows whose ratings vary; for implicit data use "
                              f"{cls.implicit_hint + ' or ' if cls.implicit_hint else ''}a ranking model such as "
                              "als or bpr")
    if kind == "binary":
        left_out = int((values <= 0).sum())
        if cells and left_out == cells:
            raise InputError(f"{cls.name} learns from positive interactions, but no training value is > 0",
                             hint="check the rating column: it needs values > 0 for the likes, plays or purchases")
        if left_out:
            log.warning(f"{cls.name} reads values > 0 as positive interactions: {left_out} of the {cells} "
                        f"(user, item) cells have a value <= 0 and are left out of training")
        if (values[values > 0] != 1).any():
            log.info(f"{cls.name} ignores the size of the values: each cell with a value > 0 is one positive")
    elif kind == "nonnegative" and negative:
        raise InputError(f"{cls.name} needs values >= 0 ({cls.accepts_note or 'nonnegative'}), but {negative} of "
                         f"the {cells} training cells are negative",
                         hint=f"{_POSITIVES_HINT}, or pick parameters or a model that accept any value "
                              f"(see docs/models.md#values)")
    elif kind == "real" and negative:
        log.info(f"{cls.name}: the {negative} negative values (of {cells} cells) {cls.negative_values}")


def train(data: Interactions, cls: type[Model], config: Any, *, device: str = "cpu", threads: int = 0,
          seed: int | None = None, valid: Interactions | None = None, early_stopping: int = 0,
          on_epoch: EpochCallback | None = None, valid_metric: str | None = None,
          max_gpu_memory: str = "", features: list[FeatureTable] | None = None,
          context: Any = None) -> TrainResult:
    """Fit ``cls(config)`` on ``data``; with ``valid``, ``valid_metric`` (default: rmse for
    models that predict ratings, else ndcg@10) is computed after every epoch
    (``EpochInfo.metrics``) and, with ``early_stopping=N``, training stops after N epochs
    without improvement and the best epoch's state is restored. On a GPU the device
    memory is planned first (:func:`recli.device_memory.plan_device_memory`, within
    ``max_gpu_memory``, e.g. ``"8GB"``; empty = the free memory less a margin).
    ``features``: the feature tables (:func:`load_features`) of a model with
    ``uses_features``, given to its ``fit`` over ``data``'s vocabularies (which
    :func:`load_interactions` extended). ``context``: per-cell context features
    (:mod:`recli.stages.context`) for a model whose ``fit`` takes them."""
    from recli.device_memory import parse_bytes, plan_device_memory
    from recli.stages.validation import validation_score

    if max_gpu_memory:
        parse_bytes(max_gpu_memory, "--max-gpu-memory")  # a bad size is refused on any device
    name, k, sign = _validation_metric(cls, config, valid, early_stopping, valid_metric)
    metric = metric_key(name, k)
    backend = get_backend(device, threads, model=cls)
    check_values(cls, config, data)  # after the option checks: those do not depend on the data
    check_feature_options(cls, **{t.side: t.source for t in features or []})
    side, side_meta = _side_features(data, features or [])
    model = cls(config, backend)
    if model.backend.device == "gpu":  # the estimate costs a pass over the data: only where it is used
        plan_device_memory(model.backend, cls.gpu_memory(config, data.user_items), cls.name, max_gpu_memory)
    state: dict[str, Any] = {"best": -np.inf, "best_epoch": 0, "arrays": None, "scores": [], "epochs": 0}

    def callback(info: EpochInfo) -> bool | None:
        stop = False
        epoch = state["epochs"] = info.epoch
        if valid is not None:
            score = validation_score(model, valid.user_items, data.user_items, name, k)
            info.metrics[metric] = score
            state["scores"].append(score)
            if sign * score > state["best"]:
                state.update(best=sign * score, best_epoch=epoch)
                if early_stopping:
                    state["arrays"] = {k: np.array(v, copy=True) for k, v in model.to_arrays().items()}
            elif early_stopping and epoch - state["best_epoch"] >= early_stopping:
                stop = True
        outer = on_epoch(info) if on_epoch is not None else None
        return stop or bool(outer)

    start = time.perf_counter()
    with threads_context(threads) as n_threads:
        extra = {} if context is None else {"context": context}
        model.fit(data.user_items, on_epoch=callback, **_fit_kwargs(cls, data, side), **extra)
    fit_seconds = time.perf_counter() - start
    held_as = getattr(model, "training_dtype", "float32")  # the factors' form during training
    epochs_run = state["epochs"]
    if state["arrays"] is not None and state["best_epoch"] < epochs_run:
        losses = list(model.epoch_losses)
        model = cls.from_arrays(config, {**train_arrays(data.user_items), **state["arrays"]}, model.backend)
        model.n_users, model.n_items = data.user_items.shape
        model.epoch_losses = losses
        log.info(f"early stopping: kept epoch {state['best_epoch']} ({metric} {sign * state['best']:.4f})")
    model.check_finite(model.to_arrays())
    config_dict = config_to_dict(config)
    meta = {"config": config_dict, "seed": config_dict.get("seed", seed), "threads": n_threads,
            "device": model.backend.name, "dtype": config_dict.get("dtype", "float32"),
            "fit_seconds": round(fit_seconds, 4), "epochs": epochs_run,
            "epoch_losses": [float(x) for x in model.epoch_losses],
            "counts": {"rows": data.n_rows}, "training_fingerprint": data.fingerprint}
    if "dtype" in config_dict:
        meta["training_dtype"] = held_as
    if side_meta:
        meta["features"] = side_meta
    if valid is not None:
        meta.update(valid_metric=metric, valid_scores=[round(s, 6) for s in state["scores"]],
                    best_epoch=state["best_epoch"] if early_stopping else epochs_run)
    return TrainResult(model, data, meta, state["scores"])


def _validation_metric(cls: type[Model], config: Any, valid: Any, early_stopping: int,
                       text: str | None) -> tuple[str, int | None, float]:
    """``(metric, k, sign)`` for ``--valid``: ``sign`` is +1 when higher is better, -1 when
    lower is (rmse), so that ``sign * value`` is always maximised."""
    if early_stopping and valid is None:
        raise ConfigError("--early-stopping needs a validation set", hint="pass --valid FILE")
    if text is not None and valid is None:
        raise ConfigError("--valid-metric needs a validation set", hint="pass --valid FILE")
    if valid is None:
        return "", None, 1.0
    if not cls.trains_in_epochs:
        able = ", ".join(name for name, m in registry().items() if m.trains_in_epochs)
        raise ConfigError(f"model {cls.name!r} fits in one pass, so --valid and --early-stopping do not apply to it",
                          hint=f"drop them, or use a model that trains in epochs: {able}")
    rates = cls.rates(config)
    name, k = parse_metric(text or ("rmse" if rates else "ndcg@10"), "--valid-metric")
    spec = METRICS[name]
    if spec.kind == "rating" and not rates:
        able = ", ".join(n for n, m in registry().items() if m.predicts_ratings)
        raise ConfigError(f"--valid-metric {name} needs predicted ratings, and {cls.name!r} ranks items without them",
                          hint=f"use a ranking metric such as ndcg@10, or a rating model: {able}")
    if spec.kind != "rating" and (spec.kind != "ranking" or spec.needs):
        raise ConfigError(f"--valid-metric {name} cannot be computed from a validation set alone",
                          hint="use a ranking metric (ndcg@10, recall@20, map@10, …) or rmse/mae")
    return name, k, 1.0 if spec.higher_is_better else -1.0


def load_validation(source: str, data: Interactions, fmt: str | None = None,
                    read: ReadOptions | None = None) -> Interactions:
    """A validation file mapped onto the training vocabularies (unknown ids dropped, counted)."""
    df = read_interactions(source, read or ReadOptions(fmt=fmt))
    from recli.data.matrix import require_columns

    require_columns(df, (USER, ITEM), source)
    matrix, _ = to_csr(df, data.users, data.items, what=source)
    if matrix.nnz == 0:
        raise InputError(f"validation file {source!r} shares no (user, item) pair ids with the training data",
                         hint="make the validation split from the same data (recli prep --valid-size)")
    dropped = df.height - int(matrix.nnz)
    if dropped > 0:
        log.info(f"validation: {dropped} rows with users/items unknown to training (or duplicates) ignored")
    return Interactions(data.users, data.items, matrix, None, df.height)


def describe_model_list() -> list[dict[str, Any]]:
    from recli.models import registry

    return [{"name": name, "summary": cls.summary, "fold_in": cls.can_fold_in, "explain": cls.can_explain,
             "devices": list(cls.devices), "values": cls.accepts, "values_note": cls.accepts_note,
             "features": list(cls.feature_sides) if cls.uses_features else [],
             "parameters": list(cls.Config.__dataclass_fields__)}
            for name, cls in registry().items()]


def summary_line(result: TrainResult, output: str | Path) -> str:
    ui = result.data.user_items
    return (f"trained {result.model.name} on {ui.shape[0]} users x {ui.shape[1]} items ({ui.nnz} interactions) "
            f"in {result.meta['fit_seconds']:.2f}s -> {output}")
