"""Managing roles per workspace: ``bertbot roles`` (the operator) and ``/bertbot roles``
(that workspace's admins). Every change is audited (``roles.add``/``roles.remove``, subject
``roles/<team>/<user>``).

Which roles apply is :class:`bot.services.roles.Roles`'s rule: once a workspace has a stored
role, the environment's roles stop applying there. So an admin who holds their role from
the environment and grants the workspace's first stored role is stored as an admin in the
same unit of work (they keep the access they used), and an admin cannot remove the last
stored admin of a workspace from Slack (the operator can, with the CLI).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.services.errors import BotError, NotAllowedError
from bot.services.roles import Roles
from storage import audit
from storage import workspace_roles as role_store
from storage.db import Database
from storage.workspace_roles import ROLES

logger = logging.getLogger(__name__)

CLI_ACTOR = "cli"  # the operator running ``bertbot roles``
TEAM_ID = re.compile(r"^[TE][A-Z0-9]{2,31}$")
USER_ID = re.compile(r"^[UW][A-Z0-9]{2,63}$")
NOT_ADMIN = "Only this workspace's admins can change its roles. Nothing changed."


class RoleError(BotError):
    """Bad input to a role change (an unknown role, a malformed id)."""


@dataclass(frozen=True)
class RoleEntry:
    """One role in a listing (``granted_by``/``granted_at`` None: from the environment)."""

    user_id: str
    role: str
    granted_by: str | None = None
    granted_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "user": self.user_id,
            "role": self.role,
            "granted_by": self.granted_by,
            "granted_at": self.granted_at.isoformat() if self.granted_at else None,
        }


@dataclass(frozen=True)
class RoleListing:
    """A workspace's roles and where they come from (``database`` or ``environment``)."""

    team_id: str
    source: str
    entries: tuple[RoleEntry, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "team": self.team_id,
            "source": self.source,
            "roles": [entry.to_json() for entry in self.entries],
        }


@dataclass(frozen=True)
class RoleChange:
    """What a grant or removal did.

    Attributes:
        action: ``add`` or ``remove``.
        changed: False when nothing changed (already held; not held).
        also_granted: Roles stored for the actor with the workspace's first stored role.
    """

    action: str
    team_id: str
    user_id: str
    role: str
    changed: bool
    by: str
    also_granted: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "team": self.team_id,
            "user": self.user_id,
            "role": self.role,
            "changed": self.changed,
            "by": self.by,
            "also_granted": list(self.also_granted),
        }


def parse_user(text: str) -> str:
    """A Slack user id from ``U123``, ``<@U123>`` or ``<@U123|name>``.

    Raises:
        RoleError: Anything else (a bare ``@name`` carries no id).
    """
    match = re.fullmatch(r"<@([A-Z0-9]+)(?:\|[^>]*)?>", text.strip())
    user_id = match.group(1) if match else text.strip()
    if not USER_ID.match(user_id):
        raise RoleError(
            f"{text!r} is not a Slack user: mention them (@name, picked from the list) "
            "or give their user id (U…)"
        )
    return user_id


def check_team(team_id: str) -> str:
    """A Slack workspace id (``T…``, or ``E…`` for an Enterprise Grid org).

    Raises:
        RoleError: Anything else.
    """
    if not TEAM_ID.match(team_id or ""):
        raise RoleError(f"{team_id!r} is not a Slack workspace id (T…)")
    return team_id


def check_role(role: str) -> str:
    """``moderator`` or ``admin``.

    Raises:
        RoleError: Anything else.
    """
    if role not in ROLES:
        raise RoleError(f"unknown role {role!r}: use moderator or admin")
    return role


