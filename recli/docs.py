"""Write the tables that are generated from the registries into the docs.

``python -m recli.docs`` rewrites, in place, every block between
``<!-- BEGIN GENERATED: NAME -->`` and ``<!-- END GENERATED: NAME -->`` in the files of
:data:`TARGETS` (paths relative to the repository root, the current directory unless
``--root`` says otherwise). ``--check`` writes nothing and exits 1 when a committed file
differs from what would be written, so CI catches a registry change without a docs change.

Blocks: ``models`` (one row per registered model: summary, devices, fold-in, explain and
the values it accepts),
``model-params`` (each model's parameters: type, default, range, help, from
:func:`recli.models.base.describe_params`), ``metrics`` (every metric of
:data:`recli.metrics.registry.METRICS`) and ``search-spaces`` (each model's default
``recli tune`` space, its ``search_space``). The output depends only on the registries, so it is
the same on every machine. Importing the registries loads no Numba kernels.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

TARGETS: dict[str, tuple[str, ...]] = {
    "README.md": ("models",),
    "docs/models.md": ("models", "model-params"),
    "docs/eval.md": ("metrics",),
    "docs/tune.md": ("search-spaces",),
}

_BLOCK = re.compile(r"(<!-- BEGIN GENERATED: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- END GENERATED: (?P=name) -->)",
                    re.DOTALL)
_INT64_MAX = 2**63 - 1


def _cell(value: Any) -> str:
    """A Markdown table cell: pipes escaped (GFM splits cells on them even in code spans)."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _devices(cls: type) -> tuple[str, ...]:
    # Models without a declaration run on the CPU only.
    return tuple(getattr(cls, "devices", ("cpu",)))


def accepted_values(cls: type) -> str:
    """The *values* cell: the model's value kind (:data:`recli.models.base.VALUE_KINDS`)
    and, where a parameter changes it, how."""
    note = getattr(cls, "accepts_note", "")
    return getattr(cls, "accepts", "real") + (f" ({note})" if note else "")


def models_table() -> str:
    """One row per registered model, in registration order."""
    from recli.models import registry

    rows = [[f"`{name}`", cls.summary, ", ".join(_devices(cls)), "yes" if cls.can_fold_in else "no",
             "yes" if cls.can_explain else "no", accepted_values(cls)] for name, cls in registry().items()]
    return _table(["model", "summary", "devices", "fold-in", "explain", "values"], rows)


def _number(x: Any) -> str:
    return "2⁶³−1" if x == _INT64_MAX else str(x)


def param_range(row: dict[str, Any]) -> str:
    """``[lo, hi]`` / ``(lo, hi]`` intervals, ``≥ lo``, ``> lo``, or the allowed choices."""
    if row["choices"]:
        return ", ".join(f"`{c}`" for c in row["choices"])
    lo, hi, open_lo = row["min"], row["max"], row["exclusive_min"]
    if lo is not None and hi is not None:
        return f"{'(' if open_lo else '['}{_number(lo)}, {_number(hi)}]"
    if lo is not None:
        return f"{'>' if open_lo else '≥'} {_number(lo)}"
    if hi is not None:
        return f"≤ {_number(hi)}"
    return "any"


def _default(value: Any) -> str:
    return '`""`' if value == "" else f"`{value}`"


def model_params_tables() -> str:
    """A heading and a parameter table per model."""
    from recli.models import registry
    from recli.models.base import describe_params

    parts = []
    for name, cls in registry().items():
        rows = [[f"`{r['name']}`", r["type"], _default(r["default"]), param_range(r), r["help"]]
                for r in describe_params(cls.Config)]
        parts.append(f"### `{name}`\n\n{cls.summary}.\n\n"
                     + _table(["parameter", "type", "default", "range", "help"], rows))
    return "\n".join(parts)


def metrics_table() -> str:
    """Every metric of the registry with its formula and edge cases."""
    from recli.metrics.registry import DEFAULT_METRICS, METRICS

    rows = [[f"`{m.name}`" + (" (default)" if m.name in DEFAULT_METRICS else ""), m.kind,
             "yes" if m.at_k else "no", ", ".join(f"`--{n}`" for n in m.needs) or "—",
             "higher" if m.higher_is_better else "lower", m.formula, m.edge_cases]
            for m in METRICS.values()]
    return _table(["metric", "kind", "at k", "needs", "better", "formula", "edge cases"], rows)


def search_spaces_table() -> str:
    """One row per searched parameter of each model's default ``recli tune`` space."""
    from recli.models import registry

    rows = []
    for name, cls in registry().items():
        for param, d in cls.search_space.items():
            values = d.get("values")
            scale = "log" if d.get("log") else (f"step {d['step']}" if "step" in d else ("—" if values else "linear"))
            where = ", ".join(f"`{v}`" for v in values) if values else f"[{d['low']}, {d['high']}]"
            rows.append([f"`{name}`", f"`{param}`", d.get("type", "choice"), where, scale])
    return _table(["model", "parameter", "type", "range or values", "scale"], rows)


def generated_blocks() -> dict[str, str]:
    """``{block name: Markdown}`` for every generated block."""
    return {"models": models_table(), "model-params": model_params_tables(), "metrics": metrics_table(),
            "search-spaces": search_spaces_table()}


def render(text: str, blocks: dict[str, str], wanted: tuple[str, ...], where: str = "") -> str:
    """``text`` with the body of each block in ``wanted`` replaced; a missing marker is an error."""
    found = {m.group("name") for m in _BLOCK.finditer(text)}
    missing = [name for name in wanted if name not in found]
    if missing:
        raise ValueError(f"{where}: no '<!-- BEGIN GENERATED: {missing[0]} -->' ... "
                         f"'<!-- END GENERATED: {missing[0]} -->' block")

    def replace(m: re.Match) -> str:
        name = m.group("name")
        body = blocks[name] if name in wanted else m.group("body")
        return m.group(1) + body + m.group(4)

    return _BLOCK.sub(replace, text)


def expected_files(root: Path) -> dict[Path, tuple[str, str]]:
    """``{path: (committed text, generated text)}`` for every target under ``root``."""
    blocks = generated_blocks()
    out = {}
    for rel, wanted in TARGETS.items():
        path = root / rel
        text = path.read_text(encoding="utf-8")
        out[path] = (text, render(text, blocks, wanted, rel))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recli.docs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when a committed file differs from the generated one")
    parser.add_argument("--root", default=".", help="repository root (default: the current directory)")
    args = parser.parse_args(argv)
    root = Path(args.root)
    try:
        files = expected_files(root)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        print("hint: run from the repository root or pass --root, and keep the marker comments", file=sys.stderr)
        return 2
    stale = [path for path, (old, new) in files.items() if old != new]
    for path in stale:
        if args.check:
            print(f"{path}: generated tables are out of date", file=sys.stderr)
        else:
            path.write_text(files[path][1], encoding="utf-8")
            print(f"updated {path}", file=sys.stderr)
    if args.check and stale:
        print("hint: run 'python -m recli.docs' and commit the result", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
