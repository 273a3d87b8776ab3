"""Drift checks, drift episodes and their one admin notice, and review-queue flags.

A task's checks form episodes: a check that finds drift opens an episode (or joins the open
one), a check that finds none ends it (:func:`record_check`, the one owner of that rule).
Admins are told once per episode: the notice is claimed with one conditional ``UPDATE``
(:func:`claim_notice`), posted by the caller after the commit, then marked
(:func:`notice_posted`); a failed post clears the claim so a later run tries again, and an
episode that ended before it was told is never told.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage._convert import to_record
from storage.enums import utcnow
from storage.errors import NotFoundError
from storage.models import DriftCheck, DriftEpisode, ReviewFlag
from storage.records import DriftCheckRecord, DriftEpisodeRecord

DRIFT_REASON = "drift"
MAX_ERROR_CHARS = 1000


@dataclass(frozen=True)
class NewDriftCheck:
    """What a drift check found (see :class:`storage.models.DriftCheck`)."""

    task: str
    model_version: str
    days: float
    n_recent: int
    n_reference: int
    p_value: float
    p_embeddings: float
    p_labels: float
    alpha: float
    drifted: bool
    expected_macro_f1: float
    details: dict[str, Any]


class EpisodeChange(enum.StrEnum):
    """What a check did to its task's episode."""

    OPENED = "opened"
    CONTINUED = "continued"
    ENDED = "ended"
    NONE = "none"


@dataclass(frozen=True)
class RecordedCheck:
    """A stored check and the episode it opened, joined or ended (None: no episode)."""

    check: DriftCheckRecord
    episode: DriftEpisodeRecord | None
    change: EpisodeChange


