"""``bertbot review disputes`` and ``bertbot review decide``: second-opinion disputes.

A dispute is a correction a second moderator labelled differently; its text is held out of
training until an admin decides. Deciding here is the same as the admin's button in App
Home: a label of source ``admin`` (the effective label), the dispute closed, an audit entry.
``--by`` names the admin (one of BERTBOT_ADMINS).
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from bertbot.commands import CommandError, add_command
from bertbot.commands.common import open_database, team_option
from bertbot.settings import Settings

if TYPE_CHECKING:
    from bot.services.second_opinion import DisputeItem, SecondOpinionService

_TEXT_CHARS = 60


def _service(settings: Settings) -> SecondOpinionService:
    from bertbot.services import roles
    from bot.services.second_opinion import SecondOpinionService

    database = open_database(settings)
    return SecondOpinionService(database, settings.task_specs, roles(settings, database))


def _line(item: DisputeItem) -> str:
    text = " ".join(item.text.split())
    if len(text) > _TEXT_CHARS:
        text = text[: _TEXT_CHARS - 1] + "…"
    labels = (
        f"{item.first_label} ({item.first_annotator}) vs {item.second_label} "
        f"({item.second_annotator})"
    )
    return f"{item.request_id:>5}  {item.task.name:<10} {labels:<44} {item.reason:<30} {text}"


def _disputes(args: argparse.Namespace, settings: Settings) -> int:
    from bot.services.errors import BotError

    try:
        items = _service(settings).disputes(args.task, team_option(args.team))
    except BotError as exc:
        raise CommandError(str(exc)) from exc
    if args.json:
        print(json.dumps([item.as_dict() for item in items]))
        return 0
    if not items:
        print(f"No disputes for {args.task}.")
        return 0
    print(f"{'id':>5}  {'task':<10} {'labels (by)':<44} {'reason':<30} text")
    for item in items:
        print(_line(item))
    return 0


def _decide(args: argparse.Namespace, settings: Settings) -> int:
    from bot.services.errors import BotError, NotAllowedError

    try:
        outcome = _service(settings).decide(
            user_id=args.by,
            request_id=args.dispute_id,
            label=args.label,
            team_id=team_option(args.team),
        )
    except NotAllowedError as exc:
        where = (
            f"an admin of {args.team} (`bertbot roles list --team {args.team}`)"
            if args.team
            else "one of BERTBOT_ADMINS (or give --team T for a workspace's stored admins)"
        )
        raise CommandError(f"{exc} --by {args.by!r} is not {where}") from exc
    except BotError as exc:
        raise CommandError(str(exc)) from exc
    if args.json:
        print(json.dumps(outcome.as_dict()))
        return 0
    again = "" if outcome.created else " (already decided so)"
    print(
        f"Dispute {outcome.request_id} ({outcome.task.name}) decided{again}: {outcome.label}, "
        f"by {outcome.by} at {outcome.at:%Y-%m-%d %H:%M} UTC. The text trains again."
    )
    return 0


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``disputes`` and ``decide`` to the ``review`` group's subcommands."""
    disputes = add_command(
        actions,
        "disputes",
        _disputes,
        "second-opinion disputes waiting for an admin (texts held out of training)",
        "Corrections a second moderator labelled differently, oldest first, with both labels\n"
        "and who gave them. Their texts are held out of training until an admin decides\n"
        "(`bertbot review decide`, or the Disputes section of an admin's App Home).",
    )
    disputes.add_argument("--task", required=True, help="spam, sentiment, or a configured task")
    disputes.add_argument(
        "--team", metavar="T", help="only this workspace's disputes (default: every workspace's)"
    )
    disputes.add_argument("--json", action="store_true", help="print JSON")
    decide = add_command(
        actions,
        "decide",
        _decide,
        "decide a dispute: an admin's label becomes the effective one",
        "Stores LABEL as an admin's annotation (the latest human label wins), closes the\n"
        "dispute and audits it. The text is no longer held out of training.",
    )
    decide.add_argument("dispute_id", type=int, metavar="DISPUTE_ID", help="as listed by disputes")
    decide.add_argument("label", metavar="LABEL", help="one of the task's labels")
    decide.add_argument(
        "--by", required=True, metavar="NAME", help="the deciding admin's Slack user id"
    )
    decide.add_argument(
        "--team",
        metavar="T",
        help="the dispute's workspace: --by must be its admin (default: BERTBOT_ADMINS)",
    )
    decide.add_argument("--json", action="store_true", help="print JSON")
