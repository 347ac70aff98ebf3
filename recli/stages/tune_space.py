"""Search spaces for ``recli tune``: parsed, checked against the model's ``Config``, sampled.

A space maps parameter names to dimensions, written in TOML (``--space FILE``), inline
(``--space-param factors=int:16:256:log``) or as a model's ``search_space`` ClassVar::

    factors = { type = "int", low = 16, high = 256, log = true }
    regularization = { type = "float", low = 1e-4, high = 1.0, log = true }
    shrink = { type = "float", low = 0, high = 100, step = 10 }
    similarity = { type = "choice", values = ["cosine", "bm25"] }

``int``/``float`` sample uniformly in ``[low, high]`` (log-uniformly with ``log``; on the
grid ``low, low + step, …`` with ``step``); ``choice`` (or a number type with ``values``)
picks one of ``values``. Nothing here imports Optuna: :func:`suggest` takes its trial.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from recli.errors import ConfigError

TYPES = ("int", "float", "choice")


@dataclass(frozen=True)
class Dim:
    """One searched parameter: ``kind`` is int, float or choice (``values`` set)."""

    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    values: tuple[Any, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The TOML-table form (what ``--show-space`` and study.json show)."""
        if self.values is not None:
            return {"type": self.kind, "values": list(self.values)}
        out: dict[str, Any] = {"type": self.kind, "low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out

    def grid(self) -> list[Any]:
        """Every value of this dimension on a grid: ``values``, or ``low, low + step, …, ≤ high``."""
        if self.values is not None:
            return list(self.values)
        n = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
        points = [self.low + i * self.step for i in range(n)]
        return [int(round(p)) for p in points] if self.kind == "int" else [round(p, 12) for p in points]


def field_name(cls: type, key: str) -> str:
    """The Config field ``key`` names (``lambda`` → ``lambda_``); refuses unknown names,
    listing the valid ones."""
    fields = [f.name for f in dataclasses.fields(cls.Config)]
    name = key.strip().replace("-", "_")
    if name not in fields and name + "_" in fields:
        name += "_"
    if name not in fields:
        raise ConfigError(f"unknown parameter {key!r} in the search space of model {cls.name!r}",
                          hint=f"valid parameters: {', '.join(f.rstrip('_') for f in fields)}")
    return name


def parse_dim(key: str, spec: Any) -> Dim:
    """A TOML table ``{type, low, high, log, step}`` or ``{type, values}`` → :class:`Dim`."""
    where = f"search space entry {key!r}"
    if not isinstance(spec, dict):
        raise ConfigError(f"{where} is not a table", hint=f'write {key} = {{ type = "float", low = 0.01, high = 1 }}')
    unknown = set(spec) - {"type", "low", "high", "log", "step", "values"}
    if unknown:
        raise ConfigError(f"{where} has unknown keys: {', '.join(sorted(unknown))}",
                          hint="keys are type, low, high, log, step and values")
    kind = spec.get("type", "choice" if "values" in spec else None)
    if kind not in TYPES:
        raise ConfigError(f"{where} has type {kind!r}", hint=f"use one of: {', '.join(TYPES)}")
    if "values" in spec:
        values = spec["values"]
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: values must be a non-empty list", hint='e.g. values = ["cosine", "bm25"]')
        return Dim(kind, values=tuple(values))
    if kind == "choice":
        raise ConfigError(f"{where}: a choice needs values", hint='e.g. values = ["cosine", "bm25"]')
    return _range_dim(where, kind, spec)


def _range_dim(where: str, kind: str, spec: dict[str, Any]) -> Dim:
    if "low" not in spec or "high" not in spec:
        raise ConfigError(f"{where} needs low and high", hint=f"e.g. {{ type = \"{kind}\", low = 1, high = 100 }}")
    numbers = {k: spec[k] for k in ("low", "high", "step") if k in spec}
    for k, v in numbers.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind == "int" and float(v) != int(v)):
            raise ConfigError(f"{where}: {k} = {v!r} is not a{'n integer' if kind == 'int' else ' number'}",
                              hint=f"give {k} as a {kind}")
    low, high, step, log = spec["low"], spec["high"], spec.get("step"), bool(spec.get("log", False))
    if low > high:
        raise ConfigError(f"{where}: low ({low}) is greater than high ({high})", hint="swap them, or fix the range")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log scale needs low > 0 (got {low})", hint="raise low above 0, or drop log")
    if step is not None and (step <= 0 or log):
        raise ConfigError(f"{where}: step must be > 0 and cannot be combined with log",
                          hint="give a positive step on a linear range, or drop step")
    cast = int if kind == "int" else float
    return Dim(kind, cast(low), cast(high), log, None if step is None else cast(step))


