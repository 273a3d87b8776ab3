"""The author's Appeal button (opens the appeal modal) and the moderators' decision buttons.

Roles are checked by :class:`bot.services.appeals.AppealService` on every click: only the
author appeals their own message, only moderators and admins decide.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError

from bot.listeners.events.home import publish_home
from bot.listeners.team import team_of
from bot.services.appeal_posting import answer_author
from bot.services.appeals import AppealService
from bot.services.errors import BotError
from bot.services.status import StatusService
from bot.ui import appeal as appeal_ui
from bot.ui import blocks

DECIDE_ACTIONS = re.compile("^" + re.escape(appeal_ui.APPEAL_DECIDE_ACTION) + r"_[a-z0-9_]+$")


def register(app: App, appeals: AppealService, status: StatusService | None = None) -> None:
    @app.action(appeal_ui.APPEAL_OPEN_ACTION)
    def appeal_clicked(
        ack: Ack,
        body: dict[str, Any],
        action: dict[str, Any],
        client: WebClient,
        respond: Respond,
        logger: logging.Logger,
    ) -> None:
        ack()
        user_id = (body.get("user") or {}).get("id")
        alert_id = _int(action.get("value"))
        if user_id is None or alert_id is None:
            logger.warning("ignoring a malformed appeal click")
            return
        try:
            item = appeals.check(user_id=user_id, alert_id=alert_id)
        except BotError as exc:
            logger.info("appeal of alert %s by %s refused: %s", alert_id, user_id, exc)
            _say(respond, f":warning: {exc}", logger)
            return
        try:
            client.views_open(
                trigger_id=body["trigger_id"], view=appeal_ui.appeal_modal(alert_id, item)
            )
        except (SlackClientError, OSError):
            logger.exception("could not open the appeal modal for alert %s", alert_id)

    @app.action(DECIDE_ACTIONS)
    def decision_clicked(
        ack: Ack,
        body: dict[str, Any],
        action: dict[str, Any],
        client: WebClient,
        respond: Respond,
        logger: logging.Logger,
    ) -> None:
        ack()
        user_id = (body.get("user") or {}).get("id")
        appeal_id_text, _, label = str(action.get("value") or "").partition(":")
        appeal_id = _int(appeal_id_text)
        if user_id is None or appeal_id is None or not label:
            logger.warning("ignoring a malformed appeal decision")
            return
        in_home = (body.get("container") or {}).get("type") == "view"
        try:
            decision = appeals.decide(
                user_id=user_id, appeal_id=appeal_id, label=label, team_id=team_of(body)
            )
        except BotError as exc:
            logger.info("decision on appeal %s by %s refused: %s", appeal_id, user_id, exc)
            notice = f":warning: {blocks.escape(str(exc))}"
            if in_home and status is not None:
                publish_home(client, status, user_id, logger, team_id=team_of(body), notice=notice)
            else:
                _say(respond, notice, logger)
            return
        decision = answer_author(client, decision, logger)
        text = appeal_ui.decided_text(decision, user_id)
        if in_home and status is not None:
            publish_home(
                client,
                status,
                user_id,
                logger,
                team_id=team_of(body),
                notice=f":white_check_mark: {text}",
            )
            return
        channel = (body.get("channel") or {}).get("id")
        ts = (body.get("message") or {}).get("ts") or (body.get("container") or {}).get(
            "message_ts"
        )
        try:
            if channel and ts:
                client.chat_update(
                    channel=channel,
                    ts=ts,
                    text=text,
                    blocks=[
                        *appeal_ui.appeal_item_blocks(decision.item)[:1],
                        {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]},
                    ],
                )
        except (SlackClientError, OSError):
            logger.warning("could not update the appeal message %s", ts, exc_info=True)


def _int(value: Any) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _say(respond: Respond, text: str, logger: logging.Logger) -> None:
    if not respond.response_url:
        return
    try:
        respond(text=text, response_type="ephemeral", replace_original=False)
    except (SlackClientError, OSError):
        logger.warning("could not answer: %s", text, exc_info=True)
