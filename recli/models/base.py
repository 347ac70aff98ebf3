"""The model protocol every registered model implements, and typed configs.

A model is one class with a ``name``, a one-line ``summary``, a ``Config`` dataclass
whose fields are declared with :func:`param` (default, bounds, one-line help), and:

``fit(user_items, on_epoch=None)``
    ``user_items`` is a ``scipy.sparse.csr_matrix`` (n_users x n_items, float32 values,
    int32 indices, rows sorted). ``on_epoch(EpochInfo)`` is called after each epoch; if it
    returns ``True`` training stops (early stopping, tuning pruners). When the callback
    runs, ``score`` and ``to_arrays`` must already reflect that epoch: ``recli train
    --valid`` scores the model inside the callback and snapshots ``to_arrays()`` (copied
    by the caller) to restore the best epoch through ``from_arrays``.
    A model that uses time declares a keyword ``timestamps`` in ``fit``: ``float64`` epoch
    seconds aligned with ``user_items.data`` (latest time of each cell), or ``None`` when
    the training data has no timestamp column; only such models are given it.
``score(uidx, history)``
    dense ``float32`` scores of shape ``(len(uidx), n_items)`` for a batch of users.
    ``uidx[i] == -1`` marks a user unseen in training whose interactions are row ``i`` of
    ``history`` (a CSR of shape ``(len(uidx), n_items)``; rows of known users are empty).
    ``history`` is ``None`` when no row is ``-1``. Models that cannot fold users in set
    ``can_fold_in = False`` (``recommend --history`` then refuses before scoring).
``accepts`` / ``accepted_values(config)``
    the cell values the model can use, a key of :data:`VALUE_KINDS` (``accepts`` at the
    default config; ``accepted_values`` for a given one, when a parameter changes it,
    with ``accepts_note`` saying how for the docs). ``recli train`` checks the training
    values against it before fitting (:func:`recli.stages.train.check_values`).
``devices``
    the devices the model has kernels for: ``("cpu",)`` by default; a model listing
    ``"gpu"`` reaches every kernel through ``self.backend.kernels`` (see
    :mod:`recli.backend`). The constructor refuses (or, for ``--device auto``, swaps to
    the CPU) a backend whose device the model does not list. ``gpu_reference`` names the
    backend whose results the GPU's must reproduce (``recli bench --check parity``):
    ``cpu``, or ``xp-numpy`` when the GPU path computes differently from the CPU kernels
    by design (mini-batch instead of Hogwild SGD) and only the array-module path on NumPy
    makes the same computation.
``on_epoch`` reports
    epochs are numbered from 1; ``elapsed`` is the seconds of that epoch alone. A fit that
    diverges raises :class:`~recli.errors.ModelFitError` (:meth:`Model.check_finite`).
``uses_features``
    a model that learns from side features sets it ``True`` and declares keywords
    ``item_features`` and ``user_features`` in ``fit``: each a
    :class:`recli.data.side.SideFeatures` over the model's item (user) vocabulary, or
    ``None`` when none was given. Every id of a feature file is part of the catalogue,
    so items without any interaction are columns of ``user_items`` with no entries (cold
    items), and such a model scores them from their features. ``train --item-features``
    given to a model without ``uses_features`` is refused. ``feature_sides`` names the
    sides the model reads (``train --user-features`` is refused for a model without
    ``"user"``); ``required_features`` the sides it cannot fit without (refused before
    the data is read). The model stores what it needs of the features in ``to_arrays``
    (:meth:`SideFeatures.to_arrays <recli.data.side.SideFeatures.to_arrays>`).
``feature_names(side)`` / ``score_new_items(uidx, history, item_features)``
    a feature model's feature vocabulary of ``side`` (a unicode array, ``None`` when
    fitted without), and the scores ``(len(uidx), n_new)`` of items outside the
    catalogue from their features alone: ``item_features`` is a
    :class:`~recli.data.side.SideFeatures` with one row per new item over the columns
    ``feature_names("item")``; ``uidx`` and ``history`` are as in ``score``.
    ``recommend --item-table`` uses them.
``similar_items(iidx)``
    dense ``float32`` similarity of shape ``(len(iidx), n_items)``.
``to_arrays()`` / ``from_arrays(config, arrays)``
    the learned state as a dict of NumPy arrays (no pickle), and back. ``from_arrays``
    also receives the training matrix as ``train_indptr/train_indices/train_data/
    train_shape`` (:func:`train_arrays`): the model file stores it once for every model
    (to filter seen items), so a model that keeps it (kNN, EASE) reads it from there and
    leaves it out of ``to_arrays``.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Optional

import numpy as np

from recli.errors import ConfigError, InputError, ModelFitError

# What the values of the training cells may be (a cell's value is its rating column, summed
# over duplicate rows, or 1 per row without one). The train stage applies the rule before
# the fit; the models apply it to fold-in histories too.
VALUE_KINDS: dict[str, str] = {
    "binary": "each cell with a value > 0 is one positive interaction, its size ignored; cells with a value <= 0 "
              "are left out (a dislike is not a positive), with a warning that counts them",
    "nonnegative": "weights >= 0 (counts, play counts, confidences) whose size matters; a negative value is refused",
    "real": "any finite value, used with its sign (what a negative value means: the model's negative_values)",
    "ratings": "explicit ratings of any sign; the input must have a rating column that is not constant",
}


def param(default: Any, help: str, *, min: float | None = None, max: float | None = None,
          exclusive_min: bool = False, choices: tuple[str, ...] | None = None) -> Any:
    """Declare a hyper-parameter: default, bounds (``min`` inclusive unless
    ``exclusive_min``), allowed ``choices`` and a one-line help text."""
    return field(default=default, metadata={"help": help, "min": min, "max": max,
                                            "exclusive_min": exclusive_min, "choices": choices})


@dataclass
class EpochInfo:
    """What a model reports after each epoch: ``epoch`` counts from 1, ``elapsed`` is the
    seconds of this epoch alone, ``loss`` the model's training loss (if it has one) and
    ``metrics`` what the caller adds (``recli train --valid``: ``ndcg@10``)."""

    epoch: int
    elapsed: float
    loss: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)


EpochCallback = Callable[[EpochInfo], Optional[bool]]


def csr_to_arrays(prefix: str, m: Any) -> dict[str, np.ndarray]:
    """A CSR matrix as ``{prefix}_indptr`` (int64), ``_indices`` (int32), ``_data`` (float32)
    and ``_shape`` arrays."""
    return {f"{prefix}_indptr": np.asarray(m.indptr, np.int64), f"{prefix}_indices": np.asarray(m.indices, np.int32),
            f"{prefix}_data": np.asarray(m.data, np.float32), f"{prefix}_shape": np.asarray(m.shape, np.int64)}


def csr_from_prefix(prefix: str, arrays: dict[str, np.ndarray]) -> Any:
    """The CSR matrix :func:`csr_to_arrays` stored under ``prefix`` (rows sorted, as stored)."""
    from recli.data.matrix import csr_from_arrays

    shape = tuple(int(x) for x in arrays[f"{prefix}_shape"])
    return csr_from_arrays(arrays[f"{prefix}_indptr"], arrays[f"{prefix}_indices"], arrays[f"{prefix}_data"], shape)


def train_arrays(user_items: Any) -> dict[str, np.ndarray]:
    """The training matrix in the form ``from_arrays`` receives it (see the module docstring)."""
    return csr_to_arrays("train", user_items)


def split_batch(uidx: Any, history: Any, n_users: int, n_items: int) -> tuple[np.ndarray, np.ndarray, Any]:
    """The fold-in preamble every model shares: ``(uidx as int64, positions of the rows
    marked -1, their history rows as a canonical CSR, or None when there are none)``.

    Raises :class:`InputError` for an index outside ``[-1, n_users)``, for new users
    without ``history`` (the one "a new user needs a history" error), and for a history
    whose columns are not the model's items.
    """
    uidx = np.asarray(uidx, dtype=np.int64).ravel()
    if uidx.size and (int(uidx.max()) >= n_users or int(uidx.min()) < -1):
        raise InputError(f"user index out of range for this model ({n_users} users)",
                         hint="map users through the model's user vocabulary, or pass -1 with a history row")
    new = np.flatnonzero(uidx < 0)
    if new.size == 0:
        return uidx, new, None
    if history is None:
        raise InputError(f"{new.size} new user(s) need their interaction history to be scored",
                         hint="pass --history FILE with user,item[,rating] rows")
    from recli.data.matrix import as_csr

    hist = as_csr(history, n_cols=n_items, what="history")
    if hist.shape[0] != uidx.shape[0]:
        raise InputError("history must have one row per requested user", hint="align history rows with the users")
    return uidx, new, as_csr(hist[new])


def describe_params(config_cls: type) -> list[dict[str, Any]]:
    """One dict per parameter: name, type, default, bounds, choices, help."""
    rows = []
    for f in dataclasses.fields(config_cls):
        md = f.metadata
        rows.append({"name": f.name, "type": _type_name(f.type), "default": f.default,
                     "min": md.get("min"), "max": md.get("max"), "exclusive_min": md.get("exclusive_min", False),
                     "choices": md.get("choices"), "help": md.get("help", "")})
    return rows


def _type_name(t: Any) -> str:
    return t if isinstance(t, str) else getattr(t, "__name__", str(t))


def _cast(value: Any, type_name: str, name: str) -> Any:
    if not isinstance(value, str):
        if type_name == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if type_name == "int" and isinstance(value, int) and not isinstance(value, bool):
            return value
        if type_name == "bool" and isinstance(value, bool):
            return value
        if type_name == "str":
            return str(value)
        if value is None and "None" in type_name:
            return None
    text = str(value).strip()
    try:
        if type_name.startswith("int"):
            f = float(text)
            if not f.is_integer():
                raise ValueError
            return int(f)
        if type_name.startswith("float"):
            return float(text)
        if type_name.startswith("bool"):
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
    except ValueError:
        raise ConfigError(f"parameter {name}={value!r} is not a valid {type_name.split(' ')[0]}",
                          hint=f"give {name} a {type_name.split(' ')[0]} value") from None
    return text


def build_config(config_cls: type, params: dict[str, Any], model_name: str = "") -> Any:
    """Create and validate a config from ``{name: value}`` (values may be strings)."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    values: dict[str, Any] = {}
    for key, value in params.items():
        name = key.replace("-", "_")
        if name not in fields and name + "_" in fields:  # keyword-named fields: lambda -> lambda_
            name += "_"
        if name not in fields:
            raise ConfigError(f"unknown parameter {key!r} for model {model_name!r}",
                              hint=f"valid parameters: {', '.join(fields)}")
        values[name] = _cast(value, _type_name(fields[name].type), name)
    config = config_cls(**values)
    validate_config(config)
    return config


