"""Slack messages, processed events and predictions."""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage._convert import to_record
from storage.enums import utcnow
from storage.errors import DuplicateError, NotFoundError
from storage.models import Message, Prediction, SlackEvent
from storage.records import MessageRecord, PredictionRecord


def record_event(
    *, session: Session, event_id: str, event_type: str, team_id: str | None = None
) -> bool:
    """Remember that an Events API delivery was processed.

    Args:
        session: The caller's unit of work.
        event_id: Slack's ``event_id``, the same across retries.
        event_type: The event's type, for operators.
        team_id: The workspace.

    Returns:
        True the first time an event id is seen; False for a repeat (the first row is kept).
    """
    try:
        with session.begin_nested():
            session.add(SlackEvent(event_id=event_id, event_type=event_type, team_id=team_id))
    except IntegrityError:
        return False
    return True


def add_message(
    *,
    session: Session,
    team_id: str,
    channel_id: str,
    ts: str,
    text: str,
    user_id: str | None,
    thread_ts: str | None = None,
) -> MessageRecord:
    """Store a channel message.

    Raises:
        DuplicateError: The same team, channel and ts is stored already (it is kept as it was).
    """
    row = Message(
        team_id=team_id,
        channel_id=channel_id,
        ts=ts,
        user_id=user_id,
        text=text,
        thread_ts=thread_ts,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError as exc:
        raise DuplicateError(f"message {team_id}/{channel_id}/{ts} is stored already") from exc
    return to_record(MessageRecord, row)


def find_message(
    *, session: Session, team_id: str, channel_id: str, ts: str
) -> MessageRecord | None:
    row = session.scalars(
        select(Message).where(
            Message.team_id == team_id, Message.channel_id == channel_id, Message.ts == ts
        )
    ).one_or_none()
    return None if row is None else to_record(MessageRecord, row)


def get_message(*, session: Session, message_id: int) -> MessageRecord:
    row = session.get(Message, message_id)
    if row is None:
        raise NotFoundError(f"no message {message_id}")
    return to_record(MessageRecord, row)


def edit_message(
    *, session: Session, message_id: int, text: str, edited_at: datetime | None = None
) -> MessageRecord:
    """Replace a message's text after a Slack edit."""
    row = session.get(Message, message_id)
    if row is None:
        raise NotFoundError(f"no message {message_id}")
    row.text = text
    row.edited_at = edited_at or utcnow()
    session.flush()
    return to_record(MessageRecord, row)


def mark_message_deleted(
    *, session: Session, message_id: int, deleted_at: datetime | None = None
) -> MessageRecord:
    """Mark a message deleted in Slack; its row, predictions and labels are kept."""
    row = session.get(Message, message_id)
    if row is None:
        raise NotFoundError(f"no message {message_id}")
    row.deleted_at = deleted_at or utcnow()
    session.flush()
    return to_record(MessageRecord, row)


def add_prediction(
    *,
    session: Session,
    task: str,
    model_version: str,
    label: str,
    scores: Mapping[str, float],
    latency_ms: float,
    message_id: int | None = None,
    text: str | None = None,
) -> PredictionRecord:
    """Store what a model version predicted for a message or a free text.

    Args:
        session: The caller's unit of work.
        task: The task the model serves.
        model_version: The version that made the prediction.
        label: The predicted label.
        scores: Probability per label.
        latency_ms: Time the model took.
        message_id: The stored channel message, if the text is one.
        text: The text, when it is not a stored message (e.g. from /classify).
    """
    if message_id is None and text is None:
        raise ValueError("a prediction needs a message_id or a text")
    row = Prediction(
        message_id=message_id,
        text=text,
        task=task,
        model_version=model_version,
        label=label,
        scores={key: float(value) for key, value in scores.items()},
        latency_ms=float(latency_ms),
    )
    session.add(row)
    session.flush()
    return to_record(PredictionRecord, row)


def get_prediction(*, session: Session, prediction_id: int) -> PredictionRecord:
    row = session.get(Prediction, prediction_id)
    if row is None:
        raise NotFoundError(f"no prediction {prediction_id}")
    return to_record(PredictionRecord, row)


def predictions_for_message(*, session: Session, message_id: int) -> list[PredictionRecord]:
    rows = session.scalars(
        select(Prediction)
        .where(Prediction.message_id == message_id)
        .order_by(Prediction.created_at, Prediction.id)
    )
    return [to_record(PredictionRecord, row) for row in rows]


def sample_recent_messages(
    *, session: Session, since: datetime, limit: int, seed: int = 0
) -> tuple[list[MessageRecord], int]:
    """A random sample of the channel messages received since a time (however they arrived:
    events, the shortcut, or ``bertbot messages import``), not deleted, with some text.

    Args:
        session: The caller's unit of work.
        since: Only messages received at or after this time.
        limit: At most this many (a uniform sample without replacement when there are more).
        seed: Seeds the sample.

    Returns:
        The sample (oldest first) and how many messages there were in all.
    """
    ids = list(
        session.scalars(
            select(Message.id)
            .where(
                Message.received_at >= since,
                Message.deleted_at.is_(None),
                func.length(func.trim(Message.text)) > 0,
            )
            .order_by(Message.id)
        )
    )
    total = len(ids)
    if total > limit:
        ids = sorted(random.Random(seed).sample(ids, limit))
    chosen: list[MessageRecord] = []
    for start in range(0, len(ids), 1000):  # bounded IN lists on every backend
        rows = session.scalars(
            select(Message).where(Message.id.in_(ids[start : start + 1000])).order_by(Message.id)
        )
        chosen += [to_record(MessageRecord, row) for row in rows]
    return chosen, total
