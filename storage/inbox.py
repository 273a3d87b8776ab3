"""The durable inbox: Slack event deliveries stored before their ack, handled after.

A delivery is added in its own short unit of work; the transport acknowledges Slack only
after that commit, so an acknowledged event is never lost. Handling claims a row (one
conditional ``UPDATE``, or ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL when claiming
whatever is due), and the row is marked ``done`` in the unit of work of its effects. A row
whose claim lapses (its process died) is due again; a failure is retried with back-off and
dead-lettered after too many attempts.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage._convert import to_record
from storage.enums import InboxStatus, utcnow
from storage.errors import NotFoundError
from storage.models import InboxItem
from storage.records import InboxRecord, InboxStats

MAX_ERROR_CHARS = 2000


def add_delivery(
    *,
    session: Session,
    event_id: str,
    event_type: str,
    team_id: str | None,
    payload: str,
    holder: str | None = None,
    ttl: timedelta | None = None,
) -> InboxRecord | None:
    """Store a delivery; None if its event id is in the inbox already (a retry).

    Args:
        session: The unit of work (commit it before acknowledging Slack).
        event_id: Slack's ``event_id``, the same across retries.
        event_type: The event's type (``message``, ``app_home_opened``, ...).
        team_id: The workspace.
        payload: The envelope as received (JSON text).
        holder: Store it already claimed by this holder for ``ttl`` (the process that
            received it handles it at once; if it dies, the claim lapses).
        ttl: How long that claim lasts.
    """
    now = utcnow()
    claimed = holder is not None and ttl is not None
    row = InboxItem(
        event_id=event_id,
        event_type=event_type[:64],
        team_id=team_id,
        payload=payload,
        status=InboxStatus.WORKING if claimed else InboxStatus.PENDING,
        attempts=1 if claimed else 0,
        available_at=now,
        claimed_by=holder if claimed else None,
        claimed_until=now + ttl if claimed and ttl is not None else None,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return None
    return to_record(InboxRecord, row)


def get_item(*, session: Session, item_id: int) -> InboxRecord:
    row = session.get(InboxItem, item_id, populate_existing=True)
    if row is None:
        raise NotFoundError(f"no inbox item {item_id}")
    return to_record(InboxRecord, row)


def _claimable(now: datetime) -> ColumnElement[bool]:
    return or_(
        and_(InboxItem.status == InboxStatus.PENDING, InboxItem.available_at <= now),
        and_(InboxItem.status == InboxStatus.WORKING, InboxItem.claimed_until < now),
    )


def claim_item(
    *, session: Session, item_id: int, holder: str, ttl: timedelta
) -> InboxRecord | None:
    """Claim one row if it is pending or its claim lapsed; None if someone else has it."""
    now = utcnow()
    result = session.execute(
        update(InboxItem)
        .where(InboxItem.id == item_id, _claimable(now))
        .values(
            status=InboxStatus.WORKING,
            claimed_by=holder,
            claimed_until=now + ttl,
            attempts=InboxItem.attempts + 1,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return get_item(session=session, item_id=item_id)


def claim_due(*, session: Session, holder: str, ttl: timedelta, limit: int) -> list[InboxRecord]:
    """Claim up to ``limit`` rows that are due (pending and available, or claim lapsed)."""
    now = utcnow()
    query = select(InboxItem.id).where(_claimable(now)).order_by(InboxItem.id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(session.scalars(query))
    claimed = []
    for item_id in ids:
        record = claim_item(session=session, item_id=item_id, holder=holder, ttl=ttl)
        if record is not None:
            claimed.append(record)
    return claimed


def mark_done(*, session: Session, item_id: int) -> None:
    """Record that a delivery was handled (in the unit of work of its effects)."""
    session.execute(
        update(InboxItem)
        .where(InboxItem.id == item_id)
        .values(status=InboxStatus.DONE, finished_at=utcnow(), claimed_until=None)
        .execution_options(synchronize_session=False)
    )


def mark_failed(
    *, session: Session, item_id: int, error: str, retry_at: datetime | None
) -> InboxStatus | None:
    """Record a failed attempt: pending again from ``retry_at``, or dead when None.

    Returns:
        The row's new status; None if it was done already (it failed after its commit).
    """
    status = InboxStatus.PENDING if retry_at is not None else InboxStatus.DEAD
    values: dict[str, object] = {
        "status": status,
        "last_error": error[:MAX_ERROR_CHARS],
        "claimed_by": None,
        "claimed_until": None,
    }
    if retry_at is not None:
        values["available_at"] = retry_at
    else:
        values["finished_at"] = utcnow()
    result = session.execute(
        update(InboxItem)
        .where(InboxItem.id == item_id, InboxItem.status != InboxStatus.DONE)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return status if result.rowcount == 1 else None  # type: ignore[attr-defined]


def retry(*, session: Session, item_id: int | None = None) -> int:
    """Make dead rows (one, or all) pending again with a fresh count of attempts.

    Returns:
        How many rows will be tried again.
    """
    query = update(InboxItem).where(InboxItem.status == InboxStatus.DEAD)
    if item_id is not None:
        query = query.where(InboxItem.id == item_id)
    result = session.execute(
        query.values(
            status=InboxStatus.PENDING, attempts=0, available_at=utcnow(), finished_at=None
        ).execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def stats(*, session: Session) -> InboxStats:
    counts = dict(
        session.execute(select(InboxItem.status, func.count()).group_by(InboxItem.status)).all()
    )
    oldest = session.scalar(
        select(func.min(InboxItem.received_at)).where(
            InboxItem.status.in_((InboxStatus.PENDING, InboxStatus.WORKING))
        )
    )
    if oldest is not None and oldest.tzinfo is None:  # SQLite's aggregate loses the type
        oldest = oldest.replace(tzinfo=utcnow().tzinfo)
    return InboxStats(
        pending=int(counts.get(InboxStatus.PENDING, 0)),
        working=int(counts.get(InboxStatus.WORKING, 0)),
        dead=int(counts.get(InboxStatus.DEAD, 0)),
        done=int(counts.get(InboxStatus.DONE, 0)),
        oldest_waiting_at=oldest,
    )


def list_items(
    *, session: Session, status: InboxStatus | None = None, limit: int = 50
) -> list[InboxRecord]:
    """The newest rows first, optionally of one status."""
    query = select(InboxItem).order_by(InboxItem.id.desc()).limit(limit)
    if status is not None:
        query = query.where(InboxItem.status == status)
    return [to_record(InboxRecord, row) for row in session.scalars(query)]


def prune(*, session: Session, finished_before: datetime) -> int:
    """Delete handled and dead rows that finished before a time. Returns how many."""
    result = session.execute(
        delete(InboxItem)
        .where(
            InboxItem.status.in_((InboxStatus.DONE, InboxStatus.DEAD)),
            InboxItem.finished_at < finished_before,
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
