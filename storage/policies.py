"""Channel policies: how one channel is moderated for one task (one row per pair).

The workspace default is not stored here (it comes from the settings); a column left NULL
follows it. Audit entries for changes are the caller's (the policy service writes one in
the same unit of work).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from storage._convert import to_record
from storage.enums import PolicyAction, utcnow
from storage.models import ChannelPolicy
from storage.records import ChannelPolicyRecord


def list_policies(
    *, session: Session, channel_id: str | None = None, task: str | None = None
) -> list[ChannelPolicyRecord]:
    """Stored policies, by channel then task, optionally for one channel and/or task."""
    query = select(ChannelPolicy).order_by(ChannelPolicy.channel_id, ChannelPolicy.task)
    if channel_id is not None:
        query = query.where(ChannelPolicy.channel_id == channel_id)
    if task is not None:
        query = query.where(ChannelPolicy.task == task)
    return [_record(row) for row in session.scalars(query)]


def put_policy(
    *,
    session: Session,
    channel_id: str,
    task: str,
    watch: bool,
    threshold: float | None,
    action: PolicyAction | None,
    exempt: Sequence[str],
    updated_by: str,
) -> ChannelPolicyRecord:
    """Store a channel's policy for a task, replacing the one it had.

    Args:
        session: The caller's unit of work.
        channel_id: The channel.
        task: The task.
        watch: Whether its messages are classified for the task at all.
        threshold: The alert threshold (None: the workspace default's).
        action: What an alert does (None: the workspace default's).
        exempt: User and user group ids whose messages are not classified for the task.
        updated_by: Who changed it (a Slack user id or ``cli``).
    """
    row = session.scalars(
        select(ChannelPolicy)
        .where(ChannelPolicy.channel_id == channel_id, ChannelPolicy.task == task)
        .with_for_update()
    ).first()
    if row is None:
        row = ChannelPolicy(channel_id=channel_id, task=task)
        session.add(row)
    row.watch = watch
    row.threshold = threshold
    row.action = action
    row.exempt = list(dict.fromkeys(exempt))
    row.updated_by = updated_by
    row.updated_at = utcnow()
    session.flush()
    return _record(row)


def delete_policy(*, session: Session, channel_id: str, task: str) -> ChannelPolicyRecord | None:
    """Remove a channel's policy for a task (the workspace default applies again).

    Returns:
        The policy removed, or None if the channel had none.
    """
    existing = list_policies(session=session, channel_id=channel_id, task=task)
    if not existing:
        return None
    session.execute(
        delete(ChannelPolicy).where(
            ChannelPolicy.channel_id == channel_id, ChannelPolicy.task == task
        )
    )
    return existing[0]


def _record(row: ChannelPolicy) -> ChannelPolicyRecord:
    return replace(to_record(ChannelPolicyRecord, row), exempt=list(row.exempt or []))
