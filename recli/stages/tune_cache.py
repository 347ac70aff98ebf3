"""Fewer SQLite transactions per ``recli tune`` trial.

Optuna's RDB storage opens a session and commits for every read and every write: a TPE
trial asks for the study's trials four or five times (waiting trials, search space,
sampling, counting), reads its own trial back twice, and writes each parameter, each
sampler attribute and each user attribute in a transaction of its own; about twenty
transactions of a millisecond or more each. :func:`trial_snapshots` puts the storage
behind a cache that keeps Optuna's semantics where they matter and drops the rest:

reads
    the study's trials are read from the database at most once between two
    :func:`refresh` calls (the run loop makes one before each trial); every other
    ``get_all_trials`` answers from that snapshot. A trial cannot see another worker's
    trial that finished during it; the next trial does, as with any parallel sampler.
    When a light query (ids and states) shows that the only change since the last read is
    this process's own finished trial, the snapshot takes that trial as it was written
    instead of reading it back.
own running trial
    the trial this process created is answered from memory (``get_trial``), and its
    parameter, sampler and user attribute writes are collected and written in one
    transaction at the next :func:`flush` (the objective makes one as soon as the
    parameters are sampled, so a killed trial is retried with its parameters), at an
    intermediate value (the pruners of other workers read those), and in the transaction
    that sets its final state. The first write of each parameter name goes straight
    through, so the storage still checks it against the distributions already in the study.
heartbeats
    the heartbeat thread's first beat of an own trial joins the transaction of its
    parameters; later beats are written as they come. A RUNNING trial that never beat
    (its process died before its first write) counts as stale once it is older than the
    grace period.
stale trials
    a trial whose heartbeat is older than the grace period (several heartbeat intervals)
    is looked for at most once per heartbeat interval, not before every trial;
    :func:`expire_stale_check` forces the next look (the run loop makes one before it
    decides that the study is full).

Falls back to Optuna's own cache when its internals differ from what this relies on
(another Optuna release).
"""

from __future__ import annotations

import copy
import json
import math
import threading
import time
from datetime import timedelta
from typing import Any


def trial_snapshots(rdb: Any) -> Any:
    """``rdb`` (an ``optuna.storages.RDBStorage``) behind the cache of the module docstring."""
    from optuna.storages._cached_storage import _CachedStorage
    from optuna.storages._rdb import models
    from sqlalchemy.orm import scoped_session

    needed = ("_read_trials_from_remote_storage", "_get_stale_trial_ids")
    if (not all(hasattr(_CachedStorage, n) for n in needed) or not hasattr(rdb, "check_trial_is_updatable")
            or not hasattr(models.TrialModel, "_datetime_start_utc")
            or not isinstance(getattr(rdb, "scoped_session", None), scoped_session) or rdb.engine.name != "sqlite"):
        return _CachedStorage(rdb)
    return _snapshot_class(_CachedStorage)(rdb)


def refresh(storage: Any) -> None:
    """Make the next trial read of ``storage`` go to the database."""
    fresh = getattr(storage, "fresh", None)
    if fresh is not None:
        fresh.clear()


def expire_stale_check(storage: Any) -> None:
    """Make the next stale-trial check of ``storage`` go to the database."""
    checked = getattr(storage, "stale_checked", None)
    if checked is not None:
        checked.clear()


def flush(storage: Any) -> None:
    """Write what ``storage`` holds of its running trials (a no-op for other storages)."""
    write = getattr(storage, "flush", None)
    if write is not None:
        write()


