"""Memory sizes, and the device memory plan of a GPU run.

Before a model trains on the GPU, its :class:`MemoryEstimate` (``Model.gpu_memory``) says
how many device bytes stay allocated for the whole run (``resident``: data, factors, the
result) and how many one batch costs per unit (``per_unit`` bytes per non-zero, row, …;
at least ``min_units`` units: a batch holds one whole row). :func:`plan_device_memory`
then picks the batch size:

    budget     = --max-gpu-memory, or the free device memory − max(512 MiB, 10% of the total)
    batch      = min(budget − resident, max(MAX_BATCH_BYTES, smallest batch))
    refused if   resident + per_unit · min_units + per_row > budget   (the error gives the estimate)

and hands ``batch`` to the backend's kernels (``kernels.batch_bytes``), which size their
row batches and blocks by it. The margin leaves room for the CUDA context, CuPy's memory
pool rounding and the cuBLAS/cuSOLVER workspaces, which the estimate does not count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from recli.errors import ConfigError

_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2, "g": 1024**3, "gb": 1024**3,
          "t": 1024**4, "tb": 1024**4, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}
MIN_MARGIN = 512 << 20
# Larger batches gain nothing on a GPU (it is saturated long before) and delay the first result.
MAX_BATCH_BYTES = 4 << 30


def parse_bytes(text: str, option: str) -> int:
    """``"2GB"`` → bytes (binary units: 1 GB = 1024³ bytes); ``option`` names the setting
    in the error."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise ConfigError(f"{option}={text!r} is not a size", hint="write it like 512MB, 2GB or 1.5G")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TB"


@dataclass
class MemoryEstimate:
    """Device bytes of a run: ``parts`` (name → bytes) stay allocated throughout; a batch
    costs ``per_unit`` bytes per ``unit`` and holds at least ``min_units`` of them, plus
    ``per_row`` for its one row at least (a model that batches by non-zeros)."""

    parts: dict[str, int] = field(default_factory=dict)
    per_unit: int = 0
    min_units: int = 0
    unit: str = "row"
    per_row: int = 0

    @property
    def resident(self) -> int:
        return sum(self.parts.values())

    @property
    def smallest(self) -> int:
        """Bytes of the whole run with the smallest batch."""
        return self.resident + self.smallest_batch

    @property
    def smallest_batch(self) -> int:
        return self.per_unit * self.min_units + self.per_row


def device_budget(xp: Any, max_gpu_memory: str = "") -> tuple[int, str]:
    """``(bytes, what they are)``: ``--max-gpu-memory`` when given, else the free device
    memory less the margin (``max(512 MiB, 10% of the total)``)."""
    if max_gpu_memory:
        limit = parse_bytes(max_gpu_memory, "--max-gpu-memory")
        return limit, f"--max-gpu-memory={max_gpu_memory} ({format_bytes(limit)})"
    free, total = (int(x) for x in xp.cuda.runtime.memGetInfo())
    margin = max(MIN_MARGIN, total // 10)
    return free - margin, (f"the free GPU memory less a {format_bytes(margin)} margin "
                           f"({format_bytes(max(free - margin, 0))})")


def plan_device_memory(backend: Any, estimate: MemoryEstimate, model: str, max_gpu_memory: str = "") -> int | None:
    """Set ``backend.kernels.batch_bytes`` from the plan and return it; ``None`` (nothing
    planned) on a backend without device memory (the CPU, or NumPy standing in for CuPy
    in tests). Raises :class:`ConfigError` with the estimate when even the smallest batch
    does not fit."""
    if backend.device != "gpu" or not hasattr(getattr(backend.xp, "cuda", None), "runtime"):
        return None
    budget, what = device_budget(backend.xp, max_gpu_memory)
    if estimate.smallest > budget:
        parts = " + ".join(f"{name} {format_bytes(b)}" for name, b in estimate.parts.items())
        batch = estimate.smallest_batch
        raise ConfigError(
            f"{model} on the GPU needs about {format_bytes(estimate.smallest)} of device memory "
            f"({parts} + the smallest batch {format_bytes(batch)}), more than {what}",
            hint="raise --max-gpu-memory, lower --param factors or the catalogue size, or use --device cpu")
    batch_bytes = int(min(budget - estimate.resident, max(MAX_BATCH_BYTES, estimate.smallest_batch)))
    backend.kernels.batch_bytes = batch_bytes
    return batch_bytes
