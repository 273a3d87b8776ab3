"""The active review queue's storage: its candidates, moderators' skips, the digest's sends.

A *candidate* for a task is a stored channel message that is not deleted, was received at or
after ``since`` (the queue's age limit), has a latest prediction for the task, has no
moderator, admin or appeal label for the task, was passed on ("Skip" or "Not sure") by
fewer than two moderators and never by the moderator asking. :func:`queue_candidates` is
the one owner of that rule; the selection itself (uncertainty, diversity) is
:mod:`trainer.active`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage._convert import to_record
from storage.annotations import HUMAN_SOURCES, visible_to
from storage.enums import SkipKind, utcnow
from storage.models import (
    Annotation,
    Message,
    Prediction,
    ReviewDigest,
    ReviewFlag,
    ReviewSkip,
)
from storage.records import MessageRecord, PredictionRecord

_CHUNK = 900
SKIPS_TO_LEAVE = 2  # moderators who passed on an item before it leaves everyone's queue


@dataclass(frozen=True)
class SkipRecord:
    id: int
    task: str
    message_id: int
    user_id: str
    kind: SkipKind
    created_at: datetime


@dataclass(frozen=True)
class QueueCandidate:
    """A candidate message, its latest prediction for the task, and its drift flag if any.

    Attributes:
        message: The channel message.
        prediction: Its latest prediction for the task.
        margin: Top probability minus the second (0: a coin toss).
        flagged: The review flag's reason (``drift``), newest flag first; None: not flagged.
    """

    message: MessageRecord
    prediction: PredictionRecord
    margin: float
    flagged: str | None = None


def _margin(scores: dict[str, Any]) -> float:
    ranked = sorted((float(value) for value in scores.values()), reverse=True)
    if not ranked:
        return 0.0
    return ranked[0] - (ranked[1] if len(ranked) > 1 else 0.0)


def _eligible(
    task: str, since: datetime, user_id: str | None, team_id: str | None = None
) -> list[Any]:
    """WHERE clauses over (Prediction, Message) for a task's candidates (see the module)."""
    latest = (
        select(func.max(Prediction.id))
        .where(Prediction.task == task, Prediction.message_id.is_not(None))
        .group_by(Prediction.message_id)
    )
    labelled = (
        select(Annotation.id)
        .where(
            Annotation.message_id == Message.id,
            Annotation.task == task,
            Annotation.source.in_([source.value for source in HUMAN_SOURCES]),
        )
        .exists()
    )
    passed_by_two = (
        select(ReviewSkip.message_id)
        .where(ReviewSkip.task == task)
        .group_by(ReviewSkip.message_id)
        .having(func.count(func.distinct(ReviewSkip.user_id)) >= SKIPS_TO_LEAVE)
    )
    clauses = [
        Prediction.id.in_(latest),
        Message.deleted_at.is_(None),
        Message.received_at >= since,
        ~labelled,
        Message.id.not_in(passed_by_two),
    ]
    if team_id is not None:
        clauses.append(Message.team_id == team_id)
    if user_id is not None:
        clauses.append(
            Message.id.not_in(
                select(ReviewSkip.message_id).where(
                    ReviewSkip.task == task, ReviewSkip.user_id == user_id
                )
            )
        )
    return clauses


def queue_candidates(
    *,
    session: Session,
    task: str,
    since: datetime,
    user_id: str | None = None,
    pool_size: int | None = None,
    team_id: str | None = None,
) -> list[QueueCandidate]:
    """A task's review-queue candidates for a moderator: flagged ones, then the least sure.

    Every flagged candidate is included (newest flag first); of the others, the
    ``pool_size`` with the smallest margin (ties: newer first). Margins are computed from the
    stored calibrated probabilities, so ranking reads only ids and scores; texts are read for
    the chosen pool alone.

    Args:
        session: The caller's unit of work.
        task: The task.
        since: Only messages received at or after this time (the age limit).
        user_id: The moderator asking: messages they passed on are left out (None: nobody).
        pool_size: How many unflagged candidates at most (None: all).
        team_id: Only this workspace's messages (every workspace's when None).

    Returns:
        Flagged candidates first, then the rest least sure first.
    """
    clauses = _eligible(task, since, user_id, team_id)
    scored = session.execute(
        select(Prediction.id, Prediction.scores)
        .join(Message, Message.id == Prediction.message_id)
        .where(*clauses)
    ).all()
    flags: dict[int, str] = {}
    for message_id, reason in session.execute(
        select(ReviewFlag.message_id, ReviewFlag.reason)
        .where(ReviewFlag.task == task, ReviewFlag.flagged_at >= since)
        .order_by(ReviewFlag.flagged_at.desc(), ReviewFlag.score.desc(), ReviewFlag.id.desc())
    ):
        flags.setdefault(int(message_id), str(reason))
    margins = {int(pid): _margin(scores) for pid, scores in scored}
    flagged_rows = list(
        session.execute(
            select(Prediction, Message)
            .join(Message, Message.id == Prediction.message_id)
            .where(*clauses, Message.id.in_(list(flags)))
        )
    )
    flag_order = {message_id: i for i, message_id in enumerate(flags)}
    flagged_rows.sort(key=lambda row: flag_order[row[1].id])
    flagged_ids = {prediction.id for prediction, _ in flagged_rows}
    unflagged = sorted(
        (pid for pid in margins if pid not in flagged_ids), key=lambda pid: (margins[pid], -pid)
    )
    if pool_size is not None:
        unflagged = unflagged[: max(pool_size, 0)]
    rest = _rows(session, unflagged)
    return [
        QueueCandidate(
            message=to_record(MessageRecord, message),
            prediction=to_record(PredictionRecord, prediction),
            margin=margins[prediction.id],
            flagged=flags.get(message.id),
        )
        for prediction, message in [*flagged_rows, *rest]
    ]


