"""``bertbot workspaces``: uninstalled workspaces, and purging their data after the retention."""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from typing import Any

from bertbot.commands import CommandError, add_command
from bertbot.commands.common import open_database
from bertbot.settings import Settings


def _service(args: argparse.Namespace, settings: Settings) -> Any:
    from bertbot.workspaces import workspace_service

    service = workspace_service(settings, open_database(settings))
    days = getattr(args, "retention_days", None)
    if days is not None:
        if days < 0:
            raise CommandError("--retention-days must be 0 or more")
        service.retention = timedelta(days=days)
    return service


def _list(args: argparse.Namespace, settings: Settings) -> int:
    service = _service(args, settings)
    rows = [
        {
            "team_id": record.team_id,
            "reason": record.reason,
            "uninstalled_at": record.uninstalled_at.isoformat(),
            "purge_after": (record.uninstalled_at + service.retention).isoformat(),
            "purged_at": record.purged_at.isoformat() if record.purged_at else None,
        }
        for record in service.uninstalls()
    ]
    if args.json:
        print(json.dumps(rows))
    elif not rows:
        print("no workspace has uninstalled bertbot")
    for row in [] if args.json else rows:
        state = (
            f"purged {row['purged_at']}"
            if row["purged_at"]
            else f"purge after {row['purge_after']}"
        )
        print(f"{row['team_id']}: {row['reason']} at {row['uninstalled_at']}; {state}")
    return 0


def _purge(args: argparse.Namespace, settings: Settings) -> int:
    report = _service(args, settings).purge_due(dry_run=args.dry_run)
    purged = [
        {
            "team_id": c.team_id,
            "messages": c.messages,
            "predictions": c.predictions,
            "corrections": c.corrections,
        }
        for c in report.purged
    ]
    if args.json:
        print(
            json.dumps(
                {
                    "retention_days": report.retention_days,
                    "uninstalled_before": report.cutoff.isoformat(),
                    "dry_run": report.dry_run,
                    "due": [record.team_id for record in report.due],
                    "purged": purged,
                }
            )
        )
        return 0
    if not report.due:
        print(f"nothing to purge (no workspace uninstalled before {report.cutoff:%Y-%m-%d %H:%M})")
    elif report.dry_run:
        print("would purge: " + ", ".join(record.team_id for record in report.due))
    for row in purged:
        print(
            f"purged {row['team_id']}: {row['messages']} messages, {row['predictions']} "
            f"predictions, {row['corrections']} corrections"
        )
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = add_command(
        commands,
        "workspaces",
        None,
        "workspaces that uninstalled bertbot, and purging their data",
        "When a workspace uninstalls bertbot (app_uninstalled, tokens_revoked), its tokens\n"
        "are deleted at once; its messages, predictions and corrections stay until\n"
        "BERTBOT_OAUTH__RETENTION_DAYS (default 30) have passed. `purge` deletes them then\n"
        "(audited); run it daily (cron). Installing again before cancels the purge.",
    )
    actions = group.add_subparsers(dest="workspaces_command", metavar="ACTION", required=True)
    listing = add_command(actions, "list", _list, "uninstalled workspaces and their purge dates")
    purge = add_command(
        actions, "purge", _purge, "purge the data of workspaces uninstalled before the retention"
    )
    purge.add_argument("--dry-run", action="store_true", help="say what would go; delete nothing")
    for parser in (listing, purge):
        parser.add_argument(
            "--retention-days",
            type=float,
            metavar="DAYS",
            help="instead of BERTBOT_OAUTH__RETENTION_DAYS",
        )
        parser.add_argument("--json", action="store_true", help="print JSON")
