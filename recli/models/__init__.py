"""The single model registry: CLI choices, ``--list-models``, docs and the shared
contract tests all derive from ``MODELS``. Adding a model is one class plus one line.
"""

from __future__ import annotations

from recli.errors import ConfigError
from recli.models.base import Model

_MODEL_CLASSES: tuple[tuple[str, str], ...] = (
    # (module, class name): imported lazily so listing models stays cheap.
    ("recli.models.popular", "Popular"),
    ("recli.models.als", "ALS"),
    ("recli.models.mf", "MF"),
    ("recli.models.bpr", "BPR"),
    ("recli.models.warp", "WARP"),
    ("recli.models.hybrid", "Hybrid"),
    ("recli.models.knn", "ItemKNN"),
    ("recli.models.knn", "UserKNN"),
    ("recli.models.ease", "EASE"),
    ("recli.models.content", "Content"),
    ("recli.models.fm", "FM"),
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
    """The class registered as ``name``. A module named like the model is tried first,
    so loading one model file does not import every model's dependencies."""
    import importlib

    for module, cls_name in _MODEL_CLASSES:
        if module.rsplit(".", 1)[-1] == name:
            cls = getattr(importlib.import_module(module), cls_name)
            if cls.name == name:
                return cls
    models = registry()
    if name not in models:
        raise ConfigError(f"unknown model {name!r}", hint=f"choose one of: {', '.join(models) or '(none registered)'}")
    return models[name]
