"""``bertbot roles list|add|remove``: moderators and admins per Slack workspace.

Changes go through the service behind ``/bertbot roles`` and are audited with the actor
``cli`` (whoever can run this owns the database). A workspace with stored roles takes its
roles from them alone; without any, ``BERTBOT_ADMINS``/``BERTBOT_MODERATORS`` apply.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from bertbot.commands import CommandError, add_command
from bertbot.commands.common import open_database
from bertbot.settings import Settings

if TYPE_CHECKING:
    from bot.services.workspace_roles import RoleService

ROLES = ("moderator", "admin")


def _service(settings: Settings) -> RoleService:
    from bertbot.services import roles
    from bot.services.workspace_roles import RoleService

    database = open_database(settings)
    return RoleService(database, roles(settings, database))


def _list(args: argparse.Namespace, settings: Settings) -> int:
    from bot.services.errors import BotError

    try:
        listing = _service(settings).listing(args.team)
    except BotError as exc:
        raise CommandError(str(exc)) from exc
    if args.json:
        print(json.dumps(listing.to_json()))
        return 0
    print(f"{listing.team_id}: roles from the {listing.source}")
    if not listing.entries:
        print("  (none)")
    for entry in listing.entries:
        granted = (
            f"  granted by {entry.granted_by} at {entry.granted_at:%Y-%m-%d %H:%M} UTC"
            if entry.granted_at is not None
            else ""
        )
        print(f"  {entry.role:<10} {entry.user_id}{granted}")
    return 0


def _change(action: str, args: argparse.Namespace, settings: Settings) -> int:
    from bot.services.errors import BotError
    from bot.services.workspace_roles import CLI_ACTOR

    service = _service(settings)
    try:
        change = getattr(service, action)(
            team_id=args.team, user_id=args.user, role=args.role, by=CLI_ACTOR
        )
    except BotError as exc:
        raise CommandError(str(exc)) from exc
    if args.json:
        print(json.dumps(change.to_json()))
        return 0
    verb = "granted" if action == "add" else "removed"
    if change.changed:
        print(f"{verb}: {change.user_id} {change.role} in {change.team_id}")
    else:
        held = "already holds" if action == "add" else "does not hold"
        print(f"unchanged: {change.user_id} {held} {change.role} in {change.team_id}")
    if action == "add" and change.changed and len(service.listing(change.team_id).entries) == 1:
        print(
            f"note: {change.team_id} now takes its roles from the database only; "
            "BERTBOT_ADMINS and BERTBOT_MODERATORS no longer apply there"
        )
    return 0


def _add(args: argparse.Namespace, settings: Settings) -> int:
    return _change("add", args, settings)


def _remove(args: argparse.Namespace, settings: Settings) -> int:
    return _change("remove", args, settings)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = add_command(
        commands,
        "roles",
        None,
        "moderators and admins per Slack workspace (stored in the database, audited)",
        "Roles are per workspace (team id T…). A workspace with at least one stored role\n"
        "takes its admins and moderators from the stored roles alone; a workspace without\n"
        "any uses BERTBOT_ADMINS and BERTBOT_MODERATORS (the single-workspace default). A\n"
        "role in one workspace gives nothing in another. A workspace's admins manage its\n"
        "roles in Slack with /bertbot roles.",
    )
    actions = group.add_subparsers(dest="roles_command", metavar="ACTION", required=True)
    listing = add_command(actions, "list", _list, "a workspace's roles and where they come from")
    adding = add_command(actions, "add", _add, "grant a user a role in a workspace")
    removing = add_command(actions, "remove", _remove, "take a role in a workspace from a user")
    for parser in (listing, adding, removing):
        parser.add_argument("--team", required=True, metavar="T", help="the workspace (T012AB)")
    for parser in (adding, removing):
        parser.add_argument("--user", required=True, metavar="U", help="the Slack user id")
        parser.add_argument("--role", required=True, choices=ROLES, help="moderator or admin")
    for parser in (listing, adding, removing):
        parser.add_argument("--json", action="store_true", help="print JSON")
