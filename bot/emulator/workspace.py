"""A local Slack workspace: what people do reaches the bot exactly as Slack would send it.

:class:`Emulator` is a façade over a few collaborators, each with one job:

- :class:`bot.emulator.outbound.FakeSlack`, the Web API the bot calls (it records each call);
- :class:`bot.emulator.inbound.actions.Actions`, people's messages, slash commands, clicks,
  modal submissions, shortcuts and App Home visits as the signed requests Slack sends
  (delivered by a :class:`bot.emulator.inbound.courier.Courier`);
- :class:`bot.emulator.sync.WebApiSync`, which reads the bot's recorded Web API calls
  (``chat.*``, ``views.*``, ``response_url`` posts) back into what people see, so the
  emulator shows only what a real Slack client would show;
- :class:`bot.emulator.page.Page` (messages and the log) and
  :class:`bot.emulator.modals.Views` (modal stacks and Home tabs), its records.

They share one re-entrant lock; nothing is delivered to the bot while it is held (the bot
calls the Web API back meanwhile). The page (:mod:`bot.emulator.web`) polls
:meth:`Emulator.state` and calls the other public methods; nothing here knows about HTTP
handlers or HTML beyond :mod:`bot.emulator.render`.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

from bot.emulator.directory import (
    APP_DM,
    CHANNELS,
    COMMANDS,
    DEFAULT_USERS,
    MESSAGE_SHORTCUTS,
    Directory,
    EmulatedUser,
)
from bot.emulator.inbound import LOCAL_SIGNING_SECRET, SlackSender, payloads
from bot.emulator.inbound.actions import Actions
from bot.emulator.inbound.courier import Answer, Courier
from bot.emulator.inbound.issued import Issued
from bot.emulator.modals import Views, view_json
from bot.emulator.outbound import LOCAL_APP_ID, LOCAL_BOT_TOKEN, FakeSlack, RecordedCall
from bot.emulator.page import Entry, Page
from bot.emulator.sync import WebApiSync

ACK_TIMEOUT_S = 3.0  # Slack shows an error when the app does not answer within 3 s

P = ParamSpec("P")
R = TypeVar("R")


def _to_actions(
    method: Callable[Concatenate[Actions, P], R],
) -> Callable[Concatenate[Emulator, P], R]:
    """``method`` of :class:`Actions` as a method of the façade (same signature and docstring)."""

    @functools.wraps(method)
    def forward(self: Emulator, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return method(self._actions, *args, **kwargs)

    return forward


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
        channels = dict(CHANNELS if channels is None else channels)
        self.signing_secret = signing_secret
        self.ack_timeout_s = ack_timeout_s
        self.slack = FakeSlack(
            bot_token=bot_token,
            channels=channels,
            users={u.id: u.name for u in users},
            host=host,
            port=api_port,
        )
        self.workspace = payloads.Workspace(
            self.slack.team_id, self.slack.team_domain, LOCAL_APP_ID
        )
        self.directory = Directory(
            self.slack,
            users=users,
            channels=channels,
            commands=commands,
            message_shortcuts=message_shortcuts,
        )
        self._lock = threading.RLock()
        self._page = Page(self.slack, self.workspace)
        self._views = Views()
        issued = Issued(self.slack, self._lock)
        self._sync = WebApiSync(self.slack, self._page, self._views, issued)
        self._courier = Courier(self._record_delivery)
        # Like Slack, a message deleted through the Web API becomes a message_deleted event.
        self.slack.observe(self._on_call)
        self._actions = Actions(
            slack=self.slack,
            workspace=self.workspace,
            directory=self.directory,
            page=self._page,
            views=self._views,
            sync=self._sync,
            issued=issued,
            courier=self._courier,
            lock=self._lock,
        )

    # Life cycle ------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Start the Web API (the bot calls it from then on)."""
        self.slack.start()
        return self

    def connect(self, events_url: str) -> Emulator:
        """Send people's requests to the bot at ``events_url`` from now on."""
        self._courier.connect(
            SlackSender(
                events_url,
                self.signing_secret,
                fake=self.slack,
                team_id=self.workspace.team_id,
                team_domain=self.workspace.team_domain,
                api_app_id=self.workspace.api_app_id,
                timeout=self.ack_timeout_s,
            )
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
        sender = self._courier.sender
        return sender.events_url if sender else None

    @property
    def users(self) -> tuple[EmulatedUser, ...]:
        return self.directory.users

    @property
    def channels(self) -> dict[str, str]:
        return self.directory.channels

    @property
    def commands(self) -> tuple[str, ...]:
        return self.directory.commands

    @property
    def message_shortcuts(self) -> tuple[tuple[str, str], ...]:
        return self.directory.message_shortcuts

    def ids_with_role(self, role: str) -> list[str]:
        """The ids of the users playing ``role`` (for :class:`bot.services.roles.Roles`)."""
        return self.directory.ids_with_role(role)

    def user(self, user_id: str) -> EmulatedUser:
        return self.directory.user(user_id)

    def channel_name(self, channel_id: str) -> str:
        return self.directory.channel_name(channel_id)

    # What people do: each is Actions' method of that name, documented there ---------

    send = _to_actions(Actions.send)
    post_message = _to_actions(Actions.post_message)
    command = _to_actions(Actions.command)
    click = _to_actions(Actions.click)
    submit = _to_actions(Actions.submit)
    close = _to_actions(Actions.close)
    open_home = _to_actions(Actions.open_home)
    shortcut = _to_actions(Actions.shortcut)

    # What the page shows ---------------------------------------------------------------

    @property
    def version(self) -> int:
        """Changes whenever anything any user could see changes."""
        with self._lock:
            self._sync.sync()
            return self._page.version

    def config(self) -> dict[str, Any]:
        """The workspace's fixed facts: users, channels, commands, shortcuts."""
        return self.directory.config()

    def state(self, user_id: str, since: int | None = None) -> dict[str, Any]:
        """Everything ``user_id`` sees, rendered; only the version if nothing changed."""
        user = self.directory.user(user_id)
        with self._lock:
            self._sync.sync()
            version = self._page.version
            if since is not None and since == version:
                return {"version": version, "unchanged": True}
            ctx = self.directory.render_context(user.id)
            top = self._views.top(user.id)
            home = self._views.homes.get(user.id)
            return {
                "version": version,
                "user": user.id,
                "channels": self._page.channels_json(
                    user.id, [*self.channels.values(), APP_DM], ctx
                ),
                "modal": view_json(top, ctx) if top else None,
                "home": view_json(home, ctx) if home else None,
                "log": self._page.log(),
            }

    def entries(self, channel: str, user_id: str | None = None) -> list[Entry]:
        """The live messages of a channel as ``user_id`` sees them (all public ones if None)."""
        channel_id = self.directory.channel(channel)
        with self._lock:
            self._sync.sync()
            return self._page.visible(user_id, channel_id)

    def modal(self, user_id: str) -> dict[str, Any] | None:
        """The view on top of the user's modal stack."""
        with self._lock:
            self._sync.sync()
            top = self._views.top(user_id)
            return dict(top.view) if top else None

    def home(self, user_id: str) -> dict[str, Any] | None:
        """The App Home view published for the user."""
        with self._lock:
            self._sync.sync()
            home = self._views.homes.get(user_id)
            return dict(home.view) if home else None

    def content(self, entry: Entry) -> tuple[str, list[dict[str, Any]]]:
        """An entry's current text and blocks (a public message's come from the fake)."""
        with self._lock:
            self._sync.sync()
            return self._page.content(entry)

    def _on_call(self, call: RecordedCall) -> None:
        if call.method != "chat.delete" or not call.ok or self._courier.sender is None:
            return
        channel_id, ts = str(call.response.get("channel")), str(call.response.get("ts"))
        event = self._courier.sender.deleted_event(channel_id=channel_id, ts=ts)
        what = f"message_deleted event in #{self.directory.channel_name(channel_id)}"
        # Not on the Web API's thread: the bot may be waiting for its chat.delete answer.
        threading.Thread(
            target=self._courier.deliver_event,
            args=(event, what),
            name="emulator-message-deleted",
            daemon=True,
        ).start()

    def _record_delivery(self, what: str, answer: Answer) -> None:
        with self._lock:
            self._page.log_event(
                "Slack → bot", what, answer.ok, answer.error or f"HTTP {answer.status}"
            )
            self._page.touch()
