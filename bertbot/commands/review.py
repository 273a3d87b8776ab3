"""``bertbot review``: the moderators' review work from the command line.

``next`` prints what the queue asks next; ``disputes``/``decide`` come from
:mod:`bertbot.commands.review_disputes`; ``suspects``/``clear-suspect``/``label-suspect`` from
:mod:`bertbot.commands.label_quality`. Other subcommands join the group through
:func:`register`'s ``actions`` (one ``add_command`` or ``register(actions)`` each).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from bertbot.commands import CommandError, add_command, label_quality, review_disputes
from bertbot.commands.common import ProgressBar, open_database, say, task_spec, team_option
from bertbot.settings import Settings

STRATEGIES = ("active", "uncertainty", "random")
MAX_LIMIT = 10_000


class _OneModel:
    """A ``ModelSource`` over one loaded classifier (or none)."""

    def __init__(self, task: str, model: Any | None) -> None:
        self._task = task
        self._model = model

    def get(self, task: str) -> Any | None:
        return self._model if task == self._task else None


def review_service(settings: Settings, database: Any, models: Any) -> Any:
    """The review queue over ``models`` with the configured options and roles."""
    from bertbot.services import review_options
    from bot.services.review_queue import ReviewQueueService
    from bot.services.roles import Roles

    return ReviewQueueService(
        database,
        models,
        settings.task_specs,
        Roles.of(admins=settings.admins, moderators=settings.moderators),
        review_options(settings),
    )


def review_digest(settings: Settings, database: Any) -> Any:
    """Moderators' review digest over the bot's Slack client; None without SLACK_BOT_TOKEN.

    It only counts the queue, so it needs no model.
    """
    from bertbot.services import roles as workspace_roles
    from bot.app import make_client
    from bot.services.review_digest import ReviewDigest

    token = settings.slack.bot_token
    if token is None:
        return None
    client = make_client(token.get_secret_value(), base_url=settings.slack.api_url)
    return ReviewDigest(
        database,
        client,
        review_service(settings, database, _OneModel("", None)),
        settings.moderators,
        roles=workspace_roles(settings, database),
    )


def _next(args: argparse.Namespace, settings: Settings) -> int:
    from bertbot.commands.messages import production_model
    from bot.services.errors import BotError

    spec = task_spec(settings, args.task)
    if spec.name not in settings.task_specs:
        raise CommandError(
            f"{spec.name} is not an active task (BERTBOT_TASKS: {', '.join(settings.tasks)})"
        )
    if not 1 <= args.limit <= MAX_LIMIT:
        raise CommandError(f"--limit must be between 1 and {MAX_LIMIT}, not {args.limit}")
    database = open_database(settings)
    model = None
    if args.strategy == "active":
        model = production_model(settings, database, spec.name)
        if model is None:
            say(f"{spec.name} has no production model: the queue is chosen by uncertainty only")
    service = review_service(settings, database, _OneModel(spec.name, model))
    bar = ProgressBar()

    def progress(done: int, total: int) -> None:
        bar.update(done, total, "embedded")

    try:
        items = service.next(
            spec.name,
            user_id=args.user,
            limit=args.limit,
            strategy=args.strategy,
            seed=args.seed,
            progress=progress,
            team_id=team_option(args.team),
        )
    except BotError as exc:
        raise CommandError(str(exc)) from exc
    finally:
        bar.close()
    if args.json:
        print(json.dumps([item.to_json() for item in items], ensure_ascii=False))
        return 0
    if not items:
        print(f"nothing waits for review in {spec.name}")
    for item in items:
        text = " ".join(item.message.text.split())
        more = f" (+{len(item.duplicates)} alike)" if item.duplicates else ""
        print(
            f"{item.message.id:>8}  {item.prediction.label:<12} {item.top_probability:5.1%}  "
            f"{item.reason}{more}\n          {text[:100]}"
        )
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = add_command(
        commands,
        "review",
        None,
        "the moderators' review: the queue, second-opinion disputes, held-out suspects",
    )
    actions = group.add_subparsers(dest="review_command", metavar="ACTION", required=True)
    review_disputes.register(actions)
    label_quality.add_review_actions(actions)
    command = add_command(
        actions,
        "next",
        _next,
        "print what the review queue asks next for a task",
        'What App Home\'s "Needs review" would ask: stored channel messages without a\n'
        "moderator's label, received within BERTBOT_REVIEW__MAX_AGE_DAYS, not passed on by\n"
        "two moderators. Drift-flagged messages lead; then, by --strategy:\n"
        "  active       uncertainty and diversity over the production model's embeddings\n"
        "               (the default; uncertainty only when the model cannot embed)\n"
        "  uncertainty  the smallest margin between the two most probable labels\n"
        "  random       a seeded sample\n"
        "Near-duplicates are asked once. The BERTBOT_REVIEW__POOL_SIZE least sure candidates\n"
        "are considered; embedding them shows progress on stderr.",
    )
    command.add_argument("--task", required=True, help="the task")
    command.add_argument("--limit", type=int, default=10, help="how many items (default 10)")
    command.add_argument(
        "--strategy", choices=STRATEGIES, default="active", help="how to choose (default active)"
    )
    command.add_argument("--seed", type=int, default=0, help="the random strategy's seed")
    command.add_argument("--user", help="a moderator's Slack user id: leave out what they skipped")
    command.add_argument(
        "--team", metavar="T", help="only this workspace's messages (default: every workspace's)"
    )
    command.add_argument(
        "--json",
        action="store_true",
        help="print a JSON list of {message_id, text, predicted_label, probabilities, reason, "
        "duplicates, ...}",
    )
