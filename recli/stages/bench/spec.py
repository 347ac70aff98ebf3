"""What one ``recli bench`` run measures: the request, checked, and its configuration matrix.

A *cell* is one configuration: data set × model × threads × factors × device × dtype ×
library (recli or a peer). Each cell is measured ``repeat`` times; each measure of each repeat
runs in a fresh child process (:mod:`recli.stages.bench.child`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import product

from recli.errors import ConfigError

MEASURES = ("prep", "fit", "recommend_all", "recommend_one", "eval")
PEERS = ("implicit", "lightfm")
FORMATS = ("csv", "json", "markdown")
PEER_INSTALL = {"implicit": "pip install implicit==0.7.3 (or pip install 'recli[bench]')",
                "lightfm": "pip install lightfm-next==1.19.0 (the maintained fork, imported as lightfm)"}
_SPEC = re.compile(r"^(\d+)x(\d+)x(\d+)$")


@dataclass(frozen=True)
class Dataset:
    """A data set to bench on: a file, or the seeded generator at a size."""

    label: str
    path: str | None = None
    users: int = 0
    items: int = 0
    nnz: int = 0


@dataclass(frozen=True)
class Cell:
    """One configuration of the matrix. ``factors`` is ``None`` for models without factors;
    ``dtype`` is the ``--dtype`` storage type of the factors (``recli train --dtype``)."""

    dataset: Dataset
    model: str
    threads: int
    factors: int | None
    device: str
    dtype: str = "float32"
    library: str = "recli"

    @property
    def key(self) -> str:
        """A file-name-safe id of the configuration (without the library)."""
        f = "-" if self.factors is None else self.factors
        return safe_name(f"{self.dataset.label}.{self.model}.t{self.threads}.f{f}.{self.device}.{self.dtype}")


def safe_name(text: str) -> str:
    """``text`` with every character but letters, digits, ``_ . -`` replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


@dataclass
class BenchRequest:
    """The options of ``recli bench`` (see ``recli bench --help``), parsed and checked."""

    data: str | None = None
    synthetic: str | None = None
    models: str = "als"
    threads: str = "0"
    factors: str = "64"
    device: str = "cpu"
    dtype: str = "float32"
    repeat: int = 3
    against: str | None = None
    params: list[str] = field(default_factory=list)
    k: int = 10
    seed: int = 42
    test_size: float = 0.2
    machine: bool = False
    wait_quiet: float = 0.0
    one_user_calls: int = 20
    read: object = None  # recli.data.io.ReadOptions for DATA

    def __post_init__(self) -> None:
        if self.repeat < 1:
            raise ConfigError(f"--repeat must be at least 1 (got {self.repeat})", hint="e.g. --repeat 3")
        if self.k < 1:
            raise ConfigError(f"-k must be at least 1 (got {self.k})", hint="e.g. -k 10")
        if self.wait_quiet < 0:
            raise ConfigError("--wait-quiet must be 0 or more seconds", hint="e.g. --wait-quiet 300")
        if not 0 < self.test_size < 1:
            raise ConfigError(f"--test-size must be between 0 and 1 (got {self.test_size})", hint="e.g. --test-size 0.2")
        if (self.data is None) == (self.synthetic is None):
            raise ConfigError("give either a DATA file or --synthetic, not both or neither",
                              hint="e.g. recli bench --synthetic small, or recli bench ratings.csv")

    @property
    def model_names(self) -> list[str]:
        from recli.models import registry

        names = _items(self.models, "--models")
        known = registry()
        for name in names:
            if name not in known:
                raise ConfigError(f"unknown model {name!r} in --models", hint=f"choose from: {', '.join(known)}")
        return names

    def check_params(self) -> None:
        """Every ``--param key=value`` must name a parameter of at least one model."""
        from recli.models import get_model_class
        from recli.stages.train import parse_param

        models = self.model_names
        for text in self.params:
            key = parse_param(text)[0].replace("-", "_")
            if key == "dtype":  # one place for the axis, so the dtype column tells the truth
                raise ConfigError("--param dtype is recli bench's --dtype axis",
                                  hint="use --dtype float16 (or --dtype float32,float16,bfloat16)")
            if not any(key in get_model_class(m).Config.__dataclass_fields__ for m in models):
                raise ConfigError(f"--param {key} is not a parameter of {', '.join(models)}",
                                  hint="see the parameters with recli train --model NAME --show-params")

    @property
    def thread_counts(self) -> list[int]:
        return [_int(t, "--threads", 0, "0 means every core; give 0 or a positive count, e.g. --threads 1,2")
                for t in _items(self.threads, "--threads")]

    @property
    def factor_counts(self) -> list[int]:
        return [_int(f, "--factors", 1, "give positive factor counts, e.g. --factors 32,64")
                for f in _items(self.factors, "--factors")]

    @property
    def devices(self) -> list[str]:
        from recli.backend import DEVICES

        devices = _items(self.device, "--device")
        for d in devices:
            if d not in DEVICES:
                raise ConfigError(f"unknown device {d!r}", hint=f"use one of: {', '.join(DEVICES)}")
        return devices

    @property
    def dtypes(self) -> list[str]:
        """float32 first (every other type's NDCG is compared with it), then the others asked for."""
        from recli.models._factors import FACTOR_DTYPES

        dtypes = _items(self.dtype, "--dtype")
        for d in dtypes:
            if d not in FACTOR_DTYPES:
                raise ConfigError(f"unknown --dtype {d!r}", hint=f"use one of: {', '.join(FACTOR_DTYPES)}, e.g. --dtype float32,float16")
        return list(dict.fromkeys(["float32", *dtypes]))

    @property
    def peers(self) -> list[str]:
        peers = _items(self.against, "--against") if self.against else []
        for p in peers:
            if p not in PEERS:
                raise ConfigError(f"unknown peer {p!r} in --against", hint=f"choose from: {', '.join(PEERS)}")
        return peers

    @property
    def datasets(self) -> list[Dataset]:
        if self.data is not None:
            return [Dataset(label=self.data.rsplit("/", 1)[-1], path=self.data)]
        return [parse_synthetic(s) for s in _items(self.synthetic, "--synthetic")]


