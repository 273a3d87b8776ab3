"""The workspace the fake Web API pretends to be: channels, users and messages.

The method handlers (:mod:`.chat`, :mod:`.conversations`, :mod:`.views`, :mod:`.users`)
read and change a :class:`SlackState`. It has no lock of its own:
:class:`bot.emulator.outbound.server.FakeSlack` holds its lock around every use.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from typing import Any

from bot.emulator.outbound.records import FakeMessage


class SlackState:
    """The ids of the workspace and the bot, its channels, users and messages."""

    def __init__(
        self,
        *,
        team_id: str,
        team_domain: str,
        bot_user_id: str,
        bot_id: str,
        channels: Mapping[str, str],
        users: Mapping[str, str],
    ) -> None:
        self.team_id = team_id
        self.team_domain = team_domain
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        # The URL ``apps.connections.open`` answers with (a test's WebSocket server).
        self.socket_mode_url: str | None = None
        self.channels = dict(channels)
        # Channels the bot is not a member of (``conversations.info``: is_member false).
        self.left: set[str] = set()
        self.users = {bot_user_id: "bertbot", **dict(users)}
        self.messages: dict[tuple[str, str], FakeMessage] = {}
        # User group ids to their members' ids (``usergroups.users.list``).
        self.usergroups: dict[str, list[str]] = {}
        # Messages removed with ``chat.delete``, oldest first.
        self.deleted: list[FakeMessage] = []
        self._ts = itertools.count(1)

    def channel_id(self, name_or_id: str) -> str | None:
        """The id of a channel given by name (``moderators``, ``#moderators``) or id."""
        name = name_or_id.lstrip("#")
        if name in self.channels:
            return self.channels[name]
        if name[:1] in ("C", "G", "D") and name.upper() == name:
            return name
        if name in self.users:  # a user id: the app's DM with that user
            return name
        return None

    def new_ts(self) -> str:
        """A message timestamp, unique and increasing, like Slack's ``1700000000.000100``."""
        return f"{int(time.time())}.{next(self._ts):06d}"

    def message_json(self, message: FakeMessage, *, with_metadata: bool = True) -> dict[str, Any]:
        """A message as the Web API shows it (``chat.postMessage``, ``conversations.history``)."""
        data: dict[str, Any] = {
            "type": "message",
            "user": message.user,
            "text": message.text,
            "blocks": message.blocks,
            "ts": message.ts,
            "team": self.team_id,
        }
        if message.user == self.bot_user_id:
            data["bot_id"] = self.bot_id
        if message.thread_ts:
            data["thread_ts"] = message.thread_ts
        if message.metadata is not None and with_metadata:
            data["metadata"] = message.metadata
        return data


def error(code: str) -> dict[str, Any]:
    """A Web API error answer (HTTP 200, ``ok: false``), as Slack sends it."""
    return {"ok": False, "error": code}


def flag(value: Any) -> bool:
    """A boolean argument as Slack reads it (``true``/``1`` in a form, or JSON true)."""
    return value is True or str(value).lower() in ("true", "1")
