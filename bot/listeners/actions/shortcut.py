"""The "Label with bertbot" message shortcut.

The shortcut opens a modal (``views.open``) with each task's prediction for the message,
classifying and storing the message first if the bot had not seen it. Moderators and admins
get a label select per task; the modal's submission is handled in
:mod:`bot.listeners.views.label_modal`.

Only messages of channels bertbot is in are classified and stored, as the event listeners
store only those: Slack offers the shortcut everywhere, DMs and group DMs included, and a
stored text shows in the moderators' review queue. Anywhere else the user gets a private
note (a modal only they see) and nothing is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.listeners.events.messages import from_bot
from bot.listeners.slack_text import to_plain
from bot.services.errors import BotError
from bot.services.ingestion import SlackMessage
from bot.services.status import StatusService
from bot.ui import label_modal

NOT_IN_A_DM = (
    "bertbot does not classify direct messages or group DMs: it only labels messages of "
    "channels it is in. Nothing was stored."
)
NOT_A_MEMBER = (
    "bertbot is not in this channel, so it does not classify its messages. Invite it to the "
    "channel first. Nothing was stored."
)
CANNOT_CHECK = "bertbot could not check that it is in this channel. Nothing was stored."


def in_direct_message(body: Mapping[str, Any]) -> bool:
    """The shortcut's message is in a DM or a group DM (by the payload alone).

    Slack names a DM's channel ``directmessage`` (its id starts with ``D``) and a group
    DM's ``mpdm-...``; a private channel's payload says ``privategroup``, which is not a
    DM (``conversations.info`` tells the rest).
    """
    channel = body.get("channel") or {}
    channel_id = str(channel.get("id") or "")
    name = str(channel.get("name") or "")
    return (
        channel_id.startswith("D")
        or name == "directmessage"
        or name.startswith("mpdm-")
        or bool(channel.get("is_im") or channel.get("is_mpim"))
    )


def not_here(client: WebClient, body: Mapping[str, Any], logger: logging.Logger) -> str | None:
    """Why the shortcut's message may not be stored (a note for the user), or None.

    DMs are refused from the payload; for a channel, ``conversations.info`` says whether
    bertbot is a member. When Slack cannot tell, nothing is stored either.
    """
    if in_direct_message(body):
        return NOT_IN_A_DM
    channel_id = str((body.get("channel") or {}).get("id") or "")
    try:
        channel = client.conversations_info(channel=channel_id).get("channel") or {}
    except SlackApiError as exc:
        error = exc.response.get("error")
        logger.info("shortcut in %s refused: conversations.info said %s", channel_id, error)
        # A private channel bertbot is not in is not found at all.
        return NOT_A_MEMBER if error == "channel_not_found" else CANNOT_CHECK
    except (SlackClientError, OSError) as exc:
        logger.warning("shortcut in %s refused: cannot reach Slack (%s)", channel_id, exc)
        return CANNOT_CHECK
    if channel.get("is_im") or channel.get("is_mpim"):
        return NOT_IN_A_DM
    if channel.get("is_member") is not True:
        return NOT_A_MEMBER
    return None


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
        elif (refusal := not_here(client, body, logger)) is not None:
            view = label_modal.note_modal(refusal)
        else:
            try:
                view = label_modal.label_modal(status.predictions_for(message, user_id=user_id))
            except BotError as exc:
                view = label_modal.note_modal(str(exc))
        client.views_open(trigger_id=body["trigger_id"], view=view)
