"""Configuration precedence: flag > ``RECLI_*`` environment variable > TOML config > default.

Click resolves an option from the command line first, then its environment variable,
then the context's ``default_map``, then the declared default. recli uses exactly that
chain: every command option also reads ``RECLI_<COMMAND>_<OPTION>`` (e.g.
``RECLI_PREP_SEED=7``), and ``recli --config recli.toml <command>`` (or ``RECLI_CONFIG``)
loads a TOML file whose ``[command]`` tables become the default map::

    [prep]
    seed = 7
    min_user_interactions = 5
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from recli.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

ENV_PREFIX = "RECLI"


def load_config_file(path: str) -> dict[str, Any]:
    """Parse a TOML (or JSON, by extension) config file into a dict."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"config file {path!r} does not exist", hint="check the path given to --config / RECLI_CONFIG")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot parse config file {path!r}: {exc}", hint="fix the TOML syntax (tables like [prep], key = value)") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path!r} must hold a table of settings", hint="use [command] tables with key = value lines")
    return data


def to_default_map(data: dict[str, Any]) -> dict[str, Any]:
    """Turn ``[prep] min-user-interactions = 5`` into click's ``{"prep": {"min_user_interactions": 5}}``."""
    out: dict[str, Any] = {}
    for section, values in data.items():
        if isinstance(values, dict):
            out[section] = {k.replace("-", "_"): v for k, v in values.items()}
    return out
