"""The machine a bench runs on: load, environment, and the roofs of ``--machine``.

**Load guard.** The machine is *busy* when other work keeps more than half the cores
occupied. The load average cannot tell: it also counts the benchmark itself (two threads
on two cores read as a load of 2, and so do the data generation and ``--machine`` before
the first pair). So each pair (recli and its peers for one repeat of one configuration) is
judged by the CPU seconds other processes used during it (the whole machine's busy CPU
time minus this process's and its children's) divided by its wall time; a pair above half
the cores marks its rows ``noisy``. ``--wait-quiet`` polls the same share over 5-second
windows before a pair starts. The load averages at each pair's start and end are recorded
too.

**Roofs.** ``--machine`` measures, at each thread count, single-precision GEMM
(``2·n³`` flops of an n×n ``float32`` matmul, best of 3) and memory copy bandwidth
(``np.copyto`` of a 256 MiB array: 2 × 256 MiB moved, best of 3). Rows then show the
flops and bytes per second a kernel achieved and their ratio to those roofs, from the
counts in :func:`work_of` (a floor: each byte counted once).
"""

from __future__ import annotations

import os
import platform
import resource
import time
from dataclasses import dataclass
from typing import Any

from recli.console import log


def load_average() -> float:
    """The 1-minute load average (a function, so tests can fake a busy machine)."""
    return os.getloadavg()[0]


def cores() -> int:
    from recli.backend import resolve_threads

    return resolve_threads(0)