def _snapshot_class(base: type) -> type:
    from optuna.distributions import check_distribution_compatibility, distribution_to_json
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session
    from optuna.trial import TrialState
    from sqlalchemy import func, or_, select
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    class OneReadPerTrial(base):  # type: ignore[misc, valid-type]
        def __init__(self, backend: Any):
            super().__init__(backend)
            self.fresh: set[int] = set()
            self.own: dict[int, Any] = {}  # trial id -> the FrozenTrial as this process wrote it
            self.pending: dict[int, list[tuple]] = {}  # trial id -> writes not yet in the database
            self.unflushed: set[int] = set()  # own trials with nothing written since their creation
            self.wlock = threading.Lock()  # pending writes come from the heartbeat thread too
            self.stale_checked: dict[int, float] = {}  # study id -> when its stale trials were last looked for
            self.done: dict[int, Any] = {}  # trial id -> an own trial finished since the last read, as written

        def _read_trials_from_remote_storage(self, study_id: int) -> None:
            if study_id in self.fresh:
                return
            if not self._only_own_changes(study_id):
                super()._read_trials_from_remote_storage(study_id)
            self.fresh.add(study_id)
            self.done.clear()

        def _only_own_changes(self, study_id: int) -> bool:
            """Whether the trials a full read would fetch (newer than the last finished one
            in the cache, or unfinished in it) are exactly this process's trials finished
            since: one light query of ids and states, and then the cache takes the trials
            as they were written (with the database's completion time)."""
            with self._lock:
                study = self._studies.get(study_id)
                if study is None or not self.done:
                    return False
                last, unfinished = study.last_finished_trial_id, list(study.unfinished_trial_ids)
            t = models.TrialModel
            with _create_scoped_session(self._backend.scoped_session) as session:
                # the trial rows alone (none of the five tables a full read joins); the
                # model converts the completion time as a full read would
                found = session.query(t).filter(t.study_id == study_id, or_(t.trial_id > last, t.trial_id.in_(unfinished)))
                rows = [(m.trial_id, m.state, m.datetime_complete) for m in found]
            if {r[0] for r in rows} != set(self.done) or any(self.done[i].state != state for i, state, _ in rows):
                return False
            for trial_id, _, completed in rows:
                self.done[trial_id].datetime_complete = completed
            with self._lock:
                self._add_trials_to_cache(study_id, list(self.done.values()))
                study.last_finished_trial_id = max(last, *self.done)
            return True

        def create_new_trial(self, study_id: int, template_trial: Any = None) -> int:
            trial_id = super().create_new_trial(study_id, template_trial)
            with self._lock:
                sid, number = self._trial_id_to_study_id_and_number[trial_id]
                created = self._studies[sid].trials[number]
            if created.state == TrialState.RUNNING:  # a queued (WAITING) trial may be taken by another worker
                self.own[trial_id] = copy.deepcopy(created)
                with self.wlock:
                    self.pending[trial_id] = []
                    self.unflushed.add(trial_id)
            return trial_id

        def get_trial(self, trial_id: int) -> Any:
            own = self.own.get(trial_id)
            return copy.deepcopy(own) if own is not None else super().get_trial(trial_id)

        def set_trial_param(self, trial_id: int, name: str, value: float, distribution: Any) -> None:
            own = self.own.get(trial_id)
            with self._lock:
                sid = self._trial_id_to_study_id_and_number[trial_id][0] if own is not None else None
                known = self._studies[sid].param_distribution.get(name) if own is not None else None
            if known is None:  # the database checks the first of each name against the study
                super().set_trial_param(trial_id, name, value, distribution)
            else:
                check_distribution_compatibility(known, distribution)
                with self.wlock:
                    self.pending[trial_id].append(("param", name, value, distribution, known))
            if own is not None:
                own.params[name] = distribution.to_external_repr(value)
                own.distributions[name] = distribution

        def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
            self._set_attr(trial_id, models.TrialUserAttributeModel, key, value, super().set_trial_user_attr)

        def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
            self._set_attr(trial_id, models.TrialSystemAttributeModel, key, value, super().set_trial_system_attr)

        def _set_attr(self, trial_id: int, model: Any, key: str, value: Any, direct: Any) -> None:
            own = self.own.get(trial_id)
            if own is None:
                direct(trial_id, key, value)
                return
            with self.wlock:
                self.pending[trial_id].append(("attr", model, key, value))
            attrs = own.user_attrs if model is models.TrialUserAttributeModel else own.system_attrs
            attrs[key] = copy.deepcopy(value)

        def set_trial_intermediate_value(self, trial_id: int, step: int, value: float) -> None:
            self.flush(trial_id)
            super().set_trial_intermediate_value(trial_id, step, value)
            own = self.own.get(trial_id)
            if own is not None:
                own.intermediate_values[step] = value

        def set_trial_state_values(self, trial_id: int, state: Any, values: Any = None) -> bool:
            with self.wlock:
                writes = self.pending.pop(trial_id, None)
                self.unflushed.discard(trial_id)
            own = self.own.pop(trial_id, None)  # finished (or handed over): the database answers again
            if writes:
                # scoped_session() is this thread's one Session: the storage's own state
                # write below joins these rows, and its commit is the trial's last
                session = self._backend.scoped_session()
                try:
                    self._write(session, trial_id, writes)
                except Exception:
                    session.rollback()
                    session.close()
                    raise
            written = super().set_trial_state_values(trial_id, state, values)
            if written and own is not None and state.is_finished():
                own.state, own.values = state, values  # what the next read would fetch (see _only_own_changes)
                self.done[trial_id] = own
            return written

        def record_heartbeat(self, trial_id: int) -> None:
            # the heartbeat thread beats as the trial starts: that first beat joins the
            # transaction of the trial's parameters, a few milliseconds later
            with self.wlock:
                if trial_id in self.unflushed:
                    self.pending[trial_id].append(("beat",))
                    return
            super().record_heartbeat(trial_id)

        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            # a trial turns stale only after the grace period (several heartbeats): one look
            # per heartbeat interval finds it in time; expire_stale_check() forces the next
            now = time.monotonic()
            if now - self.stale_checked.get(study_id, -math.inf) < self.get_heartbeat_interval():
                return []
            self.stale_checked[study_id] = now
            return super()._get_stale_trial_ids(study_id) + self._never_beaten(study_id)

        def _never_beaten(self, study_id: int) -> list[int]:
            """RUNNING trials without a heartbeat that started longer than the grace period
            ago: a process killed between creating a trial and its first write (Optuna's
            own check skips trials that never beat, so they would stay RUNNING)."""
            t = models.TrialModel
            grace = timedelta(seconds=self._backend.grace_period or 2 * self._backend.heartbeat_interval)
            with _create_scoped_session(self._backend.scoped_session) as session:
                now = session.execute(func.now()).scalar().replace(tzinfo=None)  # the clock heartbeats use
                found = session.query(t).filter(t.study_id == study_id, t.state == TrialState.RUNNING, ~t.heartbeats.any())
                return [m.trial_id for m in found if m.trial_id not in self.own and now - m._datetime_start_utc > grace]

        def flush(self, trial_id: int | None = None) -> None:
            """One transaction with the collected writes of ``trial_id`` (all trials: None)."""
            for tid in [trial_id] if trial_id is not None else list(self.pending):
                with self.wlock:
                    writes = self.pending.get(tid)
                    if writes:
                        self.pending[tid] = []
                        self.unflushed.discard(tid)
                if writes:
                    with _create_scoped_session(self._backend.scoped_session) as session:
                        self._write(session, tid, writes)

        def _write(self, session: Any, tid: int, writes: list[tuple]) -> None:
            """The writes as one statement per table (the ORM's one statement per write,
            each loading the trial again, costs more than the transaction itself)."""
            t = models.TrialModel
            state = session.execute(select(t.state).where(t.trial_id == tid)).scalar_one_or_none()
            if state is None:
                raise KeyError(f"no trial with trial_id {tid}")
            self._backend.check_trial_is_updatable(tid, state)
            if any(w[0] == "beat" for w in writes):
                hb = models.TrialHeartbeatModel
                session.execute(sqlite_insert(hb).values(trial_id=tid, heartbeat=func.now())
                                .on_conflict_do_update(index_elements=[hb.trial_id], set_={"heartbeat": func.now()}))
            params = [{"trial_id": tid, "param_name": name, "param_value": value,
                       "distribution_json": distribution_to_json(dist)}
                      for kind, name, value, dist, *_ in (w for w in writes if w[0] == "param")]
            if params:
                # a row already there (a retried trial's) stays, as the storage's own write leaves it
                session.execute(sqlite_insert(models.TrialParamModel).values(params).on_conflict_do_nothing())
            attrs = {(w[1], w[2]): json.dumps(w[3]) for w in writes if w[0] == "attr"}  # the last write wins
            for (model, key), value_json in attrs.items():
                session.execute(sqlite_insert(model).values(trial_id=tid, key=key, value_json=value_json)
                                .on_conflict_do_update(index_elements=[model.trial_id, model.key],
                                                       set_={"value_json": value_json}))

    return OneReadPerTrial
