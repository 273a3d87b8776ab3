"""The author's appeal modal: stored as an appeal, sent to the moderators, confirmed."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError

from bot.services.appeal_posting import post_appeal
from bot.services.appeals import AppealService
from bot.services.errors import BotError
from bot.ui import appeal as appeal_ui


def register(app: App, appeals: AppealService, moderators_channel: str) -> None:
    @app.view(appeal_ui.APPEAL_SUBMIT_CALLBACK)
    def appeal_submitted(
        ack: Ack,
        body: dict[str, Any],
        view: dict[str, Any],
        client: WebClient,
        logger: logging.Logger,
    ) -> None:
        user_id = (body.get("user") or {}).get("id")
        try:
            alert_id = int(view.get("private_metadata") or "")
        except ValueError:
            alert_id = None
        if user_id is None or alert_id is None:
            logger.warning("ignoring a malformed appeal submission")
            ack()
            return
        values = (view.get("state") or {}).get("values") or {}
        note = (
            (values.get(appeal_ui.APPEAL_NOTE_BLOCK) or {}).get(appeal_ui.APPEAL_NOTE_ACTION) or {}
        ).get("value") or ""
        try:
            item = appeals.submit(user_id=user_id, alert_id=alert_id, note=note)
        except BotError as exc:
            logger.info("appeal of alert %s by %s refused: %s", alert_id, user_id, exc)
            ack(response_action="errors", errors={appeal_ui.APPEAL_NOTE_BLOCK: str(exc)})
            return
        ack()
        post_appeal(client, moderators_channel, item, logger)
        try:
            client.chat_postMessage(channel=user_id, text=appeal_ui.appealed_text(item))
        except (SlackClientError, OSError):
            logger.warning("could not confirm appeal %s to %s", item.appeal_id, user_id)
