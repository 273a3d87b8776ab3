"""What the bot did on the Web API, applied to what people see.

The fake Web API records every call; :class:`WebApiSync` reads the new ones and shows
them as a Slack client would: ``chat.postMessage`` and ``chat.postEphemeral`` add messages,
``views.*`` change modals and Home tabs, posts to a ``response_url`` answer the person it
was issued to. A reply in the bot's ack is applied the same way (:meth:`WebApiSync.respond`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bot.emulator.directory import APP_DM
from bot.emulator.inbound.issued import TRIGGER_TTL_S, Issued, Origin
from bot.emulator.modals import Views
from bot.emulator.outbound import RESPONSE_URL_METHOD, FakeSlack, RecordedCall
from bot.emulator.outbound.state import flag
from bot.emulator.page import Entry, Page


class WebApiSync:
    """Applies recorded Web API calls to the page and the views. The caller holds the lock."""

    def __init__(self, slack: FakeSlack, page: Page, views: Views, issued: Issued) -> None:
        self.slack = slack
        self.page = page
        self.views = views
        self.issued = issued
        self._cursor = 0

    def sync(self) -> None:
        """Apply the Web API calls recorded since the last sync."""
        calls = self.slack.calls()
        if len(calls) < self._cursor:  # someone reset the fake
            self._cursor = 0
        for call in calls[self._cursor :]:
            self._apply(call)
        if len(calls) != self._cursor:
            self._cursor = len(calls)
            self.page.touch()

    def respond(
        self, origin: Origin, message: Mapping[str, Any], *, from_ack: bool = False
    ) -> None:
        """A reply to a response_url (or in an ack), as Slack applies it."""
        page = self.page
        entry = page.entry(origin.entry_id) if origin.entry_id is not None else None
        text = str(message.get("text") or "")
        blocks = blocks_of(message.get("blocks"))
        if flag(message.get("delete_original")) and entry is not None:
            entry.deleted = True
        elif flag(message.get("replace_original")) and entry is not None:
            if entry.ephemeral_to is None:
                # Slack edits the original message itself; keep the fake's copy in step.
                original = self.slack.message(entry.channel, entry.ts)
                if original is not None:
                    original.text, original.blocks = text, blocks
                    original.edits += 1
            else:
                entry.text, entry.blocks = text, blocks
                entry.replaced += 1
        elif origin.channel_id is None:
            return
        elif message.get("response_type") == "in_channel":
            ts = self.slack.new_ts()
            posted = self.slack.add_message(
                origin.channel_id,
                ts,
                text,
                user=self.slack.bot_user_id,
                thread_ts=message.get("thread_ts"),
            )
            posted.blocks = blocks
            page.add(Entry(0, origin.channel_id, ts, self.slack.bot_user_id))
        else:
            page.add(
                Entry(
                    0,
                    origin.channel_id,
                    self.slack.new_ts(),
                    self.slack.bot_user_id,
                    ephemeral_to=origin.user_id,
                    text=text,
                    blocks=blocks,
                )
            )
        if from_ack:
            page.log_event("Slack ← bot", "ack with a message", True, "")
        page.touch()

    def _apply(self, call: RecordedCall) -> None:
        note = self._apply_call(call) if call.ok else None
        detail = note or ("" if call.ok else str(call.response.get("error") or call.status))
        self.page.log_event("bot → Slack", call.method, call.ok, detail)

    def _apply_call(self, call: RecordedCall) -> str | None:
        params, response, method = call.params, call.response, call.method
        if method == "chat.postMessage" and str(response["channel"]) in self.slack.state.users:
            # To a user id: the app's Messages tab, which only that person sees.
            self.page.add(
                Entry(
                    0,
                    APP_DM,
                    str(response["ts"]),
                    self.slack.bot_user_id,
                    ephemeral_to=str(response["channel"]),
                    text=str(params.get("text") or ""),
                    blocks=blocks_of(params.get("blocks")),
                )
            )
            return f"to {response['channel']}'s Messages tab"
        elif method == "chat.delete":
            channel_id = self.slack.channel_id(str(params.get("channel"))) or ""
            entry = self.page.find(channel_id, str(params.get("ts")))
            if entry is not None:
                entry.removed = True
            token = call.token or ""
            return "with an admin's user token" if token.startswith("xoxp-") else None
        elif method == "chat.postMessage":
            self.page.add(
                Entry(
                    0,
                    str(response["channel"]),
                    str(response["ts"]),
                    self.slack.bot_user_id,
                    thread_ts=params.get("thread_ts"),
                )
            )
        elif method == "chat.postEphemeral":
            channel_id = self.slack.channel_id(str(params.get("channel"))) or ""
            self.page.add(
                Entry(
                    0,
                    channel_id,
                    str(response.get("message_ts")),
                    self.slack.bot_user_id,
                    ephemeral_to=str(params.get("user")),
                    text=str(params.get("text") or ""),
                    blocks=blocks_of(params.get("blocks")),
                    thread_ts=params.get("thread_ts"),
                )
            )
        elif method == "views.open":
            origin = self.issued.origin_of_trigger(str(params.get("trigger_id")))
            if origin is None:
                return "unknown trigger_id: Slack answers invalid_trigger_id"
            self.views.open(origin.user_id, response["view"])
            if call.at - origin.at > TRIGGER_TTL_S:
                return f"trigger_id was {call.at - origin.at:.1f} s old: Slack allows 3 s"
        elif method == "views.push":
            origin = self.issued.origin_of_trigger(str(params.get("trigger_id")))
            if origin is not None:
                self.views.push(origin.user_id, response["view"])
        elif method == "views.update":
            return self.views.update(params, response)
        elif method == "views.publish":
            self.views.publish(str(params.get("user_id")), response["view"])
        elif method == RESPONSE_URL_METHOD:
            origin = self.issued.origin_of_response_url(call.path)
            if origin is None:
                return "a response_url the emulator did not issue"
            self.respond(origin, params)
        return None


def parse_json(body: bytes) -> Any:
    """The JSON in a body, or None when there is none (or it is not JSON)."""
    try:
        return json.loads(body) if body.strip() else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def blocks_of(value: Any) -> list[dict[str, Any]]:
    """The blocks of a message, given as a list or as a JSON string."""
    if isinstance(value, str):
        value = parse_json(value.encode())
    return [dict(b) for b in value if isinstance(b, Mapping)] if isinstance(value, list) else []
