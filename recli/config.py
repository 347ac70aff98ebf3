"""Configuration precedence: flag > ``RECLI_*`` environment variable > TOML config > default.

Click resolves an option from the command line first, then its environment variable,
then the context's ``default_map``, then the declared default. recli uses exactly that
chain: every command option also reads ``RECLI_<COMMAND>_<OPTION>`` (e.g.
``RECLI_PREP_SEED=7``), and ``recli --config recli.toml <command>`` (or ``RECLI_CONFIG``)
loads a TOML file whose ``[command]`` tables become the default map::

    [prep]
    seed = 7
    min-user-interactions = 5      # or min_user_interactions

Both names derive from the option's public (long) name, never from the Python
parameter behind it: ``--format`` is ``RECLI_RECOMMEND_FORMAT`` and ``format =``.
Where the two differ, the parameter name (``RECLI_RECOMMEND_FMT``, ``fmt =``) still
works as a deprecated alias, with a warning. Unknown tables and keys are errors that
list the valid names.
"""

from __future__ import annotations

import json
import os
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
        data = json.loads(text) if p.suffix.lower() == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot parse config file {path!r}: {exc}",
                          hint="fix the TOML syntax (tables like [prep], key = value)") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path!r} must hold a table of settings", hint="use [command] tables with key = value lines")
    return data


def public_name(param: Any) -> str:
    """An option's public name: its first long flag without dashes (``--format`` ->
    ``format``), or the parameter name when it has none."""
    longs = [o for o in getattr(param, "opts", []) if o.startswith("--")]
    return longs[0][2:] if longs else str(param.name)


def _key(name: str) -> str:
    return name.replace("-", "_").lower()


def env_var(command: str, name: str) -> str:
    """``RECLI_<COMMAND>_<OPTION>``: ``env_var("recommend", "batch-size")`` is
    ``RECLI_RECOMMEND_BATCH_SIZE``."""
    return f"{ENV_PREFIX}_{command}_{name}".upper().replace("-", "_")


def configurable_options(cmd: Any) -> list[Any]:
    """The options of a click command that take a value from the environment or a config
    file (``--help`` and eager flags such as ``--version`` do not)."""
    return [p for p in cmd.params if getattr(p, "opts", None) and p.param_type_name == "option"
            and p.name not in ("help",) and not getattr(p, "is_eager", False)]


def name_environment(command: str, cmd: Any) -> None:
    """Give every option its ``RECLI_<COMMAND>_<OPTION>`` variable (from the public name),
    plus the parameter-named variable as a deprecated alias that warns when used."""
    from recli.console import log

    for p in configurable_options(cmd):
        new = env_var(command, public_name(p))
        old = env_var(command, p.name)
        p.envvar = new if old == new else [new, old]
        if old != new and os.environ.get(old) and not os.environ.get(new):
            log.warning(f"{old} is deprecated; use {new}")


def to_default_map(data: dict[str, Any], commands: dict[str, Any] | None = None) -> dict[str, Any]:
    """Turn ``[prep] min-user-interactions = 5`` into click's ``{"prep": {"min_user_interactions": 5}}``.

    ``commands`` (``{name: click command}``) checks each table and key: a key is an
    option's public name (dashes or underscores), or its parameter name (deprecated)."""
    out: dict[str, Any] = {}
    for section, values in data.items():
        if not isinstance(values, dict):
            raise ConfigError(f"config key {section!r} is outside a [command] table",
                              hint="put settings in tables named after commands, e.g. [prep] / seed = 7")
        if commands is None:
            out[section] = {_key(k): v for k, v in values.items()}
            continue
        if section not in commands:
            raise ConfigError(f"unknown table [{section}] in the config file",
                              hint=f"tables are named after commands: {', '.join(commands)}")
        out[section] = _section_defaults(section, values, commands[section])
    return out


def _section_defaults(section: str, values: dict[str, Any], cmd: Any) -> dict[str, Any]:
    from recli.console import log

    options = configurable_options(cmd)
    public = {_key(public_name(p)): p.name for p in options}
    # parameter names that differ from the public one (fmt for --format): deprecated aliases
    legacy = {p.name: public_name(p) for p in options if p.name not in public}
    out: dict[str, Any] = {}
    for key, value in values.items():
        k = _key(key)
        if k in public:
            out[public[k]] = value
        elif k in legacy:
            log.warning(f"config key {key!r} in [{section}] is deprecated; use {legacy[k]!r}")
            out[k] = value
        else:
            valid = ", ".join(sorted(public_name(p) for p in options))
            raise ConfigError(f"unknown key {key!r} in [{section}] of the config file", hint=f"valid keys: {valid}")
    return out
