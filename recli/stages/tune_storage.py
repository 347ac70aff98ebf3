"""Where a ``recli tune`` study lives, who may run it, and what counts as done.

Two storages:

journal (default)
    an Optuna journal file ``DIR/journal.log``. The folder is locked to one process
    (``DIR/.lock``, ``flock``), so on start every trial still RUNNING belongs to a dead
    process: it is marked FAIL and its parameters are queued again.
``sqlite:///path/study.db``
    a SQLite database shared by ``--workers`` and by other ``recli tune`` commands. Each
    running trial beats a heartbeat; one silent for longer than the grace period is marked
    FAIL by the next worker and retried (Optuna's ``RetryFailedTrialCallback``).

``--trials N`` counts finished trials: COMPLETE, PRUNED, and FAIL with a recorded error
(a trial that raised). A FAIL without an error is a killed trial, retried, not counted.
Workers take turns under ``study.db.lock`` to count and start a trial, so N is never
exceeded.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterator

from recli.errors import ConfigError

JOURNAL = "journal.log"
HEARTBEAT_S = 5
GRACE_S = 20


def require_optuna() -> None:
    """``recli tune`` needs the optional extra; say how to get it."""
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise ConfigError("recli tune needs Optuna, which is not installed",
                          hint="pip install 'recli[tune]' (optuna, matplotlib)") from None


def journal_path(out_dir: str) -> Path:
    return Path(out_dir) / JOURNAL


def check_storage_url(url: str | None) -> Path | None:
    """The database file of a ``sqlite:///`` URL (``None`` for the journal); refuses any
    other URL, and a database whose folder does not exist."""
    if url is None:
        return None
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ConfigError(f"cannot open storage {url!r}: only sqlite:///PATH databases are supported",
                          hint="use --storage sqlite:///study.db (or sqlite:////abs/path/study.db), or leave it out "
                               "for a journal file in --out")
    path = Path(url[len(prefix):])
    if not path.parent.is_dir():
        raise ConfigError(f"cannot open storage {url!r}: folder {str(path.parent)!r} does not exist",
                          hint=f"create it first (mkdir -p {path.parent})")
    if path.exists() and not path.is_file():
        raise ConfigError(f"cannot open storage {url!r}: {str(path)!r} is not a file", hint="give a database file path")
    return path


def open_storage(url: str | None, out_dir: str) -> Any:
    """The Optuna storage: a journal file in ``out_dir``, or the SQLite database ``url``
    with heartbeats (a storage that cannot be opened is a :class:`ConfigError`)."""
    import optuna

    quiet_optuna()
    if url is None:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(str(journal_path(out_dir))))
    try:
        storage = optuna.storages.RDBStorage(
            url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3))
        _fast_sqlite(storage.engine)
        from recli.stages.tune_cache import trial_snapshots

        return trial_snapshots(storage)
    except Exception as exc:  # sqlalchemy reports a bad file in many exception types
        raise ConfigError(f"cannot open storage {url!r}: {str(exc).splitlines()[0]}",
                          hint="give a writable SQLite database file, e.g. --storage sqlite:///study.db") from None


def _fast_sqlite(engine: Any) -> None:
    """Write-ahead logging with ``synchronous=NORMAL`` on every connection: a commit no
    longer waits for the disk (a trial makes about a dozen), and a killed process still
    loses nothing (only a power cut can drop the last commits). Connections opened while
    the tables were created are closed so that every later one gets the pragmas."""
    from sqlalchemy import event

    def pragmas(conn: Any, _record: Any) -> None:
        cursor = conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")  # workers wait for each other's writes
        cursor.close()

    event.listen(engine, "connect", pragmas)
    engine.dispose()


def quiet_optuna() -> None:
    """recli reports trials itself; Optuna's log lines and its experimental-feature
    warnings (heartbeats, stale-trial handling, matplotlib charts) would only be noise."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


@contextlib.contextmanager
def folder_lock(out_dir: str) -> Iterator[None]:
    """Hold ``DIR/.lock`` for the whole run: a journal study runs in one process at a time."""
    import fcntl

    with open(Path(out_dir) / ".lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"the study in {out_dir!r} is being run by another recli tune process",
                              hint="wait for it to finish, or use --storage sqlite:///study.db with --workers "
                                   "to run processes side by side") from None
        yield


class TurnLock:
    """An exclusive ``flock`` taken before counting trials and released once the new
    trial is RUNNING (so two workers never both start trial N+1); a no-op without a path."""

    def __init__(self, path: Path | None):
        self.path = path
        self.fh: Any = None

    def acquire(self) -> None:
        if self.path is not None and self.fh is None:
            import fcntl

            self.fh = open(str(self.path) + ".lock", "a+")  # noqa: SIM115  (held until release())
            fcntl.flock(self.fh, fcntl.LOCK_EX)

    def release(self) -> None:
        if self.fh is not None:
            self.fh.close()  # closing the file drops the flock
            self.fh = None


def counts_as_finished(trial: Any) -> bool:
    """COMPLETE, PRUNED, or FAIL with a recorded error (see the module docstring)."""
    from optuna.trial import TrialState

    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
        trial.state == TrialState.FAIL and "error" in trial.user_attrs)


def reclaim_dead_trials(study: Any) -> int:
    """Journal studies: mark every RUNNING trial FAIL (its process is dead: we hold the
    folder lock) and queue its parameters again. Returns how many were reclaimed."""
    from optuna.trial import TrialState

    dead = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in dead:
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)
    return len(dead)


def check_resume(study_attrs: dict[str, Any], identity: dict[str, Any]) -> None:
    """Refuse to continue a study whose model, space, metrics or sampler differ from this run's."""
    old = study_attrs.get("recli")
    if old is None:
        raise ConfigError("the storage holds a study recli tune did not create",
                          hint="choose another --study-name, --storage or --out")
    diffs = []
    for key, value in identity.items():
        before = old.get(key)
        if before == value:
            continue
        if isinstance(before, dict) and isinstance(value, dict):  # name the entries that differ
            diffs += [f"{key} of {name.rstrip('_')}: {_short(before.get(name))} in the study, {_short(value.get(name))} now"
                      for name in sorted(set(before) | set(value)) if before.get(name) != value.get(name)]
        else:
            diffs.append(f"{key}: {_short(before)} in the study, {_short(value)} now")
    if diffs:
        raise ConfigError(f"cannot resume the study: it was run with a different setup ({'; '.join(diffs)})",
                          hint="rerun with the study's settings, or start a new study with another --out "
                               "(or --study-name)")


def _short(value: Any) -> str:
    import json

    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


def worker_threads(threads: int, workers: int) -> int:
    """Threads per worker: ``--threads`` (0 = every core) shared evenly, at least one."""
    total = threads or os.cpu_count() or 1
    return max(1, total // workers)
