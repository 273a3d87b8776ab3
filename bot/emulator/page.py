"""The page's records: the messages in each channel as each person sees them, and the log
of requests both ways, rendered for the page with :mod:`bot.emulator.render`."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bot.emulator import render
from bot.emulator.directory import SLACKBOT
from bot.emulator.inbound import payloads
from bot.emulator.outbound import FakeSlack

_LOG_SIZE = 200


@dataclass
class Entry:
    """A message in a channel as one person sees it.

    A public message's content lives in the fake (``chat.update`` edits it there); an
    ephemeral one (``ephemeral_to``) exists only here, as in Slack, where no API reads it.
    """

    id: int
    channel: str
    ts: str
    author: str
    ephemeral_to: str | None = None
    text: str = ""
    blocks: list[dict[str, Any]] = field(default_factory=list)
    thread_ts: str | None = None
    deleted: bool = False
    replaced: int = 0
    removed: bool = False  # deleted with chat.delete (the remove policy action)


class Page:
    """Entries, the request log and the version the page polls. The caller holds the lock."""

    def __init__(self, slack: FakeSlack, workspace: payloads.Workspace) -> None:
        self.slack = slack
        self.workspace = workspace
        self.version = 0
        self._entries: list[Entry] = []
        self._log: deque[dict[str, Any]] = deque(maxlen=_LOG_SIZE)

    def touch(self) -> None:
        """Something anyone could see changed."""
        self.version += 1

    def add(self, entry: Entry) -> Entry:
        entry.id = len(self._entries) + 1
        self._entries.append(entry)
        self.touch()
        return entry

    def slackbot(self, user_id: str, channel_id: str, text: str) -> None:
        """Slackbot's private note to ``user_id`` (how Slack reports a failed command)."""
        self.add(
            Entry(0, channel_id, self.slack.new_ts(), SLACKBOT, ephemeral_to=user_id, text=text)
        )

    def entry(self, entry_id: int) -> Entry | None:
        if 1 <= entry_id <= len(self._entries):
            return self._entries[entry_id - 1]
        return None

    def visible_entry(self, user_id: str, entry_id: int) -> Entry | None:
        entry = self.entry(entry_id)
        if entry is None or entry.deleted or entry.ephemeral_to not in (None, user_id):
            return None
        return entry

    def visible(self, user_id: str | None, channel_id: str | None = None) -> list[Entry]:
        """The live entries ``user_id`` sees (all public ones if None), maybe of one channel."""
        return [
            e
            for e in self._entries
            if (channel_id is None or e.channel == channel_id)
            and not e.deleted
            and (e.ephemeral_to is None or e.ephemeral_to == user_id)
        ]

    def content(self, entry: Entry) -> tuple[str, list[dict[str, Any]]]:
        """An entry's current text and blocks (a public message's come from the fake)."""
        if entry.ephemeral_to is None:
            message = self.slack.message(entry.channel, entry.ts)
            if message is not None:
                return message.text, list(message.blocks)
        return entry.text, list(entry.blocks)

    def blocks(self, entry: Entry) -> list[dict[str, Any]]:
        """An entry's blocks with the block and action ids Slack fills in."""
        _, blocks = self.content(entry)
        return render.with_ids(blocks, f"{entry.channel}/{entry.ts}")

    def message_json(self, entry: Entry) -> dict[str, Any]:
        """The copy of a message Slack puts in an interaction payload."""
        text, _ = self.content(entry)
        data: dict[str, Any] = {
            "type": "message",
            "user": entry.author,
            "text": text,
            "ts": entry.ts,
            "team": self.workspace.team_id,
        }
        blocks = self.blocks(entry)
        if blocks:
            data["blocks"] = blocks
        if entry.author == self.slack.bot_user_id:
            data["bot_id"] = self.slack.bot_id
            data["app_id"] = self.workspace.api_app_id
        if entry.thread_ts:
            data["thread_ts"] = entry.thread_ts
        return data

    # The log of requests both ways ---------------------------------------------------

    def log_event(self, direction: str, what: str, ok: bool, detail: str) -> None:
        self._log.append(
            {
                "at": time.strftime("%H:%M:%S"),
                "direction": direction,
                "what": what,
                "ok": ok,
                "detail": detail,
            }
        )

    def log(self) -> list[dict[str, Any]]:
        return list(self._log)

    # Rendering -------------------------------------------------------------------------

    def channels_json(
        self, user_id: str, channel_ids: Iterable[str], ctx: render.RenderContext
    ) -> dict[str, list[dict[str, Any]]]:
        """Every channel's messages as ``user_id`` sees them, rendered."""
        channels: dict[str, list[dict[str, Any]]] = {cid: [] for cid in channel_ids}
        for entry in self.visible(user_id):
            shown = self._entry_json(entry, ctx)
            if shown is not None:
                channels.setdefault(entry.channel, []).append(shown)
        return channels

    def _entry_json(self, entry: Entry, ctx: render.RenderContext) -> dict[str, Any] | None:
        if entry.removed:
            return self._removed_json(entry)
        text, _ = self.content(entry)
        blocks = self.blocks(entry)
        edits = 0
        reactions: list[str] = []
        if entry.ephemeral_to is None:
            message = self.slack.message(entry.channel, entry.ts)
            if message is None:
                return None
            edits, reactions = message.edits, sorted(message.reactions)
        else:
            edits = entry.replaced
        body = render.blocks_html(blocks, ctx) if blocks else render.mrkdwn_html(text, ctx)
        author = entry.author
        if author == self.slack.bot_user_id:
            name, kind = "bertbot", "app"
        elif author == SLACKBOT:
            name, kind = "Slackbot", "slackbot"
        else:
            name, kind = ctx.users.get(author, author), "person"
        return {
            "id": entry.id,
            "ts": entry.ts,
            "time": render.clock(entry.ts),
            "author": name,
            "author_kind": kind,
            "ephemeral": entry.ephemeral_to is not None,
            "edited": edits > 0,
            "thread": bool(entry.thread_ts and entry.thread_ts != entry.ts),
            "reactions": [render.emojize(f":{r}:") for r in reactions],
            "html": body,
            "shortcuts": entry.ephemeral_to is None,
        }

    def _removed_json(self, entry: Entry) -> dict[str, Any]:
        """What stays of a message deleted with ``chat.delete``: a line saying so."""
        return {
            "id": entry.id,
            "ts": entry.ts,
            "time": render.clock(entry.ts),
            "author": "Slack",
            "author_kind": "slackbot",
            "ephemeral": False,
            "edited": False,
            "thread": False,
            "reactions": [],
            "html": '<p class="removed"><em>This message was removed '
            "(bertbot's moderation policy, with an admin's token).</em></p>",
            "shortcuts": False,
        }

    def find(self, channel_id: str, ts: str) -> Entry | None:
        """The public entry of a message, by channel and ts."""
        for entry in self._entries:
            if entry.channel == channel_id and entry.ts == ts and entry.ephemeral_to is None:
                return entry
        return None
