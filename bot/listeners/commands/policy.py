"""``/bertbot policy``: admins see and change the moderation policy in a modal.

The command is routed here by ``/bertbot``'s listener (:mod:`.status`); the modal's
submission is :mod:`bot.listeners.views.policy`.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError

from bot.services.policy import PolicyService
from bot.ui import policy as policy_ui
from bot.ui.policy import Channel

MAX_PAGES = 10


def open_policy_modal(
    client: WebClient,
    policies: PolicyService,
    *,
    user_id: str | None,
    trigger_id: str,
    logger: logging.Logger,
    team_id: str | None = None,
) -> str | None:
    """Open the policy modal for an admin.

    Returns:
        A message for the user instead (not an admin, or Slack refused), else None.
    """
    if not policies.can_set(user_id, team_id):
        return policy_ui.NOT_ADMIN
    try:
        channels = channels_bot_is_in(client)
        client.views_open(trigger_id=trigger_id, view=policy_view(policies, channels))
    except (SlackClientError, OSError):
        logger.exception("could not open the policy modal")
        return "Slack did not open the policy screen; please try again."
    return None


def policy_view(
    policies: PolicyService, channels: list[Channel], notice: str | None = None
) -> dict[str, Any]:
    """The modal as it stands now (one query per channel listed)."""
    resolved = {channel.id: policies.for_channel(channel.id) for channel in channels}
    defaults = [policies.default(task) for task in policies.task_names]
    return policy_ui.policy_modal(channels, resolved, defaults, notice=notice)


def channels_bot_is_in(client: WebClient) -> list[Channel]:
    """Public and private channels the bot is a member of, by name."""
    found: list[Channel] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        response = client.conversations_list(
            types="public_channel,private_channel",
            exclude_archived=True,
            limit=1000,
            cursor=cursor,
        )
        for item in response.get("channels") or []:
            if isinstance(item, dict) and item.get("is_member") and item.get("id"):
                found.append(Channel(str(item["id"]), str(item.get("name") or item["id"])))
        cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
        if cursor is None:
            break
    return sorted(found, key=lambda c: c.name)
