"""The moderators' alert outbox: stored with the prediction, claimed, posted, marked.

An alert row is added in the unit of work that stores its prediction. Posting to Slack
happens after that commit, so a process can die in between; the row then stays pending
until some process claims it. A claim is one conditional ``UPDATE`` (a time-limited lock
on the row), committed before the post, so two processes never post the same alert
while a claim holds; a claim that is never released (the poster died) lapses.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage._convert import to_record
from storage.enums import PolicyAction, utcnow
from storage.errors import DuplicateError, NotFoundError
from storage.models import Alert, Message, Prediction
from storage.records import AlertRecord

MAX_ERROR_CHARS = 1000


def add_alert(
    *,
    session: Session,
    prediction_id: int,
    label: str,
    channel: str,
    action: PolicyAction = PolicyAction.ALERT,
) -> AlertRecord:
    """Queue an alert about a prediction, to be posted once the unit of work commits.

    Args:
        session: The unit of work that stored the prediction.
        prediction_id: The prediction that crossed the threshold.
        label: The alert label (``spam``).
        channel: Where the alert goes (a channel id or name).
        action: What the channel's policy does beyond the moderators' post.

    Raises:
        DuplicateError: The prediction has an alert already (the first is kept).
    """
    row = Alert(
        prediction_id=prediction_id, label=label, channel=channel, attempts=0, action=action
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError as exc:
        raise DuplicateError(f"prediction {prediction_id} has an alert already") from exc
    return to_record(AlertRecord, row)


def get_alert(*, session: Session, alert_id: int) -> AlertRecord:
    row = session.get(Alert, alert_id, populate_existing=True)
    if row is None:
        raise NotFoundError(f"no alert {alert_id}")
    return to_record(AlertRecord, row)


def alerts_for_message(*, session: Session, message_id: int) -> list[AlertRecord]:
    """Every alert about a message's predictions, posted or not, oldest first."""
    rows = session.scalars(
        select(Alert)
        .join(Prediction, Prediction.id == Alert.prediction_id)
        .where(Prediction.message_id == message_id)
        .order_by(Alert.created_at, Alert.id)
        .execution_options(populate_existing=True)
    )
    return [to_record(AlertRecord, row) for row in rows]


def pending_alerts(
    *,
    session: Session,
    message_id: int | None = None,
    created_before: datetime | None = None,
    now: datetime | None = None,
    limit: int = 100,
) -> list[AlertRecord]:
    """Alerts not posted yet and not claimed right now, oldest first.

    An alert about a message deleted in the meantime is left out: there is nothing left for
    moderators to look at.

    Args:
        session: The caller's unit of work.
        message_id: Only the alerts about this message's predictions.
        created_before: Only alerts stored before this time (the sweeper leaves fresh
            alerts to the request that stored them).
        now: The current time (tests).
        limit: At most this many.
    """
    now = now or utcnow()
    query = (
        select(Alert)
        .join(Prediction, Prediction.id == Alert.prediction_id)
        .join(Message, Message.id == Prediction.message_id)
        .where(
            Alert.posted_at.is_(None),
            or_(Alert.claimed_until.is_(None), Alert.claimed_until < now),
            Message.deleted_at.is_(None),
        )
        .order_by(Alert.created_at, Alert.id)
        .limit(limit)
        .execution_options(populate_existing=True)
    )
    if message_id is not None:
        query = query.where(Prediction.message_id == message_id)
    if created_before is not None:
        query = query.where(Alert.created_at < created_before)
    return [to_record(AlertRecord, row) for row in session.scalars(query)]


def unposted_count(*, session: Session) -> int:
    """How many alerts wait to be posted: not posted yet, claimed or not, about a message
    that is not deleted (the outbox's depth; alerts about deleted messages are never posted).
    """
    query = (
        select(func.count())
        .select_from(Alert)
        .join(Prediction, Prediction.id == Alert.prediction_id)
        .join(Message, Message.id == Prediction.message_id)
        .where(Alert.posted_at.is_(None), Message.deleted_at.is_(None))
    )
    return int(session.scalar(query) or 0)


def claim_alert(
    *, session: Session, alert_id: int, ttl: timedelta, now: datetime | None = None
) -> bool:
    """Take a pending alert for posting, unless it is posted or someone else holds it.

    One conditional ``UPDATE``: of two processes claiming the same alert, exactly one
    changes the row. Commit the unit of work before posting, so the claim is seen.

    Args:
        session: The caller's unit of work.
        alert_id: The alert.
        ttl: How long the claim holds; a claimer that dies lets it lapse then.
        now: The current time (tests).

    Returns:
        True if this caller now holds the alert (and counted an attempt), else False.
    """
    now = now or utcnow()
    result = session.execute(
        update(Alert)
        .where(
            Alert.id == alert_id,
            Alert.posted_at.is_(None),
            or_(Alert.claimed_until.is_(None), Alert.claimed_until < now),
        )
        .values(claimed_until=now + ttl, attempts=Alert.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def renew_alert_claim(
    *, session: Session, alert_id: int, attempt: int, ttl: timedelta, now: datetime | None = None
) -> bool:
    """Extend a claim, if the caller still holds it: a slow poster keeps its alert.

    The attempt count is the claim's fencing token: every claim adds one, so a claimer
    whose count is still the row's is the last one who claimed it, and no one else can be
    posting it (even if its claim lapsed meanwhile, no one took it).

    Args:
        session: The caller's unit of work.
        alert_id: The alert.
        attempt: What :func:`claim_alert` made the attempt count (its ``attempts``).
        ttl: The claim holds this long from now.
        now: The current time (tests).

    Returns:
        True if the claim is the caller's and now holds until ``now + ttl``; False if the
        alert is posted or someone claimed it since.
    """
    now = now or utcnow()
    result = session.execute(
        update(Alert)
        .where(Alert.id == alert_id, Alert.posted_at.is_(None), Alert.attempts == attempt)
        .values(claimed_until=now + ttl)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def mark_alert_posted(
    *, session: Session, alert_id: int, slack_ts: str | None, now: datetime | None = None
) -> AlertRecord:
    """Record that an alert is in Slack (its message ``ts``); it is never posted again."""
    row = _alert(session, alert_id)
    row.posted_at = now or utcnow()
    row.slack_ts = slack_ts
    row.claimed_until = None
    row.last_error = None
    session.flush()
    return to_record(AlertRecord, row)


def mark_message_removed(
    *, session: Session, alert_id: int, now: datetime | None = None
) -> AlertRecord:
    """Record that the bot deleted the alerted message (``remove``): an upheld appeal
    re-posts it."""
    row = _alert(session, alert_id)
    row.removed_at = now or utcnow()
    session.flush()
    return to_record(AlertRecord, row)


def release_alert(
    *, session: Session, alert_id: int, error: str, retry_at: datetime | None = None
) -> AlertRecord:
    """Give a claimed alert back after a failed post; it stays pending.

    Args:
        session: The caller's unit of work.
        alert_id: The alert.
        error: What went wrong, for operators (cut to 1000 characters).
        retry_at: No one claims it again before this time (a back-off); None: at once.
    """
    row = _alert(session, alert_id)
    if row.posted_at is None:
        row.claimed_until = retry_at
    row.last_error = error[:MAX_ERROR_CHARS]
    session.flush()
    return to_record(AlertRecord, row)


def _alert(session: Session, alert_id: int) -> Alert:
    row = session.get(Alert, alert_id, populate_existing=True)
    if row is None:
        raise NotFoundError(f"no alert {alert_id}")
    return row