def busy_cpu_seconds() -> float:
    """CPU seconds every process on the machine has used (user + system)."""
    try:
        import psutil

        t = psutil.cpu_times()
        return float(t.user + t.system + getattr(t, "nice", 0.0))
    except ImportError:
        with open("/proc/stat") as fh:
            fields = [float(x) for x in fh.readline().split()[1:4]]
        return sum(fields) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (the bench's own work)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        total += r.ru_utime + r.ru_stime
    return total


# A pair whose speed probe ran below this share of the run's fastest probe is noisy.
PROBE_SLOW = 0.85
PROBE_SECONDS = 0.2


def speed_probe(threads: int = 0, seconds: float = PROBE_SECONDS) -> float:
    """GFLOP/s of ``float32`` 256×256 matrix products (``2·256³`` flops each) repeated for
    ``seconds`` with BLAS on ``threads`` threads (0: every core): what the cores deliver
    right now.

    The load average and the CPU time of other processes see only this machine. On a
    shared host (a virtual machine whose cores' hyper-thread siblings or memory another
    tenant uses) the same code can run at half speed while both read zero, and the two
    sides of a pair do not slow down alike, so a pair is also judged by this probe."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    n = 256
    a = np.full((n, n), 0.5, np.float32)
    with threadpool_limits(limits=max(1, threads or cores()), user_api="blas"):
        a @ a  # BLAS start-up
        done, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            a @ a
            done += 1
    return 2.0 * n**3 * done / max(elapsed, 1e-9) / 1e9


@dataclass
class PairLoad:
    """The load around one pair of runs; ``speed``: the slower of the speed probes at its
    start and end (GFLOP/s, :func:`speed_probe`)."""

    load_start: float
    load_end: float = 0.0
    other_cpu_s: float = 0.0
    noisy: bool = False
    speed: float = 0.0


class LoadGuard:
    """Records each pair's load and CPU speed; with ``wait_quiet`` seconds, waits for a
    quiet machine (polling every 5 s) before a pair starts. Warns once when the machine
    is busy, and once when the CPU ran slow (:meth:`slow`)."""

    def __init__(self, wait_quiet: float = 0.0, sleep=time.sleep, threads: int = 0, probe=None):
        self.limit = cores() / 2.0
        self.wait_quiet = wait_quiet
        self.sleep = sleep
        self.threads = threads
        self.probe = probe or speed_probe
        self.fastest = 0.0  # the fastest probe of the run
        self.warned = False
        self.warned_slow = False
        self.last = load_average()

    def busy(self, load: float) -> bool:
        return load > self.limit

    def start(self) -> tuple[PairLoad, tuple[float, float, float]]:
        waited = 0.0
        while waited < self.wait_quiet:
            step = min(5.0, self.wait_quiet - waited)
            marks = (busy_cpu_seconds(), own_cpu_seconds())
            self.sleep(step)
            waited += step
            if not self.busy(self._others(marks) / step):
                break
        speed = self._probe()
        return (PairLoad(load_start=load_average(), speed=speed),
                (busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter()))

    def end(self, pair: PairLoad, marks: tuple[float, float, float]) -> PairLoad:
        pair.load_end = self.last = load_average()
        pair.speed = min(pair.speed, self._probe())
        pair.other_cpu_s = self._others(marks)
        share = pair.other_cpu_s / max(time.perf_counter() - marks[2], 1e-9)
        if self.busy(share):  # other processes' mean core use during the pair
            pair.noisy = True
            self._warn(share)
        return pair

    def _probe(self) -> float:
        speed = self.probe(self.threads)
        self.fastest = max(self.fastest, speed)
        return speed

    def slow(self, speed: float | None) -> bool:
        """Whether a pair's probe ``speed`` fell below ``PROBE_SLOW`` of the run's fastest
        (judged once the run is over, so early pairs meet the same standard); warns once."""
        if speed is None or speed >= PROBE_SLOW * self.fastest:
            return False
        if not self.warned_slow:
            self.warned_slow = True
            log.warning(f"the CPU ran slow: a speed probe reached {speed:.0f} GFLOP/s against {self.fastest:.0f} at "
                        "best in this run, with no other process to blame here (another tenant of a shared host?): "
                        "those rows are marked noisy; run again when the probe is steady")
        return True

    @staticmethod
    def _others(marks: tuple[float, ...]) -> float:
        """CPU seconds other processes used since ``marks`` (machine total minus ours)."""
        return max(0.0, busy_cpu_seconds() - marks[0] - (own_cpu_seconds() - marks[1]))

    def _warn(self, share: float) -> None:
        if not self.warned:
            self.warned = True
            log.warning(f"the machine is busy (other processes kept {share:.1f} of {cores()} cores busy): rows "
                        "measured now are marked noisy; --wait-quiet SECONDS waits for a quiet machine first")


def environment(threads: list[int], peers: dict[str, str | None], roofs: dict[int, dict] | None) -> dict[str, Any]:
    """CPU model, cores, memory, versions, thread settings and load at the start."""
    from importlib.metadata import version

    import numba
    import numpy as np

    import recli

    versions = {"recli": recli.__version__, "python": platform.python_version(), "numpy": np.__version__,
                "numba": numba.__version__, "scipy": version("scipy"), "polars": version("polars")}
    versions.update({name: v or "not installed" for name, v in peers.items()})
    env_threads = {k: os.environ.get(k, "") for k in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                      "MKL_NUM_THREADS") if os.environ.get(k)}
    return {"cpu": cpu_model(), "cores": cores(), "memory_gib": round(_memory() / 2**30, 1),
            "platform": platform.platform(), "versions": versions, "thread_env": env_threads,
            "bench_threads": threads, "load_start": round(load_average(), 2), "roofs": roofs or {}}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def roofs(threads: int, gemm_n: int = 2048, copy_mib: int = 256) -> dict[str, float]:
    """GEMM GFLOP/s and copy GB/s at ``threads`` BLAS threads (best of 3 each)."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.random((gemm_n, gemm_n), dtype=np.float32)
    b = rng.random((gemm_n, gemm_n), dtype=np.float32)
    src = np.ones(copy_mib * 2**20 // 4, dtype=np.float32)
    dst = np.empty_like(src)
    with threadpool_limits(limits=max(1, threads or cores()), user_api="blas"):
        a @ b  # BLAS start-up
        gemm = min(_timed(lambda: a @ b) for _ in range(3))
    np.copyto(dst, src)
    copy = min(_timed(lambda: np.copyto(dst, src)) for _ in range(3))
    return {"gemm_gflops": 2.0 * gemm_n**3 / gemm / 1e9, "copy_gbps": 2.0 * src.nbytes / copy / 1e9}


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def work_of(model: str, measure: str, sizes: dict[str, int], config: dict[str, Any]) -> tuple[float, float] | None:
    """(flops, bytes) of one unit of a measure (an ALS iteration, a whole all-users
    recommend), or ``None`` where no count is defined. U users, I items, n non-zeros,
    f factors, s CG steps:

    * ALS-CG half-sweep over R rows against O other rows (users: R = U, O = I; items the
      reverse): flops ``2·O·f²`` (the Gram matrix) + ``(s + 1)·(2·R·f² + 4·n·f)`` (each CG
      step and the initial residual: the Gram product per row, two dot/axpy per
      non-zero); bytes ``12·n + 8·(R + 1)`` (CSR) + ``4·n·f`` (the other side's factor
      rows it touches) + ``8·R·f`` (own rows read and written) + ``4·f²`` (Gram).
      An iteration is both half-sweeps.
    * all-users recommend: flops ``2·U·I·f`` (the score GEMM); bytes ``8·U·I`` (scores
      written, then read by the top-k) + ``4·(U + I)·f`` (factors) + ``4·n`` (seen items).
    """
    f = config.get("factors")
    if f is None:
        return None
    n_users, n_items, n = sizes["users"], sizes["items"], sizes["nnz"]
    if model == "als" and measure == "fit" and config.get("solver", "cg") == "cg":
        s = config.get("cg_steps", 3)
        flops = bytes_ = 0.0
        for rows, other in ((n_users, n_items), (n_items, n_users)):
            flops += 2.0 * other * f * f + (s + 1) * (2.0 * rows * f * f + 4.0 * n * f)
            bytes_ += 12.0 * n + 8.0 * (rows + 1) + 4.0 * n * f + 8.0 * rows * f + 4.0 * f * f
        return flops, bytes_
    if measure == "recommend_all":
        return 2.0 * n_users * n_items * f, 8.0 * n_users * n_items + 4.0 * (n_users + n_items) * f + 4.0 * n
    return None
