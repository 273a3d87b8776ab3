"""``bertbot review suspects|clear-suspect|label-suspect`` and ``bertbot annotators``.

What the label check holds out of retrains, and the decisions that release it. Decisions
name an admin (``--by``, one of BERTBOT_ADMINS) and are audited.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from bertbot.commands import CommandError, add_command
from bertbot.commands.common import open_database
from bertbot.settings import Settings

if TYPE_CHECKING:
    from bot.services.label_quality import AnnotatorQuality, LabelQualityService, SuspectItem

STATUSES = ("held", "cleared", "confirmed", "all")
BY_HELP = "the admin deciding (a Slack user id in BERTBOT_ADMINS); audited"


def _service(settings: Settings) -> LabelQualityService:
    from bot.services.label_quality import LabelQualityService
    from bot.services.roles import Roles

    return LabelQualityService(
        open_database(settings),
        settings.task_specs,
        Roles.of(admins=settings.admins, moderators=settings.moderators),
    )


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _suspect_line(item: SuspectItem) -> str:
    text = " ".join(item.text.split())[:60]
    suggested = item.suggested_label or "-"
    p = "-" if item.given_probability is None else f"{item.given_probability:.2f}"
    decided = f" ({item.status} by {item.decided_by})" if item.decided_by else ""
    return (
        f"{item.id:>6}  {item.annotator:<12} {item.given_label:<10} {suggested:<10} {p:>5}  "
        f"{item.reason[:32]:<32} {text}{decided}"
    )


def _run(args: argparse.Namespace, settings: Settings, action: str) -> int:
    from bot.services.errors import BotError
    from storage.enums import SuspectStatus

    service = _service(settings)
    try:
        if action == "suspects":
            status = None if args.status == "all" else SuspectStatus(args.status)
            items = service.suspects(args.task, status)
            if args.json:
                print(json.dumps([i.as_dict() for i in items], ensure_ascii=False))
                return 0
            print(f"{'id':>6}  {'annotator':<12} {'given':<10} {'suggested':<10} {'p':>5}  reason")
            for item in items:
                print(_suspect_line(item))
            print(f"{len(items)} {args.status} suspect(s) of {args.task}")
            return 0
        if action == "clear-suspect":
            item = service.clear_suspect(args.id, by=args.by)
        elif action == "label-suspect":
            item = service.relabel_suspect(args.id, args.label, by=args.by)
        elif action == "annotators":
            if args.task is None:
                raise CommandError(f"name the task: --task {'|'.join(settings.task_specs)}")
            _print_annotators(service.annotators(args.task), args.json)
            return 0
        else:  # annotators clear
            flag = service.clear_annotator(args.task, args.annotator, by=args.by)
            result = {"task": args.task, "annotator": args.annotator, "flag": flag}
            if args.json:
                print(json.dumps(result | {"cleared_by": args.by}))
            else:
                print(
                    f"{args.annotator}'s flag on {args.task} cleared by {args.by}: "
                    "their corrections train again"
                )
            return 0
    except BotError as exc:
        raise CommandError(str(exc)) from exc
    if args.json:
        print(json.dumps(item.as_dict(), ensure_ascii=False))
    else:
        print(f"suspect {item.id} {item.status} by {item.decided_by}: {_suspect_line(item)}")
    return 0


def _print_annotators(rows: list[AnnotatorQuality], as_json: bool) -> None:
    if as_json:
        print(json.dumps([row.as_dict() for row in rows]))
        return
    print(
        f"{'annotator':<14} {'corrections':>11} {'kappa':>6} {'pairs':>5} {'oof agree':>9} "
        f"{'suspects':>8} {'rate':>5}  flagged"
    )
    for row in rows:
        kappa = "-" if row.kappa is None else f"{row.kappa:.2f}"
        print(
            f"{row.annotator:<14} {row.corrections:>11} {kappa:>6} {row.kappa_pairs:>5} "
            f"{_percent(row.oof_agreement):>9} {row.suspects:>8} {_percent(row.suspect_rate):>5}  "
            f"{'FLAGGED (held out)' if row.flagged else '-'}"
        )


def _suspects(args: argparse.Namespace, settings: Settings) -> int:
    return _run(args, settings, "suspects")


def _clear_suspect(args: argparse.Namespace, settings: Settings) -> int:
    return _run(args, settings, "clear-suspect")


def _label_suspect(args: argparse.Namespace, settings: Settings) -> int:
    return _run(args, settings, "label-suspect")


def _annotators(args: argparse.Namespace, settings: Settings) -> int:
    return _run(args, settings, "annotators")


def _clear_annotator(args: argparse.Namespace, settings: Settings) -> int:
    return _run(args, settings, "annotators-clear")


def add_review_actions(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The suspects' actions of ``bertbot review`` (the group may hold others)."""
    listing = add_command(
        actions,
        "suspects",
        _suspects,
        "corrections held out of retrains as likely label errors",
        "Corrections the label check before each retrain doubted (confident learning on\n"
        "out-of-fold predictions), or whose batch the gate found no better than chance. They\n"
        "are held out of training and of the gate's eval until an admin clears them\n"
        "(clear-suspect) or replaces the label (label-suspect). Nothing is deleted.",
    )
    listing.add_argument("--task", required=True, help="spam, sentiment, or a configured task")
    listing.add_argument("--status", choices=STATUSES, default="held", help="default: held")
    clear = add_command(
        actions, "clear-suspect", _clear_suspect, "keep a suspect's label: it trains again"
    )
    relabel = add_command(
        actions,
        "label-suspect",
        _label_suspect,
        "replace a suspect's label with an admin's (stored as an admin annotation)",
    )
    relabel.add_argument("--label", required=True, help="the right label")
    for parser in (clear, relabel):
        parser.add_argument("id", type=int, help="the suspect's id (review suspects)")
        parser.add_argument("--by", required=True, help=BY_HELP)
    for parser in (listing, clear, relabel):
        parser.add_argument("--json", action="store_true", help="print JSON")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``bertbot annotators`` (the suspects' actions join ``bertbot review``: see
    :func:`add_review_actions`, called by :mod:`bertbot.commands.review`)."""
    group = add_command(
        commands,
        "annotators",
        _annotators,
        "annotator quality per task: agreement, suspects, flags",
        "Per annotator (Slack user id): corrections, Cohen's kappa with other moderators over\n"
        "texts both labelled, agreement with the latest label check's out-of-fold\n"
        "predictions, suspects and their rate, and whether they are flagged: suspect at least\n"
        "BERTBOT_QUALITY__FLAG_RATIO times as often as the others pooled, with at least\n"
        "BERTBOT_QUALITY__FLAG_MIN_CORRECTIONS corrections and a one-sided binomial p below\n"
        "BERTBOT_QUALITY__FLAG_P_VALUE (a lone annotator never is). A flagged annotator's\n"
        "corrections are held out of retrains until an admin clears the flag.",
    )
    group.add_argument("--task", help="spam, sentiment, or a configured task")
    group.add_argument("--json", action="store_true", help="print a JSON list")
    actions = group.add_subparsers(dest="annotators_command", metavar="ACTION")
    clear = add_command(
        actions,
        "clear",
        _clear_annotator,
        "clear an annotator's flag: their corrections train again (audited)",
    )
    clear.add_argument("--task", required=True, help="the task")
    clear.add_argument("--annotator", required=True, help="the flagged Slack user id")
    clear.add_argument("--by", required=True, help=BY_HELP)
    clear.add_argument("--json", action="store_true", help="print JSON")