def _open_episode(session: Session, task: str) -> DriftEpisode | None:
    return session.scalars(
        select(DriftEpisode)
        .where(DriftEpisode.open_task == task)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()


def record_check(
    *, session: Session, check: NewDriftCheck, now: datetime | None = None
) -> RecordedCheck:
    """Store a check and move its task's episode: drift opens or continues one, no drift
    ends the open one.

    Args:
        session: The caller's unit of work.
        check: What the check found.
        now: The current time (tests).

    Returns:
        The stored check, and the episode with what happened to it.
    """
    now = now or utcnow()
    episode = _open_episode(session, check.task)
    change = EpisodeChange.NONE
    if check.drifted:
        if episode is None:
            fresh = DriftEpisode(
                task=check.task, open_task=check.task, started_at=now, checks=1, notice_attempts=0
            )
            try:
                with session.begin_nested():
                    session.add(fresh)
                episode, change = fresh, EpisodeChange.OPENED
            except IntegrityError:  # another check opened it a moment ago: join it
                episode = _open_episode(session, check.task)
                if episode is None:  # pragma: no cover - ended as fast as it opened
                    raise
        if change != EpisodeChange.OPENED:
            episode.checks += 1
            change = EpisodeChange.CONTINUED
    elif episode is not None:
        episode.ended_at = now
        episode.open_task = None
        change = EpisodeChange.ENDED
    row = DriftCheck(
        task=check.task,
        checked_at=now,
        model_version=check.model_version,
        days=float(check.days),
        n_recent=int(check.n_recent),
        n_reference=int(check.n_reference),
        p_value=float(check.p_value),
        p_embeddings=float(check.p_embeddings),
        p_labels=float(check.p_labels),
        alpha=float(check.alpha),
        drifted=bool(check.drifted),
        expected_macro_f1=float(check.expected_macro_f1),
        details=check.details,
        episode_id=episode.id if check.drifted and episode is not None else None,
    )
    session.add(row)
    session.flush()
    return RecordedCheck(
        to_record(DriftCheckRecord, row),
        None if episode is None else to_record(DriftEpisodeRecord, episode),
        change,
    )


def list_checks(*, session: Session, task: str, limit: int = 20) -> list[DriftCheckRecord]:
    """A task's checks, newest first."""
    rows = session.scalars(
        select(DriftCheck)
        .where(DriftCheck.task == task)
        .order_by(DriftCheck.checked_at.desc(), DriftCheck.id.desc())
        .limit(limit)
    )
    return [to_record(DriftCheckRecord, row) for row in rows]


def get_episode(*, session: Session, episode_id: int) -> DriftEpisodeRecord:
    row = session.get(DriftEpisode, episode_id, populate_existing=True)
    if row is None:
        raise NotFoundError(f"no drift episode {episode_id}")
    return to_record(DriftEpisodeRecord, row)


def list_episodes(*, session: Session, task: str, limit: int = 20) -> list[DriftEpisodeRecord]:
    """A task's episodes, newest first."""
    rows = session.scalars(
        select(DriftEpisode)
        .where(DriftEpisode.task == task)
        .order_by(DriftEpisode.started_at.desc(), DriftEpisode.id.desc())
        .limit(limit)
        .execution_options(populate_existing=True)
    )
    return [to_record(DriftEpisodeRecord, row) for row in rows]


def pending_notices(
    *, session: Session, tasks: Sequence[str] | None = None, now: datetime | None = None
) -> list[DriftEpisodeRecord]:
    """Open episodes whose admins were not told yet and that no one is telling right now."""
    now = now or utcnow()
    query = (
        select(DriftEpisode)
        .where(
            DriftEpisode.open_task.is_not(None),
            DriftEpisode.notified_at.is_(None),
            or_(
                DriftEpisode.notice_claimed_until.is_(None),
                DriftEpisode.notice_claimed_until < now,
            ),
        )
        .order_by(DriftEpisode.started_at, DriftEpisode.id)
        .execution_options(populate_existing=True)
    )
    if tasks is not None:
        query = query.where(DriftEpisode.task.in_(list(tasks)))
    return [to_record(DriftEpisodeRecord, row) for row in session.scalars(query)]


def claim_notice(
    *, session: Session, episode_id: int, ttl: timedelta, now: datetime | None = None
) -> bool:
    """Take an episode's notice for posting: one conditional ``UPDATE``, so of two
    claimers exactly one wins. Commit before posting, so the claim is seen.

    Returns:
        True if this caller holds the notice now (an attempt is counted); False when the
        episode ended, was told already, or someone else holds it.
    """
    now = now or utcnow()
    result = session.execute(
        update(DriftEpisode)
        .where(
            DriftEpisode.id == episode_id,
            DriftEpisode.open_task.is_not(None),
            DriftEpisode.notified_at.is_(None),
            or_(
                DriftEpisode.notice_claimed_until.is_(None),
                DriftEpisode.notice_claimed_until < now,
            ),
        )
        .values(
            notice_claimed_until=now + ttl,
            notice_attempts=DriftEpisode.notice_attempts + 1,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def notice_posted(
    *,
    session: Session,
    episode_id: int,
    channel: str,
    ts: str | None,
    now: datetime | None = None,
) -> DriftEpisodeRecord:
    """Record that the episode's admins were told (where, and Slack's message ts)."""
    row = session.get(DriftEpisode, episode_id, populate_existing=True)
    if row is None:
        raise NotFoundError(f"no drift episode {episode_id}")
    row.notified_at = now or utcnow()
    row.notice_channel = channel
    row.notice_ts = ts
    row.notice_claimed_until = None
    row.last_error = None
    session.flush()
    return to_record(DriftEpisodeRecord, row)


def notice_failed(*, session: Session, episode_id: int, error: str) -> None:
    """Release a claim after a failed post, keeping the error: a later run tries again."""
    row = session.get(DriftEpisode, episode_id, populate_existing=True)
    if row is None:
        raise NotFoundError(f"no drift episode {episode_id}")
    row.notice_claimed_until = None
    row.last_error = error[:MAX_ERROR_CHARS]
    session.flush()


def flag_for_review(
    *,
    session: Session,
    task: str,
    scores: Sequence[tuple[int, float]],
    reason: str = DRIFT_REASON,
    drift_check_id: int | None = None,
    now: datetime | None = None,
) -> int:
    """Put channel messages in the review queue (first, with ``reason``).

    Args:
        session: The caller's unit of work.
        task: The task the messages should be labelled for.
        scores: (message id, score) pairs: a higher score is shown first.
        reason: Why they are queued (``drift``).
        drift_check_id: The check that flagged them, if any.
        now: The current time (tests).

    Returns:
        How many messages were flagged (a message flagged before is refreshed).
    """
    if not scores:
        return 0
    now = now or utcnow()
    rows = [
        {
            "task": task,
            "message_id": int(message_id),
            "reason": reason,
            "score": float(score),
            "flagged_at": now,
            "drift_check_id": drift_check_id,
        }
        for message_id, score in dict(scores).items()
    ]
    dialect = session.get_bind().dialect.name
    insert: Any
    if dialect == "postgresql":
        insert = postgresql.insert(ReviewFlag)
    elif dialect == "sqlite":
        insert = sqlite.insert(ReviewFlag)
    else:  # pragma: no cover
        raise NotImplementedError(f"unsupported database {dialect}")
    statement = insert.on_conflict_do_update(
        index_elements=["task", "message_id", "reason"],
        set_={
            "score": insert.excluded.score,
            "flagged_at": insert.excluded.flagged_at,
            "drift_check_id": insert.excluded.drift_check_id,
        },
    )
    session.execute(statement, rows)
    return len(rows)


def episode_checks(*, session: Session, episode_id: int) -> list[DriftCheckRecord]:
    """The checks that found an episode's drift, newest first."""
    rows = session.scalars(
        select(DriftCheck)
        .where(DriftCheck.episode_id == episode_id)
        .order_by(DriftCheck.checked_at.desc(), DriftCheck.id.desc())
    )
    return [to_record(DriftCheckRecord, row) for row in rows]
