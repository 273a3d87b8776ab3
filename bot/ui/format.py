"""Small Block Kit pieces shared by the view builders."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from bot.ui.blocks import escape

Block = dict[str, Any]

MAX_BLOCKS = 100  # Slack's limit for a message, a modal and the Home tab
_PLAIN_TEXT_MAX = 75
_SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


def plain(text: str, limit: int = _PLAIN_TEXT_MAX) -> dict[str, Any]:
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return {"type": "plain_text", "text": text, "emoji": True}


def mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def section(text: str, block_id: str | None = None) -> Block:
    block: Block = {"type": "section", "text": mrkdwn(shorten(text, 3000))}
    if block_id:
        block["block_id"] = block_id
    return block


def context(text: str, block_id: str | None = None) -> Block:
    block: Block = {"type": "context", "elements": [mrkdwn(shorten(text, 3000))]}
    if block_id:
        block["block_id"] = block_id
    return block


def header(text: str) -> Block:
    return {"type": "header", "text": plain(text, 150)}


def divider() -> Block:
    return {"type": "divider"}


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def when(moment: datetime) -> str:
    """A time every reader sees in their own time zone (UTC in the fallback text)."""
    utc = moment.astimezone(UTC)
    fallback = utc.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(utc.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def who(actor: str) -> str:
    """A Slack user as a mention; anything else (``scheduler``, ``cli:ana``) as escaped text."""
    return f"<@{actor}>" if _SLACK_USER_ID.match(actor) else escape(actor)


def score(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def limit_blocks(blocks: list[Block]) -> list[Block]:
    """At most Slack's 100 blocks (the last one says that more were left out)."""
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    return [*blocks[: MAX_BLOCKS - 1], context("_More was left out to fit Slack's limits._")]
