"""The single model registry: CLI choices, ``--list-models``, docs and the shared
contract tests all derive from ``MODELS``. Adding a model is one class plus one line.
"""

from __future__ import annotations

from recli.errors import ConfigError
from recli.models.base import Model

_MODEL_CLASSES: tuple[tuple[str, str], ...] = (
    # (module, class name): imported lazily so listing models stays cheap.
    ("recli.models.knn", "ItemKNN"),
    ("recli.models.knn", "UserKNN"),
    ("recli.models.ease", "EASE"),
)


def _load() -> dict[str, type[Model]]:
    import importlib

    out: dict[str, type[Model]] = {}
    for module, cls_name in _MODEL_CLASSES:
        cls = getattr(importlib.import_module(module), cls_name)
        out[cls.name] = cls
    return out


def registry() -> dict[str, type[Model]]:
    """``{name: class}`` for every registered model, in registration order."""
    return _load()


def get_model_class(name: str) -> type[Model]:
    models = registry()
    if name not in models:
        raise ConfigError(f"unknown model {name!r}", hint=f"choose one of: {', '.join(models) or '(none registered)'}")
    return models[name]