def _rows(session: Session, prediction_ids: list[int]) -> list[Any]:
    """(Prediction, Message) rows in the given order, read in chunks (bind-parameter limits)."""
    found: dict[int, Any] = {}
    for start in range(0, len(prediction_ids), _CHUNK):
        chunk = prediction_ids[start : start + _CHUNK]
        for prediction, message in session.execute(
            select(Prediction, Message)
            .join(Message, Message.id == Prediction.message_id)
            .where(Prediction.id.in_(chunk))
        ):
            found[prediction.id] = (prediction, message)
    return [found[pid] for pid in prediction_ids if pid in found]


def record_skip(
    *,
    session: Session,
    task: str,
    message_id: int,
    user_id: str,
    kind: SkipKind,
    now: datetime | None = None,
) -> SkipRecord:
    """Record a moderator's "Skip" or "Not sure" (a repeat replaces the kind and time).

    Args:
        session: The caller's unit of work.
        task: The task the item was queued for.
        message_id: The message.
        user_id: The moderator.
        kind: ``skip`` or ``not_sure``.
        now: The current time (tests).
    """
    now = now or utcnow()
    dialect = session.get_bind().dialect.name
    insert: Any
    if dialect == "postgresql":
        insert = postgresql.insert(ReviewSkip)
    elif dialect == "sqlite":
        insert = sqlite.insert(ReviewSkip)
    else:  # pragma: no cover
        raise NotImplementedError(f"unsupported database {dialect}")
    statement = insert.values(
        task=task, message_id=message_id, user_id=user_id, kind=kind, created_at=now
    ).on_conflict_do_update(
        index_elements=["task", "message_id", "user_id"],
        set_={"kind": insert.excluded.kind, "created_at": insert.excluded.created_at},
    )
    session.execute(statement)
    row = session.scalars(
        select(ReviewSkip)
        .where(
            ReviewSkip.task == task,
            ReviewSkip.message_id == message_id,
            ReviewSkip.user_id == user_id,
        )
        .execution_options(populate_existing=True)
    ).one()
    return to_record(SkipRecord, row)


def skips_for(*, session: Session, task: str, message_id: int) -> list[SkipRecord]:
    """Who passed on a message for a task, oldest first."""
    rows = session.scalars(
        select(ReviewSkip)
        .where(ReviewSkip.task == task, ReviewSkip.message_id == message_id)
        .order_by(ReviewSkip.created_at, ReviewSkip.id)
    )
    return [to_record(SkipRecord, row) for row in rows]


def labels_since(
    *, session: Session, annotator: str, since: datetime, team_id: str | None = None
) -> int:
    """How many labels (moderator, admin or appeal annotations) someone gave since a time
    (in one workspace when ``team_id`` is given)."""
    query = select(func.count(Annotation.id)).where(
        Annotation.annotator == annotator,
        Annotation.created_at >= since,
        Annotation.source.in_([source.value for source in HUMAN_SOURCES]),
    )
    if team_id is not None:
        query = query.where(visible_to(team_id))
    return int(session.scalar(query) or 0)


def digest_sent_at(
    *, session: Session, user_id: str, team_id: str | None = None
) -> datetime | None:
    """When the moderator was last sent the workspace's digest (None: never)."""
    row = session.get(ReviewDigest, (user_id, team_id or ""), populate_existing=True)
    return None if row is None else row.sent_at


def claim_digest(
    *,
    session: Session,
    user_id: str,
    every: timedelta,
    items: int,
    now: datetime | None = None,
    team_id: str | None = None,
) -> tuple[bool, datetime | None]:
    """Take this period's digest for a moderator: at most one per ``every``, across processes
    (per workspace: a moderator of two workspaces gets each one's digest).

    Commit before sending; a failed send gives the claim back (:func:`release_digest`).

    Returns:
        (claimed, the previous send time): claimed is False when a digest went out less
        than ``every`` ago (or another process just took it).
    """
    now = now or utcnow()
    team = team_id or ""
    row = session.scalars(
        select(ReviewDigest)
        .where(ReviewDigest.user_id == user_id, ReviewDigest.team_id == team)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if row is None:
        try:
            with session.begin_nested():
                session.add(ReviewDigest(user_id=user_id, team_id=team, sent_at=now, items=items))
        except IntegrityError:  # another process claimed the first digest a moment ago
            return False, None
        return True, None
    previous = row.sent_at
    if previous > now - every:
        return False, previous
    row.sent_at = now
    row.items = items
    session.flush()
    return True, previous


def release_digest(
    *, session: Session, user_id: str, previous: datetime | None, team_id: str | None = None
) -> None:
    """Give a claimed digest back after a failed send (the next run tries again)."""
    row = session.get(ReviewDigest, (user_id, team_id or ""), populate_existing=True)
    if row is None:
        return
    if previous is None:
        session.delete(row)
    else:
        row.sent_at = previous
    session.flush()
