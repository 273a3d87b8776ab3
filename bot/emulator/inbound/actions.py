"""What people do in the emulator's page, turned into the requests Slack would send the bot.

Each method checks what the person can see, builds the payload (:mod:`.payloads`) with a
response_url and trigger_id issued to them (:mod:`.issued`), delivers it without holding
the lock (:mod:`.courier`) and applies the bot's answer: an ack's message, a modal's
``response_action``, or Slackbot's note when the bot failed to answer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.emulator import render
from bot.emulator.directory import Directory
from bot.emulator.inbound import forms, payloads
from bot.emulator.inbound.courier import Courier
from bot.emulator.inbound.issued import Issued, Origin
from bot.emulator.inbound.text import escape, message_text
from bot.emulator.modals import ShownView, Views
from bot.emulator.outbound import FakeSlack
from bot.emulator.page import Entry, Page
from bot.emulator.sync import WebApiSync, parse_json

REQUIRED = "Please complete this required field."
NO_CONNECTION = "We had some trouble connecting. Try again?"
_FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Outcome:
    """What became of something a person did, for the page: ``error`` is shown as a toast."""

    ok: bool
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "error": self.error}


class Actions:
    """People's messages, slash commands, clicks, submissions, shortcuts and Home visits."""

    def __init__(
        self,
        *,
        slack: FakeSlack,
        workspace: payloads.Workspace,
        directory: Directory,
        page: Page,
        views: Views,
        sync: WebApiSync,
        issued: Issued,
        courier: Courier,
        lock: threading.RLock,
    ) -> None:
        self.slack = slack
        self.workspace = workspace
        self.directory = directory
        self.page = page
        self.views = views
        self.sync = sync
        self.issued = issued
        self.courier = courier
        self._lock = lock

    def send(self, user_id: str, channel: str, text: str) -> Outcome:
        """What the message box does: a slash command if ``text`` starts with ``/``,
        otherwise a message in ``channel`` (a name or an id)."""
        self.directory.user(user_id)
        channel_id = self.directory.channel(channel)
        text = text.strip()
        if not text:
            return Outcome(False, "Type a message or a slash command first.")
        if text.startswith("/"):
            command, _, rest = text.partition(" ")
            return self.command(user_id, channel_id, command, rest.strip())
        return self.post_message(user_id, channel_id, text)

    def post_message(self, user_id: str, channel: str, text: str) -> Outcome:
        """Post a message and send the bot its ``message`` event (``event_callback``)."""
        user = self.directory.user(user_id)
        channel_id = self.directory.channel(channel)
        sender = self.courier.require_sender()
        ts = self.slack.new_ts()
        # Slack escapes &, < and > in message text and turns @name into <@U…>.
        event = sender.message_event(
            message_text(text, self.directory.names()),
            user_id=user.id,
            channel_id=channel_id,
            ts=ts,
        )
        with self._lock:
            self.page.add(Entry(0, channel_id, ts, user.id))
        what = f"message event in #{self.directory.channel_name(channel_id)}"
        answer = self.courier.deliver_event(event, what)
        if not answer.ok:
            return Outcome(True, f"The bot did not take the message event ({answer.why}).")
        return Outcome(True)

    def command(self, user_id: str, channel: str, command: str, text: str = "") -> Outcome:
        """Run a slash command: a signed form post with a response_url and a trigger_id.

        ``text`` is what the person typed; like all text Slack sends, its ``&``, ``<`` and
        ``>`` arrive escaped (mentions stay as typed: the manifest's ``should_escape`` is off).
        """
        user = self.directory.user(user_id)
        channel_id = self.directory.channel(channel)
        if command not in self.directory.commands:
            with self._lock:
                self.page.slackbot(
                    user.id,
                    channel_id,
                    f"`{render.unescape_slack(command)}` is not a valid command. In Slack, all "
                    'messages that start with "/" are interpreted as commands.',
                )
            return Outcome(True)
        origin = Origin(user.id, channel_id, None, time.monotonic())
        fields = payloads.slash_command(
            self.workspace,
            command=command,
            text=escape(text),
            user_id=user.id,
            user_name=user.name,
            channel_id=channel_id,
            channel_name=self.directory.channel_name(channel_id),
            response_url=self.issued.response_url(origin),
            trigger_id=self.issued.trigger(origin),
        )
        answer = self.courier.deliver(payloads.form_body(fields), _FORM, f"command {command}")
        with self._lock:
            if not answer.ok:
                self.page.slackbot(
                    user.id, channel_id, f'{command} failed with the error "{answer.why}"'
                )
                return Outcome(True)
            reply = _ack_message(answer.body)
            if reply is not None:
                self.sync.respond(origin, reply, from_ack=True)
        return Outcome(True)

    def click(
        self,
        user_id: str,
        ref: str,
        block: int,
        element: str,
        action_id: str,
        value: str | None = None,
        inputs: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Outcome:
        """Click a button or pick a select option, found by position in what the page shows.

        Args:
            user_id: Who clicks.
            ref: ``m:<entry id>`` for a message, ``v:<view id>`` for a modal or App Home.
            block: The block's index.
            element: The element's index in an actions block, or ``accessory``.
            action_id: The element's action id, to catch a message that changed meanwhile.
            value: The chosen option of a select or overflow menu.
            inputs: The modal's current input values (see :meth:`submit`).
        """
        user = self.directory.user(user_id)
        with self._lock:
            self.sync.sync()
            found = self._surface(user.id, ref)
            if found is None:
                return Outcome(False, "That message or view is gone.")
            blocks, entry, view = found
            try:
                target = _element_at(blocks, block, element)
            except LookupError:
                target = None
            if target is None or target[1].get("action_id") != action_id:
                return Outcome(False, "This changed before your click arrived; try again.")
            block_id, el = target
            try:
                action = payloads.action_of(el, block_id, value)
            except LookupError as exc:
                return Outcome(False, str(exc))
            who = payloads.user_object(user.id, user.name, self.workspace)
            if entry is not None:
                origin = Origin(user.id, entry.channel, entry.id, time.monotonic())
                payload = payloads.message_block_actions(
                    self.workspace,
                    user=who,
                    actions=[action],
                    channel_id=entry.channel,
                    channel_name=self.directory.channel_name(entry.channel),
                    message_ts=entry.ts,
                    message=None if entry.ephemeral_to else self.page.message_json(entry),
                    response_url=self.issued.response_url(origin),
                    trigger_id=self.issued.trigger(origin),
                )
            else:
                assert view is not None
                origin = Origin(user.id, None, None, time.monotonic())
                payload = payloads.view_block_actions(
                    self.workspace,
                    user=who,
                    actions=[action],
                    view=forms.with_state(view.view, inputs or {}),
                    trigger_id=self.issued.trigger(origin),
                )
        answer = self.courier.deliver(
            payloads.interaction_body(payload), _FORM, f"block_actions {action_id}"
        )
        if not answer.ok:
            return Outcome(False, f"bertbot did not answer the click ({answer.why}).")
        return Outcome(True)

    def submit(
        self, user_id: str, view_id: str, inputs: Mapping[str, Mapping[str, Any]]
    ) -> Outcome:
        """Submit the user's open modal: ``view_submission`` with ``view.state.values``.

        Args:
            user_id: Whose modal.
            view_id: The modal on top (a stale id is refused).
            inputs: block id -> action id -> the raw value (a string, or a list of strings
                for checkboxes), as the page read it from the form.
        """
        user = self.directory.user(user_id)
        with self._lock:
            self.sync.sync()
            top = self.views.top(user.id)
            if top is None or top.view.get("id") != view_id:
                return Outcome(False, "That modal is no longer open.")
            view = forms.with_state(top.view, inputs)
            missing = forms.missing_required(view)
            if missing:  # Slack's client refuses to submit; the app never hears of it
                top.errors = {block_id: REQUIRED for block_id in missing}
                self.page.touch()
                return Outcome(True)
            top.errors = {}
            payload = payloads.view_submission(
                self.workspace,
                user=payloads.user_object(user.id, user.name, self.workspace),
                view=view,
                trigger_id=self.issued.trigger(Origin(user.id, None, None, time.monotonic())),
            )
        callback = str(view.get("callback_id") or "")
        answer = self.courier.deliver(
            payloads.interaction_body(payload), _FORM, f"view_submission {callback}"
        )
        with self._lock:
            self.sync.sync()
            stack = self.views.modals.get(user.id) or []
            index = next((i for i, v in enumerate(stack) if v.view.get("id") == view_id), None)
            if index is None:
                return Outcome(True)
            if not answer.ok:
                stack[index].errors = {"": NO_CONNECTION}
            else:
                self.views.answer_submission(stack, index, parse_json(answer.body))
            self.page.touch()
        return Outcome(True)

    def close(self, user_id: str, view_id: str) -> Outcome:
        """Close the user's top modal (``view_closed`` when the view asked to be told)."""
        user = self.directory.user(user_id)
        with self._lock:
            stack = self.views.modals.get(user.id) or []
            if not stack or stack[-1].view.get("id") != view_id:
                return Outcome(False, "That modal is no longer open.")
            closed = stack.pop().view
            self.page.touch()
            if not closed.get("notify_on_close"):
                return Outcome(True)
            payload = payloads.view_closed(
                self.workspace,
                user=payloads.user_object(user.id, user.name, self.workspace),
                view=closed,
                is_cleared=False,
            )
        self.courier.deliver(payloads.interaction_body(payload), _FORM, "view_closed")
        return Outcome(True)

    def open_home(self, user_id: str) -> Outcome:
        """The user opens the app's Home tab: the bot gets ``app_home_opened``."""
        user = self.directory.user(user_id)
        with self._lock:
            self.sync.sync()
            home = self.views.homes.get(user.id)
            event = payloads.app_home_opened(
                user_id=user.id,
                dm_channel_id="D" + user.id[1:],
                event_ts=f"{time.time():.6f}",
                view=home.view if home else None,
            )
        answer = self.courier.deliver_event(event, "app_home_opened")
        if not answer.ok:
            return Outcome(False, f"bertbot did not take app_home_opened ({answer.why}).")
        return Outcome(True)

    def shortcut(self, user_id: str, entry_id: int, callback_id: str) -> Outcome:
        """Run a message shortcut (``message_action``) on a message the user can see."""
        user = self.directory.user(user_id)
        if not self.directory.has_shortcut(callback_id):
            return Outcome(False, f"bertbot has no shortcut {callback_id!r}.")
        with self._lock:
            self.sync.sync()
            entry = self.page.visible_entry(user.id, entry_id)
            if entry is None or entry.ephemeral_to is not None:
                return Outcome(False, "Shortcuts work on messages in the channel.")
            origin = Origin(user.id, entry.channel, entry.id, time.monotonic())
            payload = payloads.message_action(
                self.workspace,
                callback_id=callback_id,
                user=payloads.user_object(user.id, user.name, self.workspace),
                channel_id=entry.channel,
                channel_name=self.directory.channel_name(entry.channel),
                message=self.page.message_json(entry),
                response_url=self.issued.response_url(origin),
                trigger_id=self.issued.trigger(origin),
            )
        answer = self.courier.deliver(
            payloads.interaction_body(payload), _FORM, f"message_action {callback_id}"
        )
        if not answer.ok:
            return Outcome(False, f"bertbot did not answer the shortcut ({answer.why}).")
        return Outcome(True)

    def _surface(
        self, user_id: str, ref: str
    ) -> tuple[list[dict[str, Any]], Entry | None, ShownView | None] | None:
        """The blocks behind ``ref`` (``m:<entry id>`` or ``v:<view id>``) as the user sees them."""
        kind, _, key = ref.partition(":")
        if kind == "m" and key.isdigit():
            entry = self.page.visible_entry(user_id, int(key))
            if entry is None:
                return None
            return self.page.blocks(entry), entry, None
        if kind == "v":
            view = self.views.find(user_id, key)
            if view is not None:
                return list(view.view.get("blocks") or []), None, view
        return None


def _ack_message(body: bytes) -> dict[str, Any] | None:
    """The message in an ack's body (Slack shows it), or None for an empty ack."""
    if not body.strip():
        return None
    answer = parse_json(body)
    if isinstance(answer, dict):
        return answer if (answer.get("text") or answer.get("blocks")) else None
    return {"text": body.decode("utf-8", errors="replace")}


def _element_at(
    blocks: Sequence[Mapping[str, Any]], block: int, element: str
) -> tuple[str, Mapping[str, Any]] | None:
    if not 0 <= block < len(blocks):
        raise LookupError(block)
    found = blocks[block]
    if element == "accessory":
        target = found.get("accessory")
    elif element.isdigit() and found.get("type") == "actions":
        elements = found.get("elements") or []
        target = elements[int(element)] if int(element) < len(elements) else None
    else:
        target = None
    if not isinstance(target, Mapping):
        return None
    return str(found.get("block_id")), target
