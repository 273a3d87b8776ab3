"""Who and what is in the emulated workspace: people, channels, commands and shortcuts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.emulator import render
from bot.emulator.outbound import FakeSlack

SLACKBOT = "USLACKBOT"
CHANNELS = {"general": "C0GENERAL", "moderators": "C0MODERATORS"}
# The app's Messages tab, shown as one conversation per person: the bot's posts to a
# user id (an author's notice, the answer to an appeal) land there.
APP_DM = "D0BERTBOT"
COMMANDS = ("/classify", "/retrain", "/bertbot")
# (menu title, callback_id) of the app's message shortcuts, as in manifest.yml.
MESSAGE_SHORTCUTS = (("Label with bertbot", "label_with_bertbot"),)


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


class Directory:
    """Looks people and channels up; the workspace's fixed facts. Immutable, so lock-free."""

    def __init__(
        self,
        slack: FakeSlack,
        *,
        users: Sequence[EmulatedUser],
        channels: Mapping[str, str],
        commands: Sequence[str],
        message_shortcuts: Sequence[tuple[str, str]],
    ) -> None:
        if not users:
            raise ValueError("the emulator needs at least one user")
        self.slack = slack
        self.users = tuple(users)
        self.channels = dict(channels)
        self.commands = tuple(commands)
        self.message_shortcuts = tuple(message_shortcuts)
        self._users = {u.id: u for u in self.users}
        self._channel_names = {cid: name for name, cid in self.channels.items()}

    def user(self, user_id: str) -> EmulatedUser:
        try:
            return self._users[user_id]
        except KeyError:
            raise LookupError(f"no user {user_id!r} in the emulator") from None

    def ids_with_role(self, role: str) -> list[str]:
        return [u.id for u in self.users if u.role == role]

    def channel(self, channel: str) -> str:
        """The id of one of the emulator's channels, given by name or id."""
        channel_id = self.slack.channel_id(channel)
        if channel_id is None or channel_id not in self._channel_names:
            raise LookupError(f"no channel {channel!r} in the emulator")
        return channel_id

    def channel_name(self, channel_id: str) -> str:
        if channel_id == APP_DM:
            return "bertbot"
        return self._channel_names.get(channel_id, channel_id)

    def has_shortcut(self, callback_id: str) -> bool:
        return callback_id in {cid for _, cid in self.message_shortcuts}

    def names(self) -> dict[str, str]:
        """User names to ids (how ``@name`` in a message becomes a mention)."""
        return {u.name: u.id for u in self.users}

    def render_context(self, user_id: str) -> render.RenderContext:
        users = {u.id: u.name for u in self.users}
        users[self.slack.bot_user_id] = "bertbot"
        return render.RenderContext(
            users=users,
            channels=self._channel_names,
            team_domain=self.slack.team_domain,
            me=user_id,
        )

    def config(self) -> dict[str, Any]:
        """The workspace's fixed facts: users, channels, commands, shortcuts."""
        return {
            "team": {"id": self.slack.team_id, "domain": self.slack.team_domain},
            "bot": {"id": self.slack.bot_user_id, "name": "bertbot"},
            "users": [
                {"id": u.id, "name": u.name, "real_name": u.real_name, "role": u.role}
                for u in self.users
            ],
            "channels": [{"id": cid, "name": name} for name, cid in self.channels.items()],
            "app_dm": APP_DM,
            "commands": list(self.commands),
            "shortcuts": [{"title": t, "callback_id": c} for t, c in self.message_shortcuts],
        }
