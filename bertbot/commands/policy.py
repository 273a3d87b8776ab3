"""``bertbot policy``: the moderation policy per channel and task (list, set, clear).

Changes go through the same service as ``/bertbot policy`` and are audited with the actor
``cli`` (whoever can run this owns the database).
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from bertbot.commands import CommandError, add_command
from bertbot.commands.common import open_database
from bertbot.settings import Settings

if TYPE_CHECKING:
    from bot.services.policy import EffectivePolicy, PolicyService

ACTIONS = ("log", "alert", "react", "notify", "remove")
_WIDTHS = (12, 10, 5, 9, 24, 8)


def _service(settings: Settings) -> PolicyService:
    from bertbot.services import policy_defaults
    from bot.services.policy import PolicyService
    from bot.services.roles import Roles

    return PolicyService(
        open_database(settings),
        settings.task_specs,
        Roles.of(admins=settings.admins, moderators=settings.moderators),
        policy_defaults(settings),
    )


def _line(policy: EffectivePolicy) -> str:
    action = policy.action.value
    if policy.requested is not policy.action:
        action = f"{action} (asked: {policy.requested.value})"
    exempt = ",".join(policy.exempt) or "-"
    source = "channel" if policy.stored else "default"
    return (
        f"{policy.channel_id:<12} {policy.task:<10} {'on' if policy.watch else 'off':<5} "
        f"{policy.threshold:<9.2f} {action:<24} {source:<8} {exempt}"
    )


def _print(policies: list[EffectivePolicy], as_json: bool) -> None:
    if as_json:
        print(json.dumps([p.as_dict() for p in policies]))
        return
    header = ("channel", "task", "watch", "threshold", "action", "source")
    print(
        " ".join(f"{name:<{width}}" for name, width in zip(header, _WIDTHS, strict=True)), "exempt"
    )
    for policy in policies:
        print(_line(policy))
    notes = sorted({p.note for p in policies if p.note})
    for note in notes:
        print(f"note: {note}")


def _run(action: str, args: argparse.Namespace, settings: Settings) -> int:
    from bot.services.errors import BotError
    from bot.services.policy import CLI_ACTOR

    service = _service(settings)
    try:
        if action == "list":
            _print(service.listed(args.channel), args.json)
            return 0
        if args.task is None:
            raise CommandError(f"name the task: --task {'|'.join(settings.task_specs)}")
        if action == "clear":
            result = service.clear(actor=CLI_ACTOR, channel_id=args.channel, task=args.task)
        else:
            watch = None if args.watch is None else args.watch == "on"
            changes = (watch, args.threshold, args.action, args.exempt)
            if all(value is None for value in changes):
                raise CommandError(
                    "nothing to set: give --watch, --threshold, --action or --exempt"
                )
            result = service.set(
                actor=CLI_ACTOR,
                channel_id=args.channel,
                task=args.task,
                watch=watch,
                threshold=args.threshold,
                action=args.action,
                exempt=[] if args.exempt == ["none"] else args.exempt,
            )
    except BotError as exc:
        raise CommandError(str(exc)) from exc
    _print([result], args.json)
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    return _run("list", args, settings)


def _set(args: argparse.Namespace, settings: Settings) -> int:
    return _run("set", args, settings)


def _clear(args: argparse.Namespace, settings: Settings) -> int:
    return _run("clear", args, settings)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = add_command(
        commands,
        "policy",
        None,
        "moderation policy per channel and task: watch, threshold, action, exemptions",
        "A channel without a policy for a task follows the workspace default\n"
        "(BERTBOT_ALERT_THRESHOLD, BERTBOT_ALERT_ACTION). Actions: log (store only), alert\n"
        "(moderators' channel), react (and an emoji on the message), notify (and a private\n"
        "note to the author, with an Appeal button), remove (delete it with\n"
        "SLACK_ADMIN_USER_TOKEN and notify; without the token it falls back to alert).\n"
        "Every change is audited; admins change it in Slack with /bertbot policy.",
    )
    actions = group.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    listing = add_command(
        actions, "list", _list, "the workspace default and every channel's policy"
    )
    listing.add_argument("--channel", help="one channel's policy per task (a channel id)")
    setting = add_command(
        actions, "set", _set, "change a channel's policy for a task (what is not given stays)"
    )
    clearing = add_command(
        actions, "clear", _clear, "drop a channel's policy for a task (the default applies)"
    )
    for parser in (setting, clearing):
        parser.add_argument("--channel", required=True, help="the channel id (C012ABCDEF)")
        parser.add_argument("--task", required=True, help="the task (spam, sentiment, ...)")
    setting.add_argument("--watch", choices=("on", "off"), help="classify its messages at all")
    setting.add_argument(
        "--threshold", type=float, help="act when P(alert label) is at least this (0-1]"
    )
    setting.add_argument("--action", choices=ACTIONS, help="what an alert does")
    setting.add_argument(
        "--exempt",
        action="append",
        metavar="USER",
        help="a user or user group id left alone (repeat; replaces the list; 'none' empties it)",
    )
    for parser in (listing, setting, clearing):
        parser.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(task=None)
