"""Roles per workspace: who moderates and who administers bertbot in one Slack team.

The rule that turns these rows into answers (a workspace with rows uses them alone, one
without falls back to the environment) is :class:`bot.services.roles.Roles`'s; this module
only stores and reads rows. Grants and removals are audited by the caller's service.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage._convert import to_record
from storage.enums import utcnow
from storage.models import Message
from storage.workspaces import WorkspaceRole

ROLES = ("moderator", "admin")


@dataclass(frozen=True)
class WorkspaceRoleRecord:
    id: int
    team_id: str
    user_id: str
    role: str
    granted_by: str
    granted_at: datetime


@dataclass(frozen=True)
class TeamRoles:
    """A workspace's roles as stored (both empty: the workspace has no rows)."""

    admins: frozenset[str]
    moderators: frozenset[str]

    @property
    def empty(self) -> bool:
        return not self.admins and not self.moderators


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")


def grant_role(
    *,
    session: Session,
    team_id: str,
    user_id: str,
    role: str,
    granted_by: str,
    now: datetime | None = None,
) -> tuple[WorkspaceRoleRecord, bool]:
    """Give a user a role in a workspace (a repeat changes nothing).

    Args:
        session: The caller's unit of work.
        team_id: The Slack workspace (team) id.
        user_id: The Slack user id.
        role: ``moderator`` or ``admin``.
        granted_by: Who granted it (a Slack user id or ``cli``).
        now: The current time (tests).

    Returns:
        The role's row and whether it was created now (False: the user already held it).

    Raises:
        ValueError: An unknown role.
    """
    _check_role(role)
    existing = _find(session, team_id, user_id, role)
    if existing is not None:
        return to_record(WorkspaceRoleRecord, existing), False
    row = WorkspaceRole(
        team_id=team_id,
        user_id=user_id,
        role=role,
        granted_by=granted_by,
        granted_at=now or utcnow(),
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:  # granted by someone else a moment ago
        found = _find(session, team_id, user_id, role)
        if found is None:  # pragma: no cover - it was there a moment ago
            raise
        return to_record(WorkspaceRoleRecord, found), False
    return to_record(WorkspaceRoleRecord, row), True


def revoke_role(*, session: Session, team_id: str, user_id: str, role: str) -> bool:
    """Take a role away; returns whether the user held it.

    Raises:
        ValueError: An unknown role.
    """
    _check_role(role)
    result = session.execute(
        delete(WorkspaceRole).where(
            WorkspaceRole.team_id == team_id,
            WorkspaceRole.user_id == user_id,
            WorkspaceRole.role == role,
        )
    )
    return bool(getattr(result, "rowcount", 0))


def list_roles(*, session: Session, team_id: str | None = None) -> list[WorkspaceRoleRecord]:
    """Stored roles by team, role (admins first) and user (every team when None)."""
    query = select(WorkspaceRole).order_by(
        WorkspaceRole.team_id, WorkspaceRole.role, WorkspaceRole.user_id
    )
    if team_id is not None:
        query = query.where(WorkspaceRole.team_id == team_id)
    return [to_record(WorkspaceRoleRecord, row) for row in session.scalars(query)]


def team_roles(*, session: Session, team_id: str) -> TeamRoles:
    """A workspace's stored admins and moderators (one statement)."""
    admins: set[str] = set()
    moderators: set[str] = set()
    for user_id, role in session.execute(
        select(WorkspaceRole.user_id, WorkspaceRole.role).where(WorkspaceRole.team_id == team_id)
    ):
        (admins if role == "admin" else moderators).add(str(user_id))
    return TeamRoles(frozenset(admins), frozenset(moderators))


def teams_with_roles(*, session: Session) -> list[str]:
    """Workspaces that have at least one stored role, sorted."""
    return [
        str(team)
        for team in session.scalars(
            select(WorkspaceRole.team_id).distinct().order_by(WorkspaceRole.team_id)
        )
    ]


def known_teams(*, session: Session) -> list[str]:
    """Workspaces bertbot knows: those with stored messages or stored roles, sorted."""
    messages = select(Message.team_id).where(Message.team_id != "").distinct()
    roles = select(WorkspaceRole.team_id).distinct()
    found = {str(team) for team in session.scalars(messages)}
    found |= {str(team) for team in session.scalars(roles)}
    return sorted(found)


def _find(session: Session, team_id: str, user_id: str, role: str) -> WorkspaceRole | None:
    return session.scalars(
        select(WorkspaceRole).where(
            WorkspaceRole.team_id == team_id,
            WorkspaceRole.user_id == user_id,
            WorkspaceRole.role == role,
        )
    ).one_or_none()
