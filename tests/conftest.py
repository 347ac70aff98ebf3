"""Shared fixtures: CLI runners (in-process and real subprocess) and data paths."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

REPO_ROOT = Path(__file__).resolve().parent.parent

# Tests never write into the user's real home or cache (checksum stamps, Numba's cache):
# a throw-away home for the session, set before recli (and Numba) are imported. Numba's
# compiled kernels go to the repository's own cache unless NUMBA_CACHE_DIR is set, so
# repeated runs do not pay the JIT compile again: one folder per state of the kernel
# sources, as recli's own per-user cache (recli.kernel_sources_stamp).
_HOME = tempfile.mkdtemp(prefix="recli-test-home-")
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
os.environ["HOME"] = _HOME
os.environ["XDG_CACHE_HOME"] = os.path.join(_HOME, ".cache")
if not os.environ.get("NUMBA_CACHE_DIR"):
    from recli import kernel_sources_stamp  # noqa: E402  (recli imports no Numba)

    os.environ["NUMBA_CACHE_DIR"] = str(REPO_ROOT / ".numba-cache" / kernel_sources_stamp())
# The custom CUDA kernels (recli.kernels.cuda, tests marked `cudasim`) run on Numba's CUDA
# simulator, which must be chosen before Numba is imported; NUMBA_ENABLE_CUDASIM=0 runs
# them on a real GPU instead.
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
SAMPLE_DATA = REPO_ROOT / "sample_data"
# MovieLens 100K lives beside the checkout (its licence forbids copying it in).
ML100K = Path(os.environ.get("RECLI_ML100K", REPO_ROOT.parent / "shared" / "data" / "ml-100k"))


@pytest.fixture
def ml100k() -> Path:
    path = ML100K / "u.data"
    if not path.exists():
        pytest.skip(f"MovieLens 100K not found at {path} (expected ../shared/data/ml-100k beside the repo)")
    return path


@pytest.fixture
def cli():
    """Invoke the CLI in-process; returns click's Result with separate stdout/stderr."""
    from recli import console
    from recli.cli import app

    runner = CliRunner()

    def invoke(args: list[str], input: str | bytes | None = None, env: dict | None = None):
        console.reset()
        return runner.invoke(app, [str(a) for a in args], input=input, env=env, catch_exceptions=False)

    return invoke


def run_recli(args: list[str], input: bytes | str | None = None, env: dict | None = None,
              cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``python -m recli`` as a real process (real pipes, real exit codes)."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    if env:
        full_env.update(env)
    if isinstance(input, str):
        input = input.encode()
    return subprocess.run([sys.executable, "-m", "recli", *[str(a) for a in args]], input=input,
                          capture_output=True, env=full_env, cwd=cwd, timeout=timeout)


@pytest.fixture
def recli_proc():
    return run_recli


# -- GPU tests -------------------------------------------------------------------------
# ``gpu_sim``: the GPU code on the NumPy stand-in ``cupy`` (tests/fake_cupy) and Numba's CUDA
# simulator; runs everywhere, CI included. ``gpu``: needs a real CUDA GPU with CuPy, and
# skips with a message without one.
_REAL_GPU: list[str] = []
FAKE_CUPY = Path(__file__).parent / "fake_cupy"


def forget_cupy() -> None:
    """Drop every imported ``cupy``/``cupyx`` module, so the next import finds it again."""
    for name in [m for m in sys.modules if m.split(".")[0] in ("cupy", "cupyx")]:
        del sys.modules[name]


@pytest.fixture
def fake_cupy(monkeypatch):
    """``import cupy`` gives the NumPy-backed stand-in (tests/fake_cupy), reporting one device."""
    forget_cupy()
    monkeypatch.syspath_prepend(str(FAKE_CUPY))
    yield
    forget_cupy()


def _real_gpu_missing() -> str:
    """Why no real GPU is usable ("" when one is): the stand-in ``cupy`` does not count."""
    if not _REAL_GPU:
        import importlib.util

        try:
            spec = importlib.util.find_spec("cupy")
        except ValueError:  # a test put a placeholder in sys.modules
            spec = None
        fake = str(FAKE_CUPY)
        if spec is None or str(spec.origin or "").startswith(fake):
            _REAL_GPU.append("CuPy is not installed")
        else:
            try:
                import cupy

                _REAL_GPU.append("" if cupy.cuda.runtime.getDeviceCount() > 0 else "no CUDA device")
            except Exception as exc:  # a CUDA driver error is still "no GPU" for the test run
                _REAL_GPU.append(f"CuPy cannot use a GPU ({type(exc).__name__})")
    return _REAL_GPU[0]


def pytest_runtest_setup(item):
    if item.get_closest_marker("gpu") is not None and _real_gpu_missing():
        pytest.skip(f"needs a real CUDA GPU: {_real_gpu_missing()}")


@pytest.fixture
def train_csv(tmp_path):
    """The contract tests' block matrix as a ``user,item`` CSV (ids ``u000``, ``i000``)."""
    from tests import contracts as C

    matrix, _, _ = C.block_matrix()
    coo = matrix.tocoo()
    path = tmp_path / "train.csv"
    path.write_text("user,item\n" + "".join(f"u{u:03d},i{i:03d}\n" for u, i in zip(coo.row, coo.col)))
    return path
