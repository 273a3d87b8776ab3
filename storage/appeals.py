"""Authors' appeals against alerts: stored once per alert, decided once by a moderator."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage._convert import to_record
from storage.enums import AppealStatus, utcnow
from storage.errors import DuplicateError, NotFoundError
from storage.models import Alert, Appeal, Message, Prediction
from storage.records import AppealRecord


def add_appeal(*, session: Session, alert_id: int, author_id: str, note: str) -> AppealRecord:
    """Store an open appeal against an alert.

    Raises:
        DuplicateError: The alert has an appeal already (the first is kept).
    """
    row = Appeal(alert_id=alert_id, author_id=author_id, note=note, status=AppealStatus.OPEN)
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError as exc:
        raise DuplicateError(f"alert {alert_id} has an appeal already") from exc
    return to_record(AppealRecord, row)


def get_appeal(*, session: Session, appeal_id: int) -> AppealRecord:
    row = session.get(Appeal, appeal_id, populate_existing=True)
    if row is None:
        raise NotFoundError(f"no appeal {appeal_id}")
    return to_record(AppealRecord, row)


def appeal_for_alert(*, session: Session, alert_id: int) -> AppealRecord | None:
    row = session.scalars(select(Appeal).where(Appeal.alert_id == alert_id)).first()
    return None if row is None else to_record(AppealRecord, row)


def open_appeals(
    *, session: Session, limit: int = 20, team_id: str | None = None
) -> list[AppealRecord]:
    """Appeals waiting for a moderator, oldest first (the top of the review queue), about
    one workspace's messages (every workspace's when ``team_id`` is None)."""
    query = (
        select(Appeal)
        .where(Appeal.status == AppealStatus.OPEN)
        .order_by(Appeal.created_at, Appeal.id)
        .limit(limit)
    )
    if team_id is not None:
        query = (
            query.join(Alert, Alert.id == Appeal.alert_id)
            .join(Prediction, Prediction.id == Alert.prediction_id)
            .join(Message, Message.id == Prediction.message_id)
            .where(Message.team_id == team_id)
        )
    rows = session.scalars(query)
    return [to_record(AppealRecord, row) for row in rows]


def appeals_since(*, session: Session, author_id: str, since: datetime) -> int:
    """How many appeals an author made since a time (the rate limit counts these)."""
    query = select(func.count()).where(Appeal.author_id == author_id, Appeal.created_at >= since)
    return int(session.scalar(query) or 0)


def decide_appeal(
    *,
    session: Session,
    appeal_id: int,
    status: AppealStatus,
    decided_by: str,
    label: str,
    now: datetime | None = None,
) -> AppealRecord | None:
    """Close an open appeal, once: of two moderators deciding at once, one wins.

    Returns:
        The decided appeal, or None if it was decided already.
    """
    if status is AppealStatus.OPEN:
        raise ValueError("a decision upholds or denies an appeal")
    result = session.execute(
        update(Appeal)
        .where(Appeal.id == appeal_id, Appeal.status == AppealStatus.OPEN)
        .values(status=status, decided_by=decided_by, decided_at=now or utcnow(), label=label)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return get_appeal(session=session, appeal_id=appeal_id)
