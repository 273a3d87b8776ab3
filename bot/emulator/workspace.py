"""A local Slack workspace: what people do reaches the bot exactly as Slack would send it.

:class:`Emulator` owns a :class:`bot.fake_slack.FakeSlack` (the Web API the bot calls) and a
:class:`bot.fake_slack.SlackSender` (signed requests to the bot's ``/slack/events``). People's
messages, slash commands, clicks, modal submissions, shortcuts and App Home visits become
the same signed requests Slack sends; what the bot does in return is read back from the
fake's record of Web API calls (``chat.postMessage``, ``chat.postEphemeral``,
``chat.update``, ``views.open``/``update``/``publish``, ``response_url`` posts), so the
emulator shows only what a real Slack client would show.

The page (:mod:`bot.emulator.web`) polls :meth:`Emulator.state` and calls the other public
methods; nothing here knows about HTTP handlers or HTML beyond :mod:`bot.emulator.render`.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.emulator import render
from bot.emulator.inbound import LOCAL_SIGNING_SECRET, SlackSender, payloads
from bot.emulator.outbound import LOCAL_APP_ID, LOCAL_BOT_TOKEN, FakeSlack, RecordedCall

logger = logging.getLogger(__name__)

SLACKBOT = "USLACKBOT"
CHANNELS = {"general": "C0GENERAL", "moderators": "C0MODERATORS"}
COMMANDS = ("/classify", "/retrain", "/bertbot")
# (menu title, callback_id) of the app's message shortcuts, as in manifest.yml.
MESSAGE_SHORTCUTS = (("Label with bertbot", "label_with_bertbot"),)
ACK_TIMEOUT_S = 3.0  # Slack shows an error when the app does not answer within 3 s
TRIGGER_TTL_S = 3.0  # and refuses a trigger_id older than that
RESPONSE_URL_TTL_S = 30 * 60.0  # a response_url works for 30 minutes
REQUIRED = "Please complete this required field."
NO_CONNECTION = "We had some trouble connecting. Try again?"
_LOG_SIZE = 200
_MENTION = re.compile(r"(?<![\w@<])@([a-z0-9][a-z0-9._-]*)")


@dataclass(frozen=True)
class EmulatedUser:
    """A person in the emulated workspace; ``role`` says which bertbot role to give them."""

    id: str
    name: str
    real_name: str
    role: str  # "member", "moderator" or "admin"


DEFAULT_USERS = (
    EmulatedUser("U0EMUMEMBER", "mia", "Mia (member)", "member"),
    EmulatedUser("U0EMUMODERATOR", "mo", "Mo (moderator)", "moderator"),
    EmulatedUser("U0EMUADMIN", "ada", "Ada (admin)", "admin"),
)


@dataclass(frozen=True)
class Outcome:
    """What became of something a person did, for the page: ``error`` is shown as a toast."""

    ok: bool
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "error": self.error}


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


@dataclass(frozen=True)
class _Origin:
    """Who a response_url or trigger_id was issued to, and for which message."""

    user_id: str
    channel_id: str | None
    entry_id: int | None
    at: float


@dataclass
class _View:
    view: dict[str, Any]
    errors: dict[str, str] = field(default_factory=dict)
    aliases: set[str] = field(default_factory=set)  # other ids the bot was given for it


@dataclass
class _Delivery:
    status: int | None
    body: bytes
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status == 200


class Emulator:
    """A local Slack workspace around a bot served over HTTP.

    Start it, point the bot's WebClient at :attr:`api_url` (with :data:`LOCAL_BOT_TOKEN`)
    and its signing secret at :data:`LOCAL_SIGNING_SECRET`, serve the bot, then
    :meth:`connect` the emulator to the bot's ``/slack/events`` URL. Thread-safe.
    """

    def __init__(
        self,
        *,
        users: Sequence[EmulatedUser] = DEFAULT_USERS,
        channels: Mapping[str, str] | None = None,
        commands: Sequence[str] = COMMANDS,
        message_shortcuts: Sequence[tuple[str, str]] = MESSAGE_SHORTCUTS,
        bot_token: str = LOCAL_BOT_TOKEN,
        signing_secret: str = LOCAL_SIGNING_SECRET,
        host: str = "127.0.0.1",
        api_port: int = 0,
        ack_timeout_s: float = ACK_TIMEOUT_S,
    ) -> None:
        """Describe the workspace.

        Args:
            users: The people one can act as (their ids go into the bot's roles).
            channels: Channel names to ids; default #general and #moderators.
            commands: Slash commands the app defines; others get Slack's "not a valid
                command" answer.
            message_shortcuts: (title, callback_id) of the app's message shortcuts.
            bot_token: The token the bot must call the Web API with.
            signing_secret: The secret requests to the bot are signed with.
            host: Where the Web API listens (loopback).
            api_port: The Web API's port; 0 picks a free one.
            ack_timeout_s: How long the bot has to answer a request, as in Slack.
        """
        if not users:
            raise ValueError("the emulator needs at least one user")
        self.users = tuple(users)
        self.channels = dict(CHANNELS if channels is None else channels)
        self.commands = tuple(commands)
        self.message_shortcuts = tuple(message_shortcuts)
        self.signing_secret = signing_secret
        self.ack_timeout_s = ack_timeout_s
        self.slack = FakeSlack(
            bot_token=bot_token,
            channels=self.channels,
            users={u.id: u.name for u in self.users},
            host=host,
            port=api_port,
        )
        self.workspace = payloads.Workspace(
            self.slack.team_id, self.slack.team_domain, LOCAL_APP_ID
        )
        self._users = {u.id: u for u in self.users}
        self._channel_names = {cid: name for name, cid in self.channels.items()}
        self._sender: SlackSender | None = None
        self._lock = threading.RLock()
        self._entries: list[Entry] = []
        self._origins: dict[str, _Origin] = {}
        self._triggers: dict[str, _Origin] = {}
        self._modals: dict[str, list[_View]] = {}
        self._homes: dict[str, _View] = {}
        self._log: deque[dict[str, Any]] = deque(maxlen=_LOG_SIZE)
        self._cursor = 0
        self._version = 0

    # Life cycle ------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Start the Web API (the bot calls it from then on)."""
        self.slack.start()
        return self

    def connect(self, events_url: str) -> Emulator:
        """Send people's requests to the bot at ``events_url`` from now on."""
        self._sender = SlackSender(
            events_url,
            self.signing_secret,
            fake=self.slack,
            team_id=self.workspace.team_id,
            team_domain=self.workspace.team_domain,
            api_app_id=self.workspace.api_app_id,
            timeout=self.ack_timeout_s,
        )
        return self

    def stop(self) -> None:
        self.slack.stop()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def api_url(self) -> str:
        """The Web API base URL to give the bot's WebClient."""
        return self.slack.api_url

    @property
    def events_url(self) -> str | None:
        return self._sender.events_url if self._sender else None

    def ids_with_role(self, role: str) -> list[str]:
        """The ids of the users playing ``role`` (for the bot's :class:`bot.roles.Roles`)."""
        return [u.id for u in self.users if u.role == role]

    def user(self, user_id: str) -> EmulatedUser:
        try:
            return self._users[user_id]
        except KeyError:
            raise LookupError(f"no user {user_id!r} in the emulator") from None

    def channel_name(self, channel_id: str) -> str:
        return self._channel_names.get(channel_id, channel_id)

    # What people do ----------------------------------------------------------------------

    def send(self, user_id: str, channel: str, text: str) -> Outcome:
        """What the message box does: a slash command if ``text`` starts with ``/``,
        otherwise a message in ``channel`` (a name or an id)."""
        self.user(user_id)
        channel_id = self._channel(channel)
        text = text.strip()
        if not text:
            return Outcome(False, "Type a message or a slash command first.")
        if text.startswith("/"):
            command, _, rest = text.partition(" ")
            return self.command(user_id, channel_id, command, rest.strip())
        return self.post_message(user_id, channel_id, text)

    def post_message(self, user_id: str, channel: str, text: str) -> Outcome:
        """Post a message and send the bot its ``message`` event (``event_callback``)."""
        user = self.user(user_id)
        channel_id = self._channel(channel)
        sender = self._require_sender()
        ts = self.slack.new_ts()
        # Slack escapes &, < and > in message text and turns @name into <@U…>.
        event = sender.message_event(
            self._slack_text(text), user_id=user.id, channel_id=channel_id, ts=ts
        )
        with self._lock:
            self._add(Entry(0, channel_id, ts, user.id))
        delivery = self._deliver_event(event, f"message event in #{self.channel_name(channel_id)}")
        if not delivery.ok:
            return Outcome(True, f"The bot did not take the message event ({self._why(delivery)}).")
        return Outcome(True)

    def command(self, user_id: str, channel: str, command: str, text: str = "") -> Outcome:
        """Run a slash command: a signed form post with a response_url and a trigger_id.

        ``text`` is what the person typed; like all text Slack sends, its ``&``, ``<`` and
        ``>`` arrive escaped (mentions stay as typed: the manifest's ``should_escape`` is off).
        """
        user = self.user(user_id)
        channel_id = self._channel(channel)
        if command not in self.commands:
            with self._lock:
                self._slackbot(
                    user.id,
                    channel_id,
                    f"`{render.unescape_slack(command)}` is not a valid command. In Slack, all "
                    'messages that start with "/" are interpreted as commands.',
                )
            return Outcome(True)
        origin = _Origin(user.id, channel_id, None, time.monotonic())
        fields = payloads.slash_command(
            self.workspace,
            command=command,
            text=_escape(text),
            user_id=user.id,
            user_name=user.name,
            channel_id=channel_id,
            channel_name=self.channel_name(channel_id),
            response_url=self._new_response_url(origin),
            trigger_id=self._new_trigger(origin),
        )
        delivery = self._deliver(
            payloads.form_body(fields), "application/x-www-form-urlencoded", f"command {command}"
        )
        with self._lock:
            if not delivery.ok:
                self._slackbot(
                    user.id, channel_id, f'{command} failed with the error "{self._why(delivery)}"'
                )
                return Outcome(True)
            reply = _ack_message(delivery.body)
            if reply is not None:
                self._respond(origin, reply, from_ack=True)
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
        user = self.user(user_id)
        with self._lock:
            self._sync()
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
                origin = _Origin(user.id, entry.channel, entry.id, time.monotonic())
                payload = payloads.message_block_actions(
                    self.workspace,
                    user=who,
                    actions=[action],
                    channel_id=entry.channel,
                    channel_name=self.channel_name(entry.channel),
                    message_ts=entry.ts,
                    message=None if entry.ephemeral_to else self._message_json(entry),
                    response_url=self._new_response_url(origin),
                    trigger_id=self._new_trigger(origin),
                )
            else:
                assert view is not None
                origin = _Origin(user.id, None, None, time.monotonic())
                payload = payloads.view_block_actions(
                    self.workspace,
                    user=who,
                    actions=[action],
                    view=_with_state(view.view, inputs or {}),
                    trigger_id=self._new_trigger(origin),
                )
        delivery = self._deliver(
            payloads.interaction_body(payload),
            "application/x-www-form-urlencoded",
            f"block_actions {action_id}",
        )
        if not delivery.ok:
            return Outcome(False, f"bertbot did not answer the click ({self._why(delivery)}).")
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
        user = self.user(user_id)
        with self._lock:
            self._sync()
            stack = self._modals.get(user.id) or []
            if not stack or stack[-1].view.get("id") != view_id:
                return Outcome(False, "That modal is no longer open.")
            top = stack[-1]
            view = _with_state(top.view, inputs)
            missing = _missing_required(view)
            if missing:  # Slack's client refuses to submit; the app never hears of it
                top.errors = {block_id: REQUIRED for block_id in missing}
                self._touch()
                return Outcome(True)
            top.errors = {}
            payload = payloads.view_submission(
                self.workspace,
                user=payloads.user_object(user.id, user.name, self.workspace),
                view=view,
                trigger_id=self._new_trigger(_Origin(user.id, None, None, time.monotonic())),
            )
        callback = str(view.get("callback_id") or "")
        delivery = self._deliver(
            payloads.interaction_body(payload),
            "application/x-www-form-urlencoded",
            f"view_submission {callback}",
        )
        with self._lock:
            self._sync()
            stack = self._modals.get(user.id) or []
            index = next((i for i, v in enumerate(stack) if v.view.get("id") == view_id), None)
            if index is None:
                return Outcome(True)
            if not delivery.ok:
                stack[index].errors = {"": NO_CONNECTION}
            else:
                self._apply_response_action(user.id, stack, index, delivery.body)
            self._touch()
        return Outcome(True)

    def close(self, user_id: str, view_id: str) -> Outcome:
        """Close the user's top modal (``view_closed`` when the view asked to be told)."""
        user = self.user(user_id)
        with self._lock:
            stack = self._modals.get(user.id) or []
            if not stack or stack[-1].view.get("id") != view_id:
                return Outcome(False, "That modal is no longer open.")
            closed = stack.pop().view
            self._touch()
            if not closed.get("notify_on_close"):
                return Outcome(True)
            payload = payloads.view_closed(
                self.workspace,
                user=payloads.user_object(user.id, user.name, self.workspace),
                view=closed,
                is_cleared=False,
            )
        self._deliver(
            payloads.interaction_body(payload), "application/x-www-form-urlencoded", "view_closed"
        )
        return Outcome(True)

    def open_home(self, user_id: str) -> Outcome:
        """The user opens the app's Home tab: the bot gets ``app_home_opened``."""
        user = self.user(user_id)
        with self._lock:
            self._sync()
            home = self._homes.get(user.id)
            event = payloads.app_home_opened(
                user_id=user.id,
                dm_channel_id="D" + user.id[1:],
                event_ts=f"{time.time():.6f}",
                view=home.view if home else None,
            )
        delivery = self._deliver_event(event, "app_home_opened")
        if not delivery.ok:
            return Outcome(False, f"bertbot did not take app_home_opened ({self._why(delivery)}).")
        return Outcome(True)

    def shortcut(self, user_id: str, entry_id: int, callback_id: str) -> Outcome:
        """Run a message shortcut (``message_action``) on a message the user can see."""
        user = self.user(user_id)
        if callback_id not in {cid for _, cid in self.message_shortcuts}:
            return Outcome(False, f"bertbot has no shortcut {callback_id!r}.")
        with self._lock:
            self._sync()
            entry = self._visible_entry(user.id, entry_id)
            if entry is None or entry.ephemeral_to is not None:
                return Outcome(False, "Shortcuts work on messages in the channel.")
            origin = _Origin(user.id, entry.channel, entry.id, time.monotonic())
            payload = payloads.message_action(
                self.workspace,
                callback_id=callback_id,
                user=payloads.user_object(user.id, user.name, self.workspace),
                channel_id=entry.channel,
                channel_name=self.channel_name(entry.channel),
                message=self._message_json(entry),
                response_url=self._new_response_url(origin),
                trigger_id=self._new_trigger(origin),
            )
        delivery = self._deliver(
            payloads.interaction_body(payload),
            "application/x-www-form-urlencoded",
            f"message_action {callback_id}",
        )
        if not delivery.ok:
            return Outcome(False, f"bertbot did not answer the shortcut ({self._why(delivery)}).")
        return Outcome(True)

    # What the page shows ---------------------------------------------------------------

    @property
    def version(self) -> int:
        """Changes whenever anything any user could see changes."""
        with self._lock:
            self._sync()
            return self._version

    def config(self) -> dict[str, Any]:
        """The workspace's fixed facts: users, channels, commands, shortcuts."""
        return {
            "team": {"id": self.workspace.team_id, "domain": self.workspace.team_domain},
            "bot": {"id": self.slack.bot_user_id, "name": "bertbot"},
            "users": [
                {"id": u.id, "name": u.name, "real_name": u.real_name, "role": u.role}
                for u in self.users
            ],
            "channels": [{"id": cid, "name": name} for name, cid in self.channels.items()],
            "commands": list(self.commands),
            "shortcuts": [{"title": t, "callback_id": c} for t, c in self.message_shortcuts],
        }

    def state(self, user_id: str, since: int | None = None) -> dict[str, Any]:
        """Everything ``user_id`` sees, rendered; only the version if nothing changed."""
        user = self.user(user_id)
        with self._lock:
            self._sync()
            if since is not None and since == self._version:
                return {"version": self._version, "unchanged": True}
            ctx = self._context(user.id)
            channels: dict[str, list[dict[str, Any]]] = {cid: [] for cid in self.channels.values()}
            for entry in self._entries:
                if entry.deleted or entry.ephemeral_to not in (None, user.id):
                    continue
                shown = self._render_entry(entry, ctx)
                if shown is not None:
                    channels.setdefault(entry.channel, []).append(shown)
            stack = self._modals.get(user.id) or []
            modal = _view_json(stack[-1], ctx) if stack else None
            home = self._homes.get(user.id)
            return {
                "version": self._version,
                "user": user.id,
                "channels": channels,
                "modal": modal,
                "home": _view_json(home, ctx) if home else None,
                "log": list(self._log),
            }

    def entries(self, channel: str, user_id: str | None = None) -> list[Entry]:
        """The live messages of a channel as ``user_id`` sees them (all public ones if None)."""
        channel_id = self._channel(channel)
        with self._lock:
            self._sync()
            return [
                e
                for e in self._entries
                if e.channel == channel_id
                and not e.deleted
                and (e.ephemeral_to is None or e.ephemeral_to == user_id)
            ]

    def modal(self, user_id: str) -> dict[str, Any] | None:
        """The view on top of the user's modal stack."""
        with self._lock:
            self._sync()
            stack = self._modals.get(user_id) or []
            return dict(stack[-1].view) if stack else None

    def home(self, user_id: str) -> dict[str, Any] | None:
        """The App Home view published for the user."""
        with self._lock:
            self._sync()
            home = self._homes.get(user_id)
            return dict(home.view) if home else None

    def content(self, entry: Entry) -> tuple[str, list[dict[str, Any]]]:
        """An entry's current text and blocks (a public message's come from the fake)."""
        with self._lock:
            self._sync()
            return self._content(entry)

    def _content(self, entry: Entry) -> tuple[str, list[dict[str, Any]]]:
        if entry.ephemeral_to is None:
            message = self.slack.message(entry.channel, entry.ts)
            if message is not None:
                return message.text, list(message.blocks)
        return entry.text, list(entry.blocks)

    # Reading what the bot did on the Web API --------------------------------------------

    def _sync(self) -> None:
        """Apply the Web API calls recorded since the last sync (lock held)."""
        calls = self.slack.calls()
        if len(calls) < self._cursor:  # someone reset the fake
            self._cursor = 0
        for call in calls[self._cursor :]:
            self._apply(call)
        if len(calls) != self._cursor:
            self._cursor = len(calls)
            self._touch()

    def _apply(self, call: RecordedCall) -> None:
        note = self._apply_call(call) if call.ok else None
        self._log.append(
            {
                "at": time.strftime("%H:%M:%S"),
                "direction": "bot → Slack",
                "what": call.method,
                "ok": call.ok,
                "detail": note
                or ("" if call.ok else str(call.response.get("error") or call.status)),
            }
        )

    def _apply_call(self, call: RecordedCall) -> str | None:
        params, response, method = call.params, call.response, call.method
        if method == "chat.postMessage":
            self._add(
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
            self._add(
                Entry(
                    0,
                    channel_id,
                    str(response.get("message_ts")),
                    self.slack.bot_user_id,
                    ephemeral_to=str(params.get("user")),
                    text=str(params.get("text") or ""),
                    blocks=_blocks(params.get("blocks")),
                    thread_ts=params.get("thread_ts"),
                )
            )
        elif method == "views.open":
            origin = self._triggers.get(str(params.get("trigger_id")))
            if origin is None:
                return "unknown trigger_id: Slack answers invalid_trigger_id"
            self._modals[origin.user_id] = [_View(_fill_view(response["view"]))]
            if call.at - origin.at > TRIGGER_TTL_S:
                return f"trigger_id was {call.at - origin.at:.1f} s old: Slack allows 3 s"
        elif method == "views.push":
            origin = self._triggers.get(str(params.get("trigger_id")))
            if origin is not None and self._modals.get(origin.user_id):
                self._modals[origin.user_id].append(_View(_fill_view(response["view"])))
        elif method == "views.update":
            return self._update_view(params, response)
        elif method == "views.publish":
            self._publish(str(params.get("user_id")), response["view"])
        elif method == "response_url":
            origin = self._origins.get(call.path.rstrip("/").rsplit("/", 1)[-1])
            if origin is None:
                return "a response_url the emulator did not issue"
            self._respond(origin, params)
        return None

    def _update_view(self, params: Mapping[str, Any], response: Mapping[str, Any]) -> str | None:
        view_id = params.get("view_id")
        external_id = params.get("external_id")
        for stack in self._modals.values():
            for index, shown in enumerate(stack):
                if (view_id and shown.view.get("id") == view_id) or (
                    external_id and shown.view.get("external_id") == external_id
                ):
                    stack[index] = _View(_fill_view({**response["view"], "id": shown.view["id"]}))
                    return None
        for user_id, home in self._homes.items():
            if view_id and (home.view.get("id") == view_id or view_id in home.aliases):
                self._publish(user_id, response["view"])
                return None
        return "no open view with that id (Slack answers not_found)"

    def _publish(self, user_id: str, view: Mapping[str, Any]) -> None:
        """A user's Home tab is one view: it keeps its first id however often it changes."""
        home = self._homes.get(user_id)
        if home is None:
            self._homes[user_id] = _View(_fill_view(view))
            return
        kept = str(home.view["id"])
        aliases = home.aliases | {str(view.get("id"))}
        self._homes[user_id] = _View(_fill_view({**view, "id": kept}), aliases=aliases - {kept})

    def _respond(
        self, origin: _Origin, message: Mapping[str, Any], *, from_ack: bool = False
    ) -> None:
        """A reply to a response_url (or in an ack), as Slack applies it."""
        entry = self._entry(origin.entry_id) if origin.entry_id is not None else None
        text = str(message.get("text") or "")
        blocks = _blocks(message.get("blocks"))
        if _flag(message.get("delete_original")) and entry is not None:
            entry.deleted = True
        elif _flag(message.get("replace_original")) and entry is not None:
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
            self._add(Entry(0, origin.channel_id, ts, self.slack.bot_user_id))
        else:
            self._add(
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
            self._log_event("Slack ← bot", "ack with a message", True, "")
        self._touch()

    def _apply_response_action(
        self, user_id: str, stack: list[_View], index: int, body: bytes
    ) -> None:
        answer = _json(body)
        action = answer.get("response_action") if isinstance(answer, dict) else None
        if action == "errors":
            errors = answer.get("errors") if isinstance(answer, dict) else None
            shown = {str(k): str(v) for k, v in dict(errors or {}).items()}
            inputs = {block_id for block_id, _, _ in _inputs(stack[index].view)}
            elsewhere = sorted(k for k in shown if k not in inputs)
            for block_id in elsewhere:  # Slack shows errors under input blocks only
                del shown[block_id]
            if elsewhere:
                shown[""] = f"bertbot sent errors for blocks that are not inputs: {elsewhere}"
            stack[index].errors = shown
        elif action == "update" and isinstance(answer.get("view"), dict):
            old = stack[index].view
            stack[index] = _View(_fill_view({**answer["view"], "id": old.get("id")}))
        elif action == "push" and isinstance(answer.get("view"), dict):
            stack.append(_View(_fill_view({**answer["view"], "id": _view_id()})))
        elif action == "clear":
            stack.clear()
        else:
            del stack[index:]

    # Helpers (lock held unless said otherwise) ------------------------------------------

    def _touch(self) -> None:
        self._version += 1

    def _add(self, entry: Entry) -> Entry:
        entry.id = len(self._entries) + 1
        self._entries.append(entry)
        self._touch()
        return entry

    def _entry(self, entry_id: int) -> Entry | None:
        if 1 <= entry_id <= len(self._entries):
            return self._entries[entry_id - 1]
        return None

    def _visible_entry(self, user_id: str, entry_id: int) -> Entry | None:
        entry = self._entry(entry_id)
        if entry is None or entry.deleted or entry.ephemeral_to not in (None, user_id):
            return None
        return entry

    def _surface(
        self, user_id: str, ref: str
    ) -> tuple[list[dict[str, Any]], Entry | None, _View | None] | None:
        kind, _, key = ref.partition(":")
        if kind == "m" and key.isdigit():
            entry = self._visible_entry(user_id, int(key))
            if entry is None:
                return None
            return self._entry_blocks(entry), entry, None
        if kind == "v":
            views = list(self._modals.get(user_id) or [])
            if user_id in self._homes:
                views.append(self._homes[user_id])
            for view in views:
                if view.view.get("id") == key:
                    return list(view.view.get("blocks") or []), None, view
        return None

    def _entry_blocks(self, entry: Entry) -> list[dict[str, Any]]:
        _, blocks = self._content(entry)
        return render.with_ids(blocks, f"{entry.channel}/{entry.ts}")

    def _message_json(self, entry: Entry) -> dict[str, Any]:
        """The copy of a message Slack puts in an interaction payload."""
        text, _ = self._content(entry)
        data: dict[str, Any] = {
            "type": "message",
            "user": entry.author,
            "text": text,
            "ts": entry.ts,
            "team": self.workspace.team_id,
        }
        blocks = self._entry_blocks(entry)
        if blocks:
            data["blocks"] = blocks
        if entry.author == self.slack.bot_user_id:
            data["bot_id"] = self.slack.bot_id
            data["app_id"] = self.workspace.api_app_id
        if entry.thread_ts:
            data["thread_ts"] = entry.thread_ts
        return data

    def _slackbot(self, user_id: str, channel_id: str, text: str) -> None:
        self._add(
            Entry(0, channel_id, self.slack.new_ts(), SLACKBOT, ephemeral_to=user_id, text=text)
        )

    def _new_response_url(self, origin: _Origin) -> str:
        url = self.slack.new_response_url()
        with self._lock:
            _forget_older(self._origins, origin.at - RESPONSE_URL_TTL_S)
            self._origins[url.rsplit("/", 1)[-1]] = origin
        return url

    def _new_trigger(self, origin: _Origin) -> str:
        trigger = f"{int(time.time())}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex[:16]}"
        with self._lock:
            _forget_older(self._triggers, origin.at - 20 * TRIGGER_TTL_S)
            self._triggers[trigger] = origin
        return trigger

    def _channel(self, channel: str) -> str:
        channel_id = self.slack.channel_id(channel)
        if channel_id is None or channel_id not in self._channel_names:
            raise LookupError(f"no channel {channel!r} in the emulator")
        return channel_id

    def _slack_text(self, text: str) -> str:
        names = {u.name: u.id for u in self.users}

        def mention(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in ("here", "channel", "everyone"):
                return f"<!{name}>"
            return f"<@{names[name]}>" if name in names else match.group(0)

        return _MENTION.sub(mention, _escape(text))

    def _context(self, user_id: str) -> render.RenderContext:
        users = {u.id: u.name for u in self.users}
        users[self.slack.bot_user_id] = "bertbot"
        return render.RenderContext(
            users=users,
            channels=self._channel_names,
            team_domain=self.workspace.team_domain,
            me=user_id,
        )

    def _render_entry(self, entry: Entry, ctx: render.RenderContext) -> dict[str, Any] | None:
        text, _ = self._content(entry)
        blocks = self._entry_blocks(entry)
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

    # Delivering to the bot (never with the lock held: the bot calls back meanwhile) -----

    def _require_sender(self) -> SlackSender:
        if self._sender is None:
            raise RuntimeError("the emulator is not connected to a bot (call connect())")
        return self._sender

    def _deliver(self, body: bytes, content_type: str, what: str) -> _Delivery:
        sender = self._require_sender()
        try:
            answer = sender.post(body, content_type)
        except OSError as exc:
            delivery = _Delivery(None, b"", _transport_error(exc))
        else:
            delivery = _Delivery(answer.status, answer.body, None)
        self._log_delivery(what, delivery)
        return delivery

    def _deliver_event(self, event: Mapping[str, Any], what: str) -> _Delivery:
        sender = self._require_sender()
        try:
            answer = sender.event(event)
        except OSError as exc:
            delivery = _Delivery(None, b"", _transport_error(exc))
        else:
            delivery = _Delivery(answer.status, answer.body, None)
        self._log_delivery(what, delivery)
        return delivery

    def _log_delivery(self, what: str, delivery: _Delivery) -> None:
        detail = delivery.error or f"HTTP {delivery.status}"
        with self._lock:
            self._log_event("Slack → bot", what, delivery.ok, detail)
            self._touch()

    def _log_event(self, direction: str, what: str, ok: bool, detail: str) -> None:
        self._log.append(
            {
                "at": time.strftime("%H:%M:%S"),
                "direction": direction,
                "what": what,
                "ok": ok,
                "detail": detail,
            }
        )

    @staticmethod
    def _why(delivery: _Delivery) -> str:
        if delivery.error:
            return delivery.error
        return "dispatch_failed" if delivery.status != 401 else "invalid signature (HTTP 401)"


# Pure helpers -----------------------------------------------------------------------------


def _escape(text: str) -> str:
    """Slack's escaping of what people type: ``&``, ``<`` and ``>`` as entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _forget_older(issued: dict[str, _Origin], cutoff: float) -> None:
    """Drop what was issued before ``cutoff`` (dicts keep insertion order: oldest first)."""
    for key in [k for k, origin in issued.items() if origin.at < cutoff]:
        del issued[key]


def _transport_error(exc: OSError) -> str:
    reason = getattr(exc, "reason", exc)
    if isinstance(exc, TimeoutError) or isinstance(reason, TimeoutError):
        return "operation_timeout"
    return "dispatch_failed"


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1")


def _json(body: bytes) -> Any:
    try:
        return json.loads(body) if body.strip() else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _blocks(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        value = _json(value.encode())
    return [dict(b) for b in value if isinstance(b, Mapping)] if isinstance(value, list) else []


def _ack_message(body: bytes) -> dict[str, Any] | None:
    """The message in an ack's body (Slack shows it), or None for an empty ack."""
    if not body.strip():
        return None
    answer = _json(body)
    if isinstance(answer, dict):
        return answer if (answer.get("text") or answer.get("blocks")) else None
    return {"text": body.decode("utf-8", errors="replace")}


def _view_id() -> str:
    return "V" + uuid.uuid4().hex[:10].upper()


def _fill_view(view: Mapping[str, Any]) -> dict[str, Any]:
    """A stored view with Slack's generated block and action ids filled in."""
    filled = dict(view)
    filled.setdefault("id", _view_id())
    filled["blocks"] = render.with_ids(filled.get("blocks") or [], str(filled["id"]))
    filled.setdefault("hash", uuid.uuid4().hex[:16])
    return filled


def _inputs(view: Mapping[str, Any]) -> Iterable[tuple[str, Mapping[str, Any], bool]]:
    for block in view.get("blocks") or []:
        if block.get("type") == "input" and isinstance(block.get("element"), Mapping):
            element = block["element"]
            if element.get("type") in render.INPUT_TYPES:
                yield str(block["block_id"]), element, bool(block.get("optional"))


def _with_state(view: Mapping[str, Any], inputs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The view with ``state.values`` as Slack builds it from the inputs' current values."""
    values: dict[str, dict[str, Any]] = {}
    for block_id, element, _optional in _inputs(view):
        action_id = str(element.get("action_id"))
        raw = (inputs.get(block_id) or {}).get(action_id)
        values[block_id] = {action_id: payloads.state_value(element, raw)}
    return {**view, "state": {"values": values}}


def _missing_required(view: Mapping[str, Any]) -> list[str]:
    values = (view.get("state") or {}).get("values") or {}
    missing = []
    for block_id, element, optional in _inputs(view):
        if optional:
            continue
        state = (values.get(block_id) or {}).get(str(element.get("action_id"))) or {}
        if not (
            state.get("value") or state.get("selected_option") or state.get("selected_options")
        ):
            missing.append(block_id)
    return missing


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


def _view_json(shown: _View, ctx: render.RenderContext) -> dict[str, Any]:
    view = shown.view
    return {
        "id": view.get("id"),
        "key": f"{view.get('id')}/{view.get('hash')}/{json.dumps(shown.errors, sort_keys=True)}",
        "type": view.get("type"),
        "title": render.text_html(view.get("title"), ctx) if view.get("title") else "",
        "submit": render.text_html(view.get("submit"), ctx) if view.get("submit") else "",
        "close": render.text_html(view.get("close"), ctx) if view.get("close") else "Cancel",
        "error": shown.errors.get(""),
        "html": render.blocks_html(view.get("blocks") or [], ctx, errors=shown.errors),
    }
