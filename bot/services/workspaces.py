"""Uninstalls: a workspace's tokens go at once, its data after the retention.

``app_uninstalled`` and ``tokens_revoked`` call :meth:`WorkspaceService.uninstalled`: the
workspace's installation and bot rows (with their tokens) are deleted from the installation
store and the time is recorded, audited. :meth:`WorkspaceService.purge_due` (``bertbot
workspaces purge``) deletes the messages, predictions and corrections of workspaces that
uninstalled longer than the retention ago. Installing again before then cancels the purge.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from slack_sdk.oauth.installation_store import InstallationStore

from storage import audit, workspaces
from storage.db import Database
from storage.enums import utcnow
from storage.workspaces import PurgeCounts, UninstallRecord

logger = logging.getLogger(__name__)

# The audit actor of what Slack's events and the purge do (no user asked for them).
SLACK_ACTOR = "slack"
PURGE_ACTOR = "retention"
UNINSTALL_REASONS = frozenset({"app_uninstalled", "tokens_revoked"})


@dataclass(frozen=True)
class PurgeReport:
    """What a purge did (or, with ``dry_run``, would do)."""

    retention_days: float
    cutoff: datetime
    dry_run: bool
    purged: tuple[PurgeCounts, ...]
    due: tuple[UninstallRecord, ...]


class WorkspaceService:
    """Workspaces leaving: tokens deleted at once, data purged after the retention."""

    def __init__(
        self,
        database: Database,
        installations: InstallationStore | None = None,
        *,
        retention: timedelta = timedelta(days=30),
    ) -> None:
        """Configure the service.

        Args:
            database: Where uninstalls, the audit log and the workspace's data are.
            installations: The OAuth installation store (None in single-workspace mode:
                there is no stored token to delete).
            retention: How long a workspace's data stays after it uninstalled.
        """
        self._database = database
        self._installations = installations
        self.retention = retention

    def uninstalled(self, team_id: str, *, reason: str, event_id: str | None = None) -> None:
        """Delete a workspace's tokens now and record when it left (audited).

        Args:
            team_id: The workspace.
            reason: ``app_uninstalled`` or ``tokens_revoked``.
            event_id: The Slack event, for the audit entry.
        """
        if reason not in UNINSTALL_REASONS:
            raise ValueError(f"unknown uninstall reason {reason!r}")
        if self._installations is not None:
            self._installations.delete_all(enterprise_id=None, team_id=team_id)
        with self._database.begin() as session:
            record = workspaces.record_uninstall(session=session, team_id=team_id, reason=reason)
            audit.record_audit(
                session=session,
                actor=SLACK_ACTOR,
                action="workspace.uninstall",
                subject=f"team/{team_id}",
                details={
                    "reason": reason,
                    "event_id": event_id,
                    "purge_after": (record.uninstalled_at + self.retention).isoformat(),
                    "tokens_deleted": self._installations is not None,
                },
            )
        logger.info("workspace %s: %s; tokens deleted, data kept until the purge", team_id, reason)

    def purge_due(self, *, now: datetime | None = None, dry_run: bool = False) -> PurgeReport:
        """Purge the data of every workspace that uninstalled more than the retention ago.

        Each workspace is purged in its own unit of work, with an audit entry.
        """
        cutoff = (now or utcnow()) - self.retention
        with self._database.begin() as session:
            due = tuple(workspaces.due_purges(session=session, uninstalled_before=cutoff))
        purged: list[PurgeCounts] = []
        if not dry_run:
            for record in due:
                with self._database.begin() as session:
                    counts = workspaces.purge_workspace(
                        session=session, team_id=record.team_id, now=now
                    )
                    audit.record_audit(
                        session=session,
                        actor=PURGE_ACTOR,
                        action="workspace.purge",
                        subject=f"team/{record.team_id}",
                        details={
                            "uninstalled_at": record.uninstalled_at.isoformat(),
                            "messages": counts.messages,
                            "predictions": counts.predictions,
                            "corrections": counts.corrections,
                        },
                    )
                purged.append(counts)
                logger.info("purged workspace %s: %s", record.team_id, counts)
        return PurgeReport(
            retention_days=self.retention.total_seconds() / 86400,
            cutoff=cutoff,
            dry_run=dry_run,
            purged=tuple(purged),
            due=due,
        )

    def uninstalls(self) -> list[UninstallRecord]:
        with self._database.begin() as session:
            return workspaces.list_uninstalls(session=session)
