"""The Slack side of appeals: the moderators' queue item, the answer to the author, and a
removed message re-posted when its appeal is upheld."""

from __future__ import annotations

import logging
from dataclasses import replace

from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError

from bot.services.appeals import AppealDecision, AppealItem
from bot.ui import appeal as appeal_ui

logger = logging.getLogger(__name__)


def post_appeal(
    client: WebClient, channel: str, item: AppealItem, log: logging.Logger = logger
) -> str | None:
    """Put an appeal in the moderators' channel, with its decision buttons.

    Returns:
        The post's ``ts``, or None if Slack refused it (the appeal still leads the Home
        tab's review queue).
    """
    try:
        response = client.chat_postMessage(
            channel=channel,
            text=appeal_ui.appeal_item_text(item),
            blocks=appeal_ui.appeal_item_blocks(item),
            unfurl_links=False,
            unfurl_media=False,
        )
    except (SlackClientError, OSError) as exc:
        log.warning("could not post appeal %s to %s: %s", item.appeal_id, channel, exc)
        return None
    ts = response.get("ts")
    return str(ts) if ts else None


def answer_author(
    client: WebClient, decision: AppealDecision, log: logging.Logger = logger
) -> AppealDecision:
    """Re-post a removed message whose appeal was upheld, then answer its author privately.

    Returns:
        The decision, with ``restored_ts`` when the message was re-posted.
    """
    item = decision.item
    if decision.upheld and item.removed:
        try:
            response = client.chat_postMessage(
                channel=item.channel_id,
                text=appeal_ui.restored_text(item.author_id, item.text),
                unfurl_links=False,
                unfurl_media=False,
            )
            ts = response.get("ts")
            decision = replace(decision, restored_ts=str(ts) if ts else None)
        except (SlackClientError, OSError) as exc:
            log.warning("could not restore the message of appeal %s: %s", item.appeal_id, exc)
    try:
        client.chat_postMessage(channel=item.author_id, text=appeal_ui.answer_text(decision))
    except (SlackClientError, OSError) as exc:
        log.warning("could not answer %s about appeal %s: %s", item.author_id, item.appeal_id, exc)
    return decision