class RoleService:
    """Grants, removes and lists roles per workspace. Thread-safe, no request state."""

    def __init__(self, database: Database, roles: Roles) -> None:
        """Wire the service.

        Args:
            database: Where roles and the audit log are stored.
            roles: The rule (environment roles and the stored lookup).
        """
        self._database = database
        self._roles = roles

    @property
    def roles(self) -> Roles:
        return self._roles

    def can_manage(self, user_id: str | None, team_id: str | None) -> bool:
        """The operator, and the workspace's admins (by that workspace's roles)."""
        return user_id == CLI_ACTOR or (bool(team_id) and self._roles.is_admin(user_id, team_id))

    def add(self, *, team_id: str, user_id: str, role: str, by: str) -> RoleChange:
        """Grant ``role`` in ``team_id`` to ``user_id`` (audited when it changes anything).

        Raises:
            RoleError: A malformed id or an unknown role.
            NotAllowedError: ``by`` is not that workspace's admin (nor the operator).
        """
        team_id, user_id, role = check_team(team_id), parse_user(user_id), check_role(role)
        self._check(by, team_id)
        first = by != CLI_ACTOR and self._roles.source(team_id) != "database"
        also: list[str] = []
        with self._database.begin() as session:
            if first:  # keep the environment admin who starts the stored roles an admin
                _, created = role_store.grant_role(
                    session=session, team_id=team_id, user_id=by, role="admin", granted_by=by
                )
                if created and (by, "admin") != (user_id, role):
                    also.append("admin")
                    self._audit(session, "roles.add", team_id, by, "admin", by, kept=True)
            _, changed = role_store.grant_role(
                session=session, team_id=team_id, user_id=user_id, role=role, granted_by=by
            )
            if changed:
                self._audit(session, "roles.add", team_id, user_id, role, by)
        logger.info("%s granted %s %s in %s (changed: %s)", by, user_id, role, team_id, changed)
        return RoleChange("add", team_id, user_id, role, changed, by, tuple(also))

    def remove(self, *, team_id: str, user_id: str, role: str, by: str) -> RoleChange:
        """Take ``role`` in ``team_id`` from ``user_id`` (audited when it changes anything).

        Raises:
            RoleError: A malformed id, an unknown role, or (from Slack) the workspace's last
                stored admin.
            NotAllowedError: ``by`` is not that workspace's admin (nor the operator).
        """
        team_id, user_id, role = check_team(team_id), parse_user(user_id), check_role(role)
        self._check(by, team_id)
        with self._database.begin() as session:
            stored = role_store.team_roles(session=session, team_id=team_id)
            last_admin = role == "admin" and stored.admins == {user_id}
            if by != CLI_ACTOR and last_admin and stored.moderators:
                raise RoleError(
                    f"<@{user_id}> is this workspace's last admin: add another admin first. "
                    "Nothing changed."
                )
            changed = role_store.revoke_role(
                session=session, team_id=team_id, user_id=user_id, role=role
            )
            if changed:
                self._audit(session, "roles.remove", team_id, user_id, role, by)
        logger.info("%s removed %s %s in %s (changed: %s)", by, user_id, role, team_id, changed)
        return RoleChange("remove", team_id, user_id, role, changed, by)

    def listing(self, team_id: str) -> RoleListing:
        """A workspace's roles as they apply now: its stored ones, else the environment's.

        Raises:
            RoleError: A malformed workspace id.
        """
        check_team(team_id)
        with self._database.begin() as session:
            stored = role_store.list_roles(session=session, team_id=team_id)
        if stored:
            entries = tuple(
                RoleEntry(row.user_id, row.role, row.granted_by, row.granted_at)
                for row in sorted(stored, key=lambda row: (row.role != "admin", row.user_id))
            )
            return RoleListing(team_id, "database", entries)
        environment = [RoleEntry(user, "admin") for user in sorted(self._roles.admins)]
        environment += [RoleEntry(user, "moderator") for user in sorted(self._roles.moderators)]
        return RoleListing(team_id, "environment", tuple(environment))

    def _check(self, by: str, team_id: str) -> None:
        if not self.can_manage(by, team_id):
            raise NotAllowedError(NOT_ADMIN)

    def _audit(
        self,
        session: Any,
        action: str,
        team_id: str,
        user_id: str,
        role: str,
        by: str,
        *,
        kept: bool = False,
    ) -> None:
        details: dict[str, Any] = {"team": team_id, "user": user_id, "role": role}
        details["via"] = "cli" if by == CLI_ACTOR else "slack"
        if kept:
            details["reason"] = "first stored role: the granting admin stays an admin"
        audit.record_audit(
            session=session,
            actor=by,
            action=action,
            subject=f"roles/{team_id}/{user_id}",
            details=details,
        )
