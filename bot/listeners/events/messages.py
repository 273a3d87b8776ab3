"""Channel messages: classified and stored, edits re-classified, deletions marked.

Bolt acks every event before these listeners run. Bots' messages (including bertbot's own
alerts) are ignored; a delivery Slack retries is stored once (see
:meth:`bot.services.ingestion.IngestionService.record_message`). An alert goes to the
moderators' channel when a task's alert label crosses the threshold: stored with the
message, posted after the commit; a retried delivery posts the alerts its first delivery
left unposted (:func:`bot.services.alert_outbox.deliver_alert`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from slack_bolt import App, BoltContext
from slack_sdk import WebClient

from bot.listeners.slack_text import to_plain
from bot.services.alert_outbox import AlertOutbox, deliver_alert
from bot.services.ingestion import IngestionService, MessageOutcome, SlackMessage

# Subtypes that are a person posting (anything else is a join, a topic change, a bot, ...).
NEW_MESSAGE_SUBTYPES = frozenset({None, "thread_broadcast", "file_share"})
CHANNEL_TYPES = frozenset({"channel", "group"})


def in_channel(event: Mapping[str, Any]) -> bool:
    """A public or private channel (not a DM): ``message.channels`` / ``message.groups``."""
    channel_type = event.get("channel_type")
    if channel_type is not None:
        return channel_type in CHANNEL_TYPES
    return str(event.get("channel", "")).startswith(("C", "G"))


def from_bot(message: Mapping[str, Any], bot_user_id: str | None) -> bool:
    """Posted by any bot or integration, or by bertbot's own user."""
    return bool(
        message.get("bot_id")
        or message.get("subtype") == "bot_message"
        or (bot_user_id is not None and message.get("user") == bot_user_id)
    )


def slack_message(
    body: Mapping[str, Any], message: Mapping[str, Any], channel_id: str
) -> SlackMessage:
    """The stored fields of a message from an event callback."""
    return SlackMessage(
        team_id=str(body.get("team_id") or message.get("team") or ""),
        channel_id=channel_id,
        ts=str(message["ts"]),
        user_id=message.get("user"),
        text=to_plain(str(message.get("text") or "")),
        thread_ts=message.get("thread_ts"),
    )


def register(app: App, ingestion: IngestionService, alerts: AlertOutbox) -> None:
    # Bolt runs the first listener that matches: the subtypes go before plain "message".
    @app.event({"type": "message", "subtype": "message_changed"})
    def message_changed(
        body: dict[str, Any],
        event: dict[str, Any],
        context: BoltContext,
        client: WebClient,
        logger: logging.Logger,
    ) -> None:
        current = event.get("message") or {}
        if not in_channel(event) or not current.get("ts"):
            return
        if from_bot(current, context.bot_user_id):
            return
        outcome = ingestion.record_edit(
            event_id=body["event_id"], message=slack_message(body, current, event["channel"])
        )
        logger.debug("message_changed %s: %s", body["event_id"], outcome.status)
        post_alerts(client, alerts, outcome, logger)

    @app.event({"type": "message", "subtype": "message_deleted"})
    def message_deleted(
        body: dict[str, Any], event: dict[str, Any], logger: logging.Logger
    ) -> None:
        ts = event.get("deleted_ts") or (event.get("previous_message") or {}).get("ts")
        if not in_channel(event) or not ts:
            return
        outcome = ingestion.record_deletion(
            event_id=body["event_id"],
            team_id=str(body.get("team_id") or ""),
            channel_id=event["channel"],
            ts=str(ts),
        )
        logger.debug("message_deleted %s: %s", body["event_id"], outcome.status)

    @app.event("message")
    def message_posted(
        body: dict[str, Any],
        event: dict[str, Any],
        context: BoltContext,
        client: WebClient,
        logger: logging.Logger,
    ) -> None:
        if event.get("subtype") not in NEW_MESSAGE_SUBTYPES or not in_channel(event):
            return
        if from_bot(event, context.bot_user_id) or not event.get("ts"):
            return
        outcome = ingestion.record_message(
            event_id=body["event_id"], message=slack_message(body, event, event["channel"])
        )
        logger.debug("message %s: %s", body["event_id"], outcome.status)
        post_alerts(client, alerts, outcome, logger)


def post_alerts(
    client: WebClient, alerts: AlertOutbox, outcome: MessageOutcome, logger: logging.Logger
) -> None:
    """Post each alert of an outcome to the moderators' channel (and react, if configured).

    Each alert is claimed in the outbox first, so one that another delivery or process is
    posting (or has posted) is skipped. A failed post raises, for the app's error handler;
    the alert stays pending and the sweeper tries it again.
    """
    for alert in outcome.alerts:
        deliver_alert(client, alerts, alert, logger)
