"""Workspaces installed through Slack's OAuth flow, and what an uninstall leaves behind.

slack_sdk's SQLAlchemy stores keep installations, bots and OAuth states in tables of their
own. Their definitions are slack_sdk's (``build_*_table``), registered here on bertbot's
metadata so that Alembic creates them (migration 0010) and the migration test compares them
like every other table; the stores are given the same table names. ``workspace_uninstalls``
records when a workspace uninstalled the app: its messages, predictions and corrections are
purged once that is older than the retention (``BERTBOT_OAUTH__RETENTION_DAYS``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from slack_sdk.oauth.installation_store.installation_store import InstallationStore
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store import OAuthStateStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
from sqlalchemy import CheckConstraint, Integer, String, UniqueConstraint, delete, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from storage._convert import to_record
from storage.db import Database
from storage.enums import utcnow
from storage.models import Annotation, Base, Message, Prediction

INSTALLATIONS_TABLE = "slack_installations"
BOTS_TABLE = "slack_bots"
OAUTH_STATES_TABLE = "slack_oauth_states"

# slack_sdk's own table definitions, on bertbot's metadata (migration 0010 creates them).
SLACK_INSTALLATIONS = SQLAlchemyInstallationStore.build_installations_table(
    Base.metadata, INSTALLATIONS_TABLE
)
SLACK_BOTS = SQLAlchemyInstallationStore.build_bots_table(Base.metadata, BOTS_TABLE)
SLACK_OAUTH_STATES = SQLAlchemyOAuthStateStore.build_oauth_states_table(
    Base.metadata, OAUTH_STATES_TABLE
)


class WorkspaceUninstall(Base):
    """A workspace that uninstalled the app (or revoked its tokens), and when.

    Its data is purged once ``uninstalled_at`` is older than the retention; installing
    again before that removes the row, and with it the pending purge.
    """

    __tablename__ = "workspace_uninstalls"

    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32))
    uninstalled_at: Mapped[datetime] = mapped_column(default=utcnow)
    purged_at: Mapped[datetime | None]


@dataclass(frozen=True)
class UninstallRecord:
    team_id: str
    reason: str
    uninstalled_at: datetime
    purged_at: datetime | None


@dataclass(frozen=True)
class PurgeCounts:
    """What one workspace's purge deleted."""

    team_id: str
    messages: int
    predictions: int
    corrections: int


class WorkspaceInstallationStore(SQLAlchemyInstallationStore):
    """slack_sdk's store on bertbot's tables; a new installation cancels a pending purge."""

    def save(self, installation: Installation) -> None:
        super().save(installation)
        if installation.team_id:
            with self.engine.begin() as connection:
                connection.execute(
                    delete(WorkspaceUninstall.__table__).where(  # type: ignore[arg-type]
                        WorkspaceUninstall.team_id == installation.team_id,
                        WorkspaceUninstall.purged_at.is_(None),
                    )
                )


def installation_store(database: Database, client_id: str) -> InstallationStore:
    """slack_sdk's SQLAlchemy installation store on this database (tables from migration 0010).

    Args:
        database: bertbot's database.
        client_id: The Slack app's client id (rows are kept per app).
    """
    return WorkspaceInstallationStore(
        client_id,
        database.engine,
        bots_table_name=BOTS_TABLE,
        installations_table_name=INSTALLATIONS_TABLE,
    )


def oauth_state_store(database: Database, expiration_seconds: int) -> OAuthStateStore:
    """slack_sdk's SQLAlchemy OAuth state store on this database; a state is single use.

    Args:
        database: bertbot's database.
        expiration_seconds: How long an issued state stays valid.
    """
    return SQLAlchemyOAuthStateStore(
        expiration_seconds, database.engine, table_name=OAUTH_STATES_TABLE
    )


def record_uninstall(
    *, session: Session, team_id: str, reason: str, now: datetime | None = None
) -> UninstallRecord:
    """Record that a workspace uninstalled the app (the first time counts until purged).

    Args:
        session: The unit of work.
        team_id: The workspace.
        reason: ``app_uninstalled`` or ``tokens_revoked``.
        now: When (default: now).
    """
    row = session.get(WorkspaceUninstall, team_id)
    when = now or utcnow()
    if row is None:
        row = WorkspaceUninstall(team_id=team_id, reason=reason, uninstalled_at=when)
        session.add(row)
    elif row.purged_at is not None:  # installed and uninstalled again after a purge
        row.reason, row.uninstalled_at, row.purged_at = reason, when, None
    session.flush()
    return to_record(UninstallRecord, row)


def list_uninstalls(*, session: Session) -> list[UninstallRecord]:
    """Every recorded uninstall, oldest first."""
    rows = session.scalars(select(WorkspaceUninstall).order_by(WorkspaceUninstall.uninstalled_at))
    return [to_record(UninstallRecord, row) for row in rows]


def due_purges(*, session: Session, uninstalled_before: datetime) -> list[UninstallRecord]:
    """Uninstalls not purged yet that happened before ``uninstalled_before``."""
    rows = session.scalars(
        select(WorkspaceUninstall)
        .where(
            WorkspaceUninstall.purged_at.is_(None),
            WorkspaceUninstall.uninstalled_at <= uninstalled_before,
        )
        .order_by(WorkspaceUninstall.uninstalled_at)
    )
    return [to_record(UninstallRecord, row) for row in rows]


def purge_workspace(*, session: Session, team_id: str, now: datetime | None = None) -> PurgeCounts:
    """Delete a workspace's messages, their predictions and the corrections made on them.

    Alerts, appeals, review flags and second opinions go with them (their foreign keys
    cascade). Marks the uninstall purged, if one is recorded.
    """
    messages = select(Message.id).where(Message.team_id == team_id).scalar_subquery()
    corrections = session.execute(
        delete(Annotation).where(Annotation.message_id.in_(messages))
    ).rowcount  # type: ignore[attr-defined]
    predictions = session.execute(
        delete(Prediction).where(Prediction.message_id.in_(messages))
    ).rowcount  # type: ignore[attr-defined]
    removed = session.execute(delete(Message).where(Message.team_id == team_id)).rowcount  # type: ignore[attr-defined]
    row = session.get(WorkspaceUninstall, team_id)
    if row is not None:
        row.purged_at = now or utcnow()
    session.flush()
    return PurgeCounts(team_id, int(removed or 0), int(predictions or 0), int(corrections or 0))


def count_workspace_messages(*, session: Session, team_id: str) -> int:
    """How many messages of a workspace are stored."""
    query = select(func.count()).select_from(Message).where(Message.team_id == team_id)
    return int(session.scalar(query) or 0)


class WorkspaceRole(Base):
    """A role held by a Slack user in one workspace (team), granted by an admin or the CLI.

    While a workspace has at least one row here, its roles come from this table alone;
    without any, the environment's ``BERTBOT_ADMINS``/``BERTBOT_MODERATORS`` apply (see
    :class:`bot.services.roles.Roles`). Removing a role deletes its row (audited).
    """

    __tablename__ = "workspace_roles"
    __table_args__ = (
        UniqueConstraint("team_id", "user_id", "role"),
        CheckConstraint("role IN ('moderator', 'admin')", name="known_role"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    granted_by: Mapped[str] = mapped_column(String(64))
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)
