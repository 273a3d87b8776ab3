"""``bertbot inbox``: see and act on acknowledged Slack events that wait, fail or died."""

from __future__ import annotations

import argparse
import json
from typing import Any

from bertbot.commands import CommandError, add_command
from bertbot.commands.common import open_database, say
from bertbot.settings import Settings
from bot.ui.status import inbox_line
from storage.enums import InboxStatus, utcnow
from storage.records import InboxRecord


def _status(args: argparse.Namespace, settings: Settings) -> int:
    from storage import inbox

    database = open_database(settings)
    with database.begin() as session:
        stats = inbox.stats(session=session)
    if args.json:
        print(
            json.dumps(
                {
                    "pending": stats.pending,
                    "working": stats.working,
                    "dead": stats.dead,
                    "done": stats.done,
                    "oldest_waiting_at": stats.oldest_waiting_at.isoformat()
                    if stats.oldest_waiting_at
                    else None,
                }
            )
        )
    else:
        print(f"inbox: {inbox_line(stats, utcnow())}")
    return 1 if stats.dead else 0


def _item_json(item: InboxRecord) -> dict[str, Any]:
    return {
        "id": item.id,
        "event_id": item.event_id,
        "event_type": item.event_type,
        "team_id": item.team_id,
        "status": item.status.value,
        "attempts": item.attempts,
        "received_at": item.received_at.isoformat(),
        "available_at": item.available_at.isoformat(),
        "last_error": item.last_error,
    }


def _list(args: argparse.Namespace, settings: Settings) -> int:
    from storage import inbox

    database = open_database(settings)
    status = InboxStatus.DEAD if args.dead else None
    with database.begin() as session:
        items = inbox.list_items(session=session, status=status, limit=args.limit)
    if args.json:
        print(json.dumps([_item_json(item) for item in items]))
        return 0
    if not items:
        say("no dead letters" if args.dead else "the inbox is empty")
        return 0
    print(f"{'id':>6}  {'status':<8} {'tries':>5}  {'received':<20} {'event':<28} last error")
    for item in items:
        print(
            f"{item.id:>6}  {item.status.value:<8} {item.attempts:>5}  "
            f"{item.received_at:%Y-%m-%d %H:%M:%S}  "
            f"{(item.event_type + ' ' + item.event_id)[:28]:<28} "
            f"{(item.last_error or '').splitlines()[0][:60] if item.last_error else ''}"
        )
    return 0


def _retry(args: argparse.Namespace, settings: Settings) -> int:
    from storage import inbox

    if (args.id is None) == (not args.dead):
        raise CommandError("name one dead letter (bertbot inbox retry ID) or all (--dead)")
    database = open_database(settings)
    with database.begin() as session:
        if args.id is not None:
            item = inbox.get_item(session=session, item_id=args.id)
            if item.status != InboxStatus.DEAD:
                raise CommandError(
                    f"inbox item {args.id} is {item.status.value}, not dead; nothing to retry"
                )
        count = inbox.retry(session=session, item_id=args.id)
    print(f"{count} event(s) will be handled again by the serving processes")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = add_command(
        commands,
        "inbox",
        None,
        "acknowledged Slack events: waiting, failed, dead letters",
        "Every Slack event is stored before it is acknowledged and handled after, by the\n"
        "serving processes (retried with back-off; dead-lettered after\n"
        "BERTBOT_INBOX__MAX_ATTEMPTS). See what waits and put dead letters back.",
    )
    actions = group.add_subparsers(dest="inbox_command", metavar="ACTION", required=True)
    status = add_command(
        actions, "status", _status, "waiting, oldest, dead letters (exit 1 if any are dead)"
    )
    listing = add_command(actions, "list", _list, "the newest inbox rows")
    listing.add_argument("--dead", action="store_true", help="dead letters only")
    listing.add_argument("--limit", type=int, default=50, help="rows to show (default 50)")
    for parser in (status, listing):
        parser.add_argument("--json", action="store_true", help="print JSON")
    retry = add_command(actions, "retry", _retry, "handle a dead letter (or --dead: all) again")
    retry.add_argument("id", type=int, nargs="?", help="the inbox row's id (bertbot inbox list)")
    retry.add_argument("--dead", action="store_true", help="every dead letter")