def validate_config(config: Any) -> None:
    """Check every field against its declared bounds and choices."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        md = f.metadata
        if value is None:
            continue
        if md.get("choices") and value not in md["choices"]:
            raise ConfigError(f"{f.name}={value!r} is not a valid choice",
                              hint=f"use one of: {', '.join(md['choices'])}")
        lo, hi = md.get("min"), md.get("max")
        if lo is not None and (value < lo or (md.get("exclusive_min") and value == lo)):
            op = ">" if md.get("exclusive_min") else ">="
            raise ConfigError(f"{f.name}={value} is out of range: it must be {op} {lo}",
                              hint=f"set --param {f.name}=<value {op} {lo}>")
        if hi is not None and value > hi:
            raise ConfigError(f"{f.name}={value} is out of range: it must be <= {hi}",
                              hint=f"set --param {f.name}=<value <= {hi}>")


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


class Model:
    """Base class; subclasses set ``name``, ``summary`` and ``Config``."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    Config: ClassVar[type] = object
    # Devices with kernels for this model (see recli.backend); "gpu" also admits xp-numpy.
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    gpu_reference: ClassVar[str] = "cpu"
    # The cell values the model can use at its default config (a key of VALUE_KINDS), how a
    # parameter changes that (for the docs) and, for "real", what a negative value means.
    accepts: ClassVar[str] = "real"
    accepts_note: ClassVar[str] = ""
    negative_values: ClassVar[str] = "used with their sign"
    # A "ratings" model: the option that lets it learn implicit data (the refusal's hint).
    implicit_hint: ClassVar[str] = "--param negatives=3"
    # What to change when a fit diverges (the hint of ModelFitError).
    diverged_hint: ClassVar[str] = "lower the learning rate or alpha, or raise the regularization"
    can_fold_in: ClassVar[bool] = False
    # Learns from side features: fit takes item_features / user_features (SideFeatures).
    uses_features: ClassVar[bool] = False
    # The feature sides a uses_features model reads, and those it cannot fit without.
    feature_sides: ClassVar[tuple[str, ...]] = ("item", "user")
    required_features: ClassVar[tuple[str, ...]] = ()
    # explain_features names the features behind a score (recommend --explain).
    explains_features: ClassVar[bool] = False
    can_explain: ClassVar[bool] = False
    # Scores are predicted ratings on the training data's scale, not only an order (mf):
    # pair scores are clipped to the training range, eval --model computes rmse/mae, and
    # --valid defaults to rmse.
    predicts_ratings: ClassVar[bool] = False
    # Training runs in epochs that report to ``on_epoch``: --valid and --early-stopping
    # apply. One-shot fits (counts, similarities, a closed form) set this False.
    trains_in_epochs: ClassVar[bool] = True
    # Small, fast settings for the shared contract tests (merged over the defaults).
    test_params: ClassVar[dict] = {}
    # The default space ``recli tune`` searches: {parameter: {type, low, high, log, step | values}}
    # (recli.stages.tune_space). Parameters left out keep their configured value.
    search_space: ClassVar[dict] = {}

    def __init__(self, config: Any = None, backend: Any = None):
        from recli.backend import get_backend

        self.config = config if config is not None else self.Config()
        validate_config(self.config)
        self.backend = (backend if backend is not None else get_backend("cpu")).for_model(type(self))
        self.n_users = 0
        self.n_items = 0
        self.epoch_losses: list[float] = []

    # False for baselines whose ranking ignores the user (the contract tests then check
    # the known popularity order instead of the block structure).
    personalized: ClassVar[bool] = True

    @classmethod
    def device_refusal(cls, device: str) -> ConfigError:
        """The error for running this model on ``device``, which it has no kernels for."""
        from recli.models import registry

        able = [name for name, model in registry().items() if device in model.devices]
        return ConfigError(f"model {cls.name!r} has no {device.upper()} kernels, so --device {device} cannot run it",
                           hint=f"use --device cpu, or a model with {device.upper()} kernels: "
                                f"{', '.join(able) or '(none)'}")

    @classmethod
    def rates(cls, config: Any) -> bool:
        """Whether a model with ``config`` predicts ratings (``predicts_ratings``, unless a
        parameter changes it: ``fm`` with ``task=ranking`` ranks only)."""
        return cls.predicts_ratings

    @classmethod
    def accepted_values(cls, config: Any) -> str:
        """The key of :data:`VALUE_KINDS` that holds for ``config`` (``accepts`` unless a
        parameter changes it; such models override this and set ``accepts_note``)."""
        return cls.accepts

    # -- training ---------------------------------------------------------
    def fit(self, user_items: Any, on_epoch: EpochCallback | None = None) -> "Model":
        raise NotImplementedError

    def _report(self, on_epoch: EpochCallback | None, epoch: int, start: float, loss: float | None) -> bool:
        """Record the loss and call the epoch callback; ``True`` means stop now.

        ``epoch`` counts from 1; ``start`` is the ``time.perf_counter()`` at the start of
        this epoch, so ``elapsed`` is the epoch's own time.
        """
        if loss is not None:
            self.epoch_losses.append(float(loss))
        if on_epoch is None:
            return False
        return bool(on_epoch(EpochInfo(epoch=epoch, elapsed=time.perf_counter() - start, loss=loss)))

    def check_finite(self, values: dict[str, Any], epoch: int | None = None) -> None:
        """Raise :class:`ModelFitError` if any of ``values`` (floats or arrays) holds NaN or
        ±inf: the one divergence guard of every model and of the train stage."""
        for what, value in values.items():
            a = np.asarray(value)
            if a.dtype.kind in "fc" and not np.isfinite(a).all():
                at = f" at epoch {epoch}" if epoch is not None else ""
                raise ModelFitError(f"{self.name} diverged{at}: {what} holds NaN or infinite values",
                                    hint=self.diverged_hint)

    # -- inference --------------------------------------------------------
    def score(self, uidx: np.ndarray, history: Any) -> np.ndarray:
        raise NotImplementedError

    def score_pairs(self, uidx: np.ndarray, iidx: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """float32 ``score(u)[i]`` for each pair ``(uidx[p], iidx[p])`` of training indices
        (all known). Users are scored ``batch_size`` at a time, each once."""
        uidx = np.asarray(uidx, dtype=np.int64)
        iidx = np.asarray(iidx, dtype=np.int64)
        order = np.argsort(uidx, kind="stable")
        users, first = np.unique(uidx[order], return_index=True)
        bounds = np.append(first, order.shape[0])
        out = np.empty(uidx.shape[0], dtype=np.float32)
        for b in range(0, users.shape[0], batch_size):
            batch = users[b:b + batch_size]
            scores = self.score(batch, None)
            pos = order[bounds[b]:bounds[b + batch.shape[0]]]
            out[pos] = scores[np.searchsorted(batch, uidx[pos]), iidx[pos]]
        return out

    def fallback_pairs(self, uidx: np.ndarray, iidx: np.ndarray) -> np.ndarray:
        """Scores of pairs whose user or item the model does not know (index ``-1``): NaN,
        since a ranking score exists only for known users and items. Rating models
        override it with what they can predict without the unknown side."""
        return np.full(np.asarray(uidx).shape[0], np.nan, dtype=np.float32)

    @classmethod
    def stored_bytes(cls, config: Any, n_users: int, n_items: int) -> int:
        """About how many bytes ``to_arrays`` will hold, known before the fit (the train
        command checks the free disk space with it): float32 factors and a bias per user
        and item for models with ``factors``, else one float per item."""
        factors = getattr(config, "factors", None)
        if factors:
            return 4 * (n_users + n_items) * (int(factors) + 1)
        return 4 * n_items

    @classmethod
    def gpu_memory(cls, config: Any, user_items: Any) -> Any:
        """The device memory a GPU fit of ``config`` on ``user_items`` (CSR) needs, a
        :class:`recli.device_memory.MemoryEstimate` (see that module for the plan). This
        default counts the training CSR (float32 values, int32 indices) and float32
        factors plus a bias per user and item for models with ``factors``; models whose
        kernels batch override it with their per-batch cost."""
        from recli.device_memory import MemoryEstimate

        n_users, n_items = user_items.shape
        parts = {"training matrix": 8 * int(user_items.nnz) + 4 * (n_users + 1)}
        factors = getattr(config, "factors", None)
        if factors:
            parts["factors"] = 4 * (n_users + n_items) * (int(factors) + 1)
        return MemoryEstimate(parts)

    def similar_items(self, iidx: np.ndarray) -> np.ndarray:
        raise ConfigError(f"model {self.name!r} cannot compute similar items",
                          hint="use a factor or neighbourhood model (e.g. als, itemknn)")

    def explain(self, uidx: int, history_items: np.ndarray, history_values: np.ndarray,
                items: np.ndarray) -> np.ndarray:
        """Contributions ``C`` of shape ``(len(items), len(history_items))``: ``C[j, h]`` is
        how much history item ``h`` adds to the score of ``items[j]``; each row sums to
        that item's score. Only models with ``can_explain = True`` implement it."""
        raise ConfigError(f"model {self.name!r} cannot explain its recommendations",
                          hint="use --explain with itemknn, ease or als")

    def explain_features(self, uidx: int, history_items: np.ndarray, history_values: np.ndarray,
                         items: np.ndarray) -> np.ndarray:
        """Feature contributions ``F`` of shape ``(len(items), len(feature_names("item")))``:
        ``F[j, f]`` is how much feature ``f`` adds to the score of ``items[j]`` (rows sum to
        the score). Only models with ``explains_features = True`` implement it;
        ``recommend --explain`` then also names the features that matched."""
        raise ConfigError(f"model {self.name!r} cannot name the features behind its scores",
                          hint="use --explain with the content model")

    # -- side features ----------------------------------------------------
    def feature_names(self, side: str) -> np.ndarray | None:
        """The feature vocabulary of ``side`` (``item`` or ``user``) the model was fitted
        with, or ``None`` (no features of that side)."""
        return None

    def score_new_items(self, uidx: np.ndarray, history: Any, item_features: Any) -> np.ndarray:
        """float32 scores ``(len(uidx), n_new)`` of new items (not in the catalogue) from
        their features: ``item_features`` is a :class:`recli.data.side.SideFeatures` of
        ``n_new`` rows over the columns ``feature_names("item")``; ``uidx`` and
        ``history`` as in :meth:`score`."""
        raise ConfigError(f"model {self.name!r} cannot score new items from their features",
                          hint="train a model that learns from item features (e.g. content) with --item-features")

    # -- persistence ------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    @classmethod
    def from_arrays(cls, config: Any, arrays: dict[str, np.ndarray], backend: Any = None) -> "Model":
        raise NotImplementedError
