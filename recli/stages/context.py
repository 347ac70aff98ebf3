"""Context columns for models that learn from them (``fm``): read at ``recli train
--context-col COL`` (:func:`recli.data.context.context_features`), chosen at ``recli
recommend --context COL=VALUE`` (:func:`apply_context`)."""

from __future__ import annotations

import inspect
from typing import Any

from recli.data.context import context_features
from recli.data.io import ReadOptions, read_interactions
from recli.data.matrix import ITEM, USER, Interactions
from recli.data.side import FeatureTable, SideFeatures
from recli.errors import ConfigError


def check_context_model(cls: type) -> None:
    """Refuse ``--context-col`` for a model whose ``fit`` takes no ``context``."""
    if "context" not in inspect.signature(cls.fit).parameters:
        raise ConfigError(f"model {cls.name!r} does not use context columns",
                          hint="drop --context-col, or train --model fm")


def load_with_context(source: str, fmt: str | None, read: ReadOptions | None, columns: list[str],
                      features: list[FeatureTable] | None = None) -> tuple[Interactions, SideFeatures]:
    """The training interactions (:func:`recli.stages.train.load_interactions`, feature
    tables included) and their per-cell context, from one read of ``source``."""
    from recli.stages.train import interactions_from_frame

    what = "training data" if source == "-" else source
    df = read_interactions(source, read or ReadOptions(fmt=fmt))
    data = interactions_from_frame(df, source, features)
    df = df.filter(df[USER].is_not_null() & df[ITEM].is_not_null())
    return data, context_features(df, columns, data.users, data.items, what)


def apply_context(model: Any, pairs: list[str]) -> None:
    """Set the recommend context of ``model`` from ``COL=VALUE`` strings."""
    if not hasattr(model, "set_context"):
        raise ConfigError(f"model {model.name!r} does not use context", hint="drop --context")
    values: dict[str, str] = {}
    for text in pairs:
        col, sep, value = text.partition("=")
        if not sep or not col.strip():
            raise ConfigError(f"--context {text!r} is not COL=VALUE", hint="write e.g. --context hour=evening")
        values[col.strip()] = value.strip()
    model.set_context(values)
