"""Who may do what: admins and moderators by Slack user id, per workspace.

Checked server-side on every command and every click, for the workspace (team) the request
came from; a Slack message or button is never trusted to say who may act.

The rule, in one place (:meth:`Roles.for_team`): a workspace that has at least one role
stored in the database (``bertbot roles``, ``/bertbot roles``) takes its admins and
moderators from those rows alone; a workspace without any stored role, and a check made
for no workspace in particular (``team_id`` None: the CLI), uses the environment's
``BERTBOT_ADMINS`` and ``BERTBOT_MODERATORS``. So a single workspace configured from the
environment works as before, and a role granted in one workspace gives nothing in another.

Stored roles are read in a short unit of work of their own: check roles before opening a
unit of work, never inside one (SQLite allows one writer at a time).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from storage import workspace_roles as role_store
from storage.db import Database
from storage.workspace_roles import TeamRoles

RoleLookup = Callable[[str], TeamRoles]
"""A workspace's stored roles (both sets empty: it has none)."""

DATABASE = "database"
ENVIRONMENT = "environment"


@dataclass(frozen=True)
class Roles:
    """The environment's admins and moderators, and where a workspace's stored roles are.

    Attributes:
        admins: Slack user ids allowed to retrain, promote and roll back (and to label), in
            every workspace without stored roles.
        moderators: Slack user ids allowed to label, likewise.
        stored: Reads a workspace's stored roles (None: environment roles only).
    """

    admins: frozenset[str] = frozenset()
    moderators: frozenset[str] = frozenset()
    stored: RoleLookup | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(
        cls,
        *,
        admins: Iterable[str] = (),
        moderators: Iterable[str] = (),
        stored: RoleLookup | None = None,
    ) -> Roles:
        return cls(admins=frozenset(admins), moderators=frozenset(moderators), stored=stored)

    @classmethod
    def from_database(
        cls, database: Database, *, admins: Iterable[str] = (), moderators: Iterable[str] = ()
    ) -> Roles:
        """Environment roles, overridden per workspace by the roles stored in ``database``."""
        return cls.of(admins=admins, moderators=moderators, stored=_DatabaseLookup(database))

    def for_team(self, team_id: str | None) -> TeamRoles:
        """The admins and moderators of a workspace (see the module for the rule)."""
        if team_id and self.stored is not None:
            found = self.stored(team_id)
            if not found.empty:
                return found
        return TeamRoles(self.admins, self.moderators)

    def source(self, team_id: str | None) -> str:
        """Where a workspace's roles come from: ``database`` or ``environment``."""
        if team_id and self.stored is not None and not self.stored(team_id).empty:
            return DATABASE
        return ENVIRONMENT

    def is_admin(self, user_id: str | None, team_id: str | None = None) -> bool:
        return user_id is not None and user_id in self.for_team(team_id).admins

    def is_moderator(self, user_id: str | None, team_id: str | None = None) -> bool:
        return user_id is not None and user_id in self.for_team(team_id).moderators

    def can_label(self, user_id: str | None, team_id: str | None = None) -> bool:
        """Moderators and admins may label (correct) predictions."""
        if user_id is None:
            return False
        found = self.for_team(team_id)
        return user_id in found.moderators or user_id in found.admins

    def role_of(self, user_id: str | None, team_id: str | None = None) -> str:
        """``admin``, ``moderator`` or ``member`` (for logs and audit details)."""
        found = self.for_team(team_id)
        if user_id is not None and user_id in found.admins:
            return "admin"
        if user_id is not None and user_id in found.moderators:
            return "moderator"
        return "member"


@dataclass(frozen=True)
class _DatabaseLookup:
    """Reads a workspace's stored roles, one short unit of work per check (no cache, so a
    removed role stops working at once, in every process)."""

    database: Database

    def __call__(self, team_id: str) -> TeamRoles:
        with self.database.begin() as session:
            return role_store.team_roles(session=session, team_id=team_id)
