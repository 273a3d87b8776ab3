"""Training runs and leases (at most one retrain per task across processes)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage._convert import to_record
from storage.enums import RunStatus, RunTrigger, utcnow
from storage.errors import NotFoundError
from storage.models import Lease, TrainingRun
from storage.records import LeaseRecord, TrainingRunRecord

FINISHED = (
    RunStatus.SUCCEEDED,
    RunStatus.FAILED,
    RunStatus.REJECTED,
    RunStatus.SKIPPED,
    RunStatus.SUPERSEDED,
)


def create_run(
    *,
    session: Session,
    task: str,
    trigger: RunTrigger,
    requested_by: str,
    status: RunStatus = RunStatus.QUEUED,
) -> TrainingRunRecord:
    row = TrainingRun(task=task, trigger=trigger, requested_by=requested_by, status=status)
    session.add(row)
    session.flush()
    return to_record(TrainingRunRecord, row)


def get_run(*, session: Session, run_id: int) -> TrainingRunRecord:
    row = session.get(TrainingRun, run_id)
    if row is None:
        raise NotFoundError(f"no training run {run_id}")
    return to_record(TrainingRunRecord, row)


def list_runs(
    *, session: Session, task: str | None = None, limit: int = 20
) -> list[TrainingRunRecord]:
    """The newest runs first."""
    query = select(TrainingRun).order_by(TrainingRun.created_at.desc(), TrainingRun.id.desc())
    if task is not None:
        query = query.where(TrainingRun.task == task)
    return [to_record(TrainingRunRecord, row) for row in session.scalars(query.limit(limit))]


def start_run(*, session: Session, run_id: int) -> TrainingRunRecord:
    row = _run(session, run_id)
    row.status = RunStatus.RUNNING
    row.started_at = utcnow()
    session.flush()
    return to_record(TrainingRunRecord, row)


def set_run_progress(*, session: Session, run_id: int, progress: Mapping[str, Any]) -> None:
    row = _run(session, run_id)
    row.progress = dict(progress)
    session.flush()


def finish_run(
    *,
    session: Session,
    run_id: int,
    status: RunStatus,
    error: str | None = None,
    candidate_version_id: int | None = None,
    gate_decision: Mapping[str, Any] | None = None,
) -> TrainingRunRecord:
    """Record how a run ended."""
    if status not in FINISHED:
        raise ValueError(f"{status} is not a final status")
    row = _run(session, run_id)
    row.status = status
    row.finished_at = utcnow()
    row.error = error
    if candidate_version_id is not None:
        row.candidate_version_id = candidate_version_id
    if gate_decision is not None:
        row.gate_decision = dict(gate_decision)
    session.flush()
    return to_record(TrainingRunRecord, row)


def _run(session: Session, run_id: int) -> TrainingRun:
    row = session.get(TrainingRun, run_id)
    if row is None:
        raise NotFoundError(f"no training run {run_id}")
    return row


def acquire_lease(
    *,
    session: Session,
    name: str,
    holder: str,
    ttl: timedelta,
    run_id: int | None = None,
    now: datetime | None = None,
) -> LeaseRecord | None:
    """Take a named lease if it is free, expired, or already ours.

    Args:
        session: The caller's unit of work; commit it to publish the lease.
        name: What is locked, e.g. ``retrain:spam``.
        holder: A unique id of the taker (host, pid, random suffix).
        ttl: How long the lease lasts unless renewed; a dead holder's lease lapses then.
        run_id: The training run holding it, for "already running" messages.
        now: The current time (tests).

    Returns:
        The lease if taken, else None (someone else holds it).
    """
    now = now or utcnow()
    expires = now + ttl
    try:
        with session.begin_nested():
            # Core insert: the session may hold this lease's row in its identity map already.
            session.execute(
                insert(Lease).values(
                    name=name, holder=holder, run_id=run_id, acquired_at=now, expires_at=expires
                )
            )
    except IntegrityError:
        taken = session.execute(
            update(Lease)
            .where(Lease.name == name, or_(Lease.expires_at < now, Lease.holder == holder))
            .values(holder=holder, run_id=run_id, acquired_at=now, expires_at=expires)
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            return None
    row = session.get(Lease, name, populate_existing=True)
    assert row is not None
    return to_record(LeaseRecord, row)


def get_lease(*, session: Session, name: str) -> LeaseRecord | None:
    row = session.get(Lease, name, populate_existing=True)
    return None if row is None else to_record(LeaseRecord, row)


def renew_lease(
    *, session: Session, name: str, holder: str, ttl: timedelta, now: datetime | None = None
) -> bool:
    """Extend our lease; False if we no longer hold it."""
    now = now or utcnow()
    result = session.execute(
        update(Lease)
        .where(Lease.name == name, Lease.holder == holder)
        .values(expires_at=now + ttl)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def release_lease(*, session: Session, name: str, holder: str) -> bool:
    """Give our lease back; False if we did not hold it."""
    row = session.get(Lease, name, populate_existing=True)
    if row is None or row.holder != holder:
        return False
    session.delete(row)
    session.flush()
    return True


def purge_expired_leases(*, session: Session, prefix: str, now: datetime | None = None) -> int:
    """Delete the lapsed leases whose names start with ``prefix`` (per-job markers).

    Returns:
        How many were deleted.
    """
    now = now or utcnow()
    result = session.execute(
        delete(Lease)
        .where(Lease.name.startswith(prefix, autoescape=True), Lease.expires_at < now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