def parse_inline(text: str) -> tuple[str, Dim]:
    """``name=int:16:256[:log|:step=S]``, ``name=float:1e-4:1:log``, ``name=choice:a,b`` → ``(name, Dim)``."""
    key, sep, rest = text.partition("=")
    parts = rest.strip().split(":")
    hint = "write --space-param factors=int:16:256:log, reg=float:0:1:step=0.1 or sim=choice:cosine,bm25"
    if not sep or not key.strip() or parts[0] not in TYPES:
        raise ConfigError(f"--space-param {text!r} is not name=type:…", hint=hint)
    if parts[0] == "choice":
        if len(parts) != 2 or not parts[1]:
            raise ConfigError(f"--space-param {text!r}: a choice is choice:a,b,c", hint=hint)
        return key.strip(), Dim("choice", values=tuple(_scalar(v) for v in parts[1].split(",")))
    if len(parts) not in (3, 4):
        raise ConfigError(f"--space-param {text!r} needs type:low:high", hint=hint)
    spec: dict[str, Any] = {"type": parts[0], "low": _scalar(parts[1]), "high": _scalar(parts[2])}
    if len(parts) == 4:
        flag, _, value = parts[3].partition("=")
        if flag == "log" and not value:
            spec["log"] = True
        elif flag == "step" and value:
            spec["step"] = _scalar(value)
        else:
            raise ConfigError(f"--space-param {text!r}: the last part must be log or step=S", hint=hint)
    return key.strip(), parse_dim(key.strip(), spec)


def _scalar(text: str) -> Any:
    """``"16"`` → 16, ``"1e-4"`` → 0.0001, ``"true"`` → True, anything else stays a string."""
    text = text.strip()
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def load_space_file(path: str) -> dict[str, Any]:
    """Read a ``--space`` TOML file; a syntax error names its line."""
    from pathlib import Path

    from recli.config import tomllib

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"space file {path!r} does not exist", hint="check the path given to --space")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"space file {path!r} is not valid TOML: {exc}",
                          hint='each line is name = { type = "int", low = 1, high = 10 }') from None
    except UnicodeDecodeError:
        raise ConfigError(f"space file {path!r} is not UTF-8 text", hint="save it as UTF-8 TOML") from None


def build_space(cls: type, base: dict[str, Any], file_space: dict[str, Any] | None = None,
                inline: list[str] | None = None) -> dict[str, Dim]:
    """The space to search: ``--space`` (else the model's default ``search_space``), then
    ``--space-param`` entries on top. Every dimension is checked against the Config: its
    name, and its bounds or values built into a config over ``base`` (the fixed values)."""
    raw = file_space if file_space is not None else dict(getattr(cls, "search_space", {}))
    space = {field_name(cls, k): parse_dim(k, v) for k, v in raw.items()}
    for text in inline or []:
        key, dim = parse_inline(text)
        space[field_name(cls, key)] = dim
    if not space:
        raise ConfigError(f"model {cls.name!r} has nothing to search", hint="give --space FILE or --space-param")
    for name, dim in space.items():
        for value in dim.values if dim.values is not None else (dim.low, dim.high):
            _check_value(cls, base, name, value)
    return space


def _check_value(cls: type, base: dict[str, Any], name: str, value: Any) -> None:
    from recli.models.base import build_config

    try:
        build_config(cls.Config, {**base, name: value}, cls.name)
    except ConfigError as exc:
        raise ConfigError(f"search space of {name.rstrip('_')}: {exc.message}",
                          hint=f"keep the space inside the parameter's range (recli train --model {cls.name} "
                               "--show-params)") from None


def grid_of(space: dict[str, Dim]) -> dict[str, list[Any]]:
    """``{name: every grid value}``; a range without ``step`` or ``values`` is refused."""
    missing = [n for n, d in space.items() if d.values is None and d.step is None]
    if missing:
        raise ConfigError(f"--sampler grid needs values or a step for every parameter; missing for: "
                          f"{', '.join(n.rstrip('_') for n in missing)}",
                          hint="add step = … (or values = […]) to those entries in --space, e.g. "
                               "--space-param factors=int:16:128:step=16")
    return {name: dim.grid() for name, dim in space.items()}


def grid_size(grid: dict[str, list[Any]]) -> int:
    return math.prod(len(v) for v in grid.values())


def suggest(trial: Any, space: dict[str, Dim], grid: bool = False) -> dict[str, Any]:
    """One value per dimension from an Optuna ``trial``; with ``grid`` every dimension is
    the categorical of its grid values (what Optuna's GridSampler enumerates)."""
    out: dict[str, Any] = {}
    for name, d in space.items():
        if grid:
            out[name] = trial.suggest_categorical(name, d.grid())
        elif d.values is not None:
            out[name] = trial.suggest_categorical(name, list(d.values))
        elif d.kind == "int":
            out[name] = trial.suggest_int(name, int(d.low), int(d.high), step=int(d.step or 1), log=d.log)
        else:
            out[name] = trial.suggest_float(name, d.low, d.high, step=d.step, log=d.log)
    return out


def space_to_dict(space: dict[str, Dim]) -> dict[str, dict[str, Any]]:
    return {name: dim.to_dict() for name, dim in space.items()}