def _items(text: str, option: str) -> list[str]:
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise ConfigError(f"{option} is empty", hint=f"give a comma-separated list, e.g. {option} a,b")
    return list(dict.fromkeys(items))


def _int(text: str, option: str, low: int, hint: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{option} {text!r} is not a whole number", hint=hint) from None
    if value < low:
        raise ConfigError(f"{option} {value} is below {low}", hint=hint)
    return value


def parse_synthetic(text: str) -> Dataset:
    """A preset name (``small``, ``medium``, ``large``) or ``USERSxITEMSxNNZ``."""
    from recli.data.synth import PRESETS

    name = text.strip().lower()
    if name in PRESETS:
        users, items, nnz = PRESETS[name]
        return Dataset(label=name, users=users, items=items, nnz=nnz)
    m = _SPEC.match(name.replace("_", ""))
    if not m:
        raise ConfigError(f"--synthetic {text!r} is neither a preset nor USERSxITEMSxNNZ",
                          hint=f"use one of {', '.join(PRESETS)}, or a size such as 200x100x2000")
    users, items, nnz = (int(g) for g in m.groups())
    if min(users, items, nnz) < 1:
        raise ConfigError(f"--synthetic {text!r} has a zero size", hint="every part must be at least 1, e.g. 200x100x2000")
    return Dataset(label=name, users=users, items=items, nnz=nnz)


def model_config(model: str, factors: int | None, params: list[str], seed: int | None, dtype: str | None = None):
    """Model class and config of one cell: the ``--param`` values the model has (the others
    belong to other models of the run), ``--factors``, ``--dtype`` and ``--seed``."""
    from recli.models import get_model_class
    from recli.stages.train import parse_param, resolve_config

    fields = get_model_class(model).Config.__dataclass_fields__
    mine = [p for p in params if parse_param(p)[0].replace("-", "_") in fields]
    common = {"factors": factors, "dtype": dtype}  # None values are left to the model's defaults
    return resolve_config(model, common=common, params=mine, seed=seed)


def has_factors(model: str) -> bool:
    from recli.models import get_model_class

    return "factors" in get_model_class(model).Config.__dataclass_fields__


def dtype_skip(model: str, dtype: str) -> str | None:
    """Why ``model`` has no cell at ``dtype`` (``None``: it has): only models that store
    factor matrices (a ``dtype`` parameter) take a type other than float32."""
    from recli.models import get_model_class

    if dtype == "float32" or "dtype" in get_model_class(model).Config.__dataclass_fields__:
        return None
    return f"--dtype {dtype}: {model} stores no factor matrices (its figures are those of its float32 row)"


def cells(req: BenchRequest) -> list[Cell]:
    """The configuration matrix, recli's cells only (peers are paired in later). Models
    without factors get one cell per thread count and device, not one per factor count;
    every model gets one per ``--dtype`` (skipped where it does not apply)."""
    out: list[Cell] = []
    req.check_params()
    factors, dtypes = req.factor_counts, req.dtypes
    for ds, model, threads, device in product(req.datasets, req.model_names, req.thread_counts, req.devices):
        for f, dtype in product(factors if has_factors(model) else [None], dtypes):
            out.append(Cell(ds, model, threads, f, device, dtype))
    return out
