"""The "Label with bertbot" message shortcut.

The shortcut opens a modal (``views.open``) with each task's prediction for the message,
classifying and storing the message first if the bot had not seen it. Moderators and admins
get a label select per task; the modal's submission is handled in
:mod:`bot.listeners.views.label_modal`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient

from bot.listeners.events.messages import from_bot
from bot.listeners.slack_text import to_plain
from bot.services.errors import BotError
from bot.services.ingestion import SlackMessage
from bot.services.status import StatusService
from bot.ui import label_modal


def shortcut_message(body: Mapping[str, Any]) -> SlackMessage | None:
    """The message a ``message_action`` payload is about; None when it is incomplete."""
    message = body.get("message") or {}
    channel_id = (body.get("channel") or {}).get("id")
    if not message.get("ts") or not channel_id:
        return None
    return SlackMessage(
        team_id=str((body.get("team") or {}).get("id") or message.get("team") or ""),
        channel_id=str(channel_id),
        ts=str(message["ts"]),
        user_id=message.get("user"),
        text=to_plain(str(message.get("text") or "")),
        thread_ts=message.get("thread_ts"),
    )


def register(app: App, status: StatusService) -> None:
    @app.shortcut({"type": "message_action", "callback_id": label_modal.SHORTCUT_CALLBACK})
    def label_shortcut(
        ack: Ack,
        body: dict[str, Any],
        context: BoltContext,
        client: WebClient,
        logger: logging.Logger,
    ) -> None:
        ack()
        user_id = str((body.get("user") or {}).get("id") or "")
        message = shortcut_message(body)
        if message is None:
            view = label_modal.note_modal("Slack did not say which message this is.")
        elif from_bot(body.get("message") or {}, context.bot_user_id):
            view = label_modal.note_modal("bertbot does not classify messages from bots or apps.")
        else:
            try:
                view = label_modal.label_modal(status.predictions_for(message, user_id=user_id))
            except BotError as exc:
                view = label_modal.note_modal(str(exc))
        client.views_open(trigger_id=body["trigger_id"], view=view)
