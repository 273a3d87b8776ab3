"""Label buttons (and selects), "Skip" and "Not sure" in the Home tab's "Needs review" queue.

A click stores a correction through
:meth:`bot.services.corrections.CorrectionService.correct`, the path every labelling control
uses (role checked server-side, idempotent, linked to the prediction and its model
version), then re-publishes the tab with the outcome on top. A Home tab click has no
response_url, so a refusal is shown the same way.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.listeners.actions.label import correct_click, parse_click
from bot.listeners.events.home import publish_home
from bot.listeners.team import team_of
from bot.services.corrections import CorrectionService
from bot.services.errors import BotError
from bot.services.review_queue import ReviewQueueService
from bot.services.status import StatusService
from bot.ui import blocks
from bot.ui.home import (
    HOME_LABEL_ACTION_PREFIX,
    HOME_NOT_SURE_ACTION,
    HOME_RELABEL_ACTION,
    HOME_SKIP_ACTION,
    SKIP_KINDS,
    parse_skip_value,
)

HOME_LABEL_ACTIONS = re.compile(
    "^(" + re.escape(HOME_LABEL_ACTION_PREFIX) + r"[a-z0-9_]+|" + HOME_RELABEL_ACTION + ")$"
)


HOME_SKIP_ACTIONS = re.compile(f"^({HOME_SKIP_ACTION}|{HOME_NOT_SURE_ACTION})$")
_PASSED = {"skip": "Skipped", "not_sure": "Marked not sure"}


def register(
    app: App,
    corrections: CorrectionService,
    status: StatusService,
    review: ReviewQueueService | None = None,
) -> None:
    @app.action(HOME_LABEL_ACTIONS)
    def home_label_clicked(
        ack: Ack,
        body: dict[str, Any],
        action: dict[str, Any],
        client: WebClient,
        logger: logging.Logger,
    ) -> None:
        ack()
        click = parse_click(body, action)
        if click is None:
            logger.warning("ignoring a malformed Home label action %s", action.get("action_id"))
            return
        try:
            correction = correct_click(corrections, click, logger, "Home label")
        except BotError as exc:
            notice = f":warning: {blocks.escape(str(exc))}"
        else:
            if correction.created:
                notice = ":white_check_mark: " + blocks.labelled_text(correction, click.user_id)
            else:
                notice = ":information_source: " + blocks.repeated_text(correction)
        publish_home(client, status, click.user_id, logger, team_id=team_of(body), notice=notice)

    if review is None:
        return

    @app.action(HOME_SKIP_ACTIONS)
    def home_skip_clicked(
        ack: Ack,
        body: dict[str, Any],
        action: dict[str, Any],
        client: WebClient,
        logger: logging.Logger,
    ) -> None:
        """ "Skip" / "Not sure": the item leaves this moderator's queue (role checked)."""
        ack()
        user_id = (body.get("user") or {}).get("id")
        target = parse_skip_value(action.get("value"))
        kind = SKIP_KINDS.get(str(action.get("action_id")))
        if not user_id or target is None or kind is None:
            logger.warning("ignoring a malformed Home skip action %s", action.get("action_id"))
            return
        task, message_id = target
        try:
            review.skip(
                task=task,
                message_id=message_id,
                user_id=str(user_id),
                kind=kind,
                team_id=team_of(body),
            )
        except BotError as exc:
            notice = f":warning: {blocks.escape(str(exc))}"
        else:
            notice = (
                f":fast_forward: {_PASSED[kind]}: that message left your {blocks.escape(task)} "
                "queue (it leaves everyone's once a second moderator passes on it)."
            )
        publish_home(client, status, str(user_id), logger, team_id=team_of(body), notice=notice)
