"""Channel messages: classified and stored, edits re-classified, deletions marked.

Message events reach :func:`handle_message_event` through the durable inbox (see
:mod:`bot.listeners.events.inbox`), after Slack was acknowledged. Bots' messages (including
bertbot's own alerts) are ignored; a delivery is stored once (see
:meth:`bot.services.ingestion.IngestionService.record_message`). An alert goes to the
moderators' channel when a task's alert label crosses the threshold: stored with the
message, posted after the commit; the outbox's sweeper posts what a crash left unposted
(:func:`bot.services.alert_posting.deliver_alert`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from slack_sdk import WebClient

from bot.listeners.describe import describe_request
from bot.listeners.slack_text import to_plain
from bot.services.alert_outbox import AlertOutbox
from bot.services.alert_posting import deliver_alert
from bot.services.ingestion import IngestionService, MessageOutcome, SlackMessage

if TYPE_CHECKING:
    from bot.services.inbox import InboxClaim

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


def handle_message_event(
    body: Mapping[str, Any],
    *,
    ingestion: IngestionService,
    alerts: AlertOutbox,
    client: WebClient,
    bot_user_id: str | None,
    claim: InboxClaim,
    logger: logging.Logger,
) -> bool:
    """Store what a message event says (a new message, an edit, a deletion) and post its alerts.

    Called from the inbox after the ack, with the delivery's claim: the message, its
    predictions, its alerts and the inbox row's ``done`` share one unit of work.

    Returns:
        False when the event is not for bertbot (a DM, a bot, a join, ...): nothing stored,
        and the caller marks the delivery done.
    """
    event = body.get("event") or {}
    subtype = event.get("subtype")
    outcome: MessageOutcome | None = None
    if subtype == "message_changed":
        current = event.get("message") or {}
        if not in_channel(event) or not current.get("ts") or from_bot(current, bot_user_id):
            return False
        outcome = ingestion.record_edit(
            event_id=str(body["event_id"]),
            message=slack_message(body, current, event["channel"]),
            claim=claim,
        )
    elif subtype == "message_deleted":
        ts = event.get("deleted_ts") or (event.get("previous_message") or {}).get("ts")
        if not in_channel(event) or not ts:
            return False
        outcome = ingestion.record_deletion(
            event_id=str(body["event_id"]),
            team_id=str(body.get("team_id") or ""),
            channel_id=event["channel"],
            ts=str(ts),
            claim=claim,
        )
    else:
        if subtype not in NEW_MESSAGE_SUBTYPES or not in_channel(event):
            return False
        if from_bot(event, bot_user_id) or not event.get("ts"):
            return False
        outcome = ingestion.record_message(
            event_id=str(body["event_id"]),
            message=slack_message(body, event, event["channel"]),
            claim=claim,
        )
    logger.debug("message event %s (%s): %s", body.get("event_id"), subtype, outcome.status)
    try:
        post_alerts(client, alerts, outcome, logger)
    except Exception:  # noqa: BLE001 - the alerts are in the outbox; its sweeper posts them
        logger.exception(
            "posting the alerts of %s failed; they stay queued for the alert sweeper",
            describe_request(body),
        )
    return True


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
