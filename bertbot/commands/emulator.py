"""``bertbot serve --emulator``: the bot over HTTP behind a local Slack emulator.

The emulator is its own little workspace: the bot calls its Web API with the fake's
well-known local credentials, its users play member, moderator and admin (added to the
configured roles), and alerts go to its #moderators. Everything listens on loopback only.
"""

from __future__ import annotations

from bertbot.commands import CommandError
from bertbot.settings import Settings


class ServedEmulator:
    """The emulator's Web API (started now) and its page (bound now, served by :meth:`open`).

    Raises:
        CommandError: ``host`` is not a loopback address, or the page's port is taken.
    """

    def __init__(self, host: str, port: int) -> None:
        from bot.emulator import Emulator, EmulatorWebServer
        from bot.emulator.web import is_loopback

        if not is_loopback(host):
            raise CommandError(
                "serve --emulator listens on a loopback address only (its credentials are "
                "public); drop --host or use 127.0.0.1"
            )
        self.emulator = Emulator(host=host)
        try:
            self.page = EmulatorWebServer(self.emulator, host=host, port=port)
        except OSError as exc:
            raise CommandError(
                f"cannot serve the emulator on {host}:{port} ({exc.strerror or exc}); "
                "choose another --port"
            ) from exc
        self.emulator.start()

    def settings_for(self, settings: Settings) -> Settings:
        """The settings the bot runs with inside the emulator."""
        emulator = self.emulator
        return settings.model_copy(
            update={
                "slack_api_url": emulator.api_url,
                "slack_bot_token": None,
                "slack_signing_secret": None,
                "slack_app_token": None,
                "admins": [*settings.admins, *emulator.ids_with_role("admin")],
                "moderators": [*settings.moderators, *emulator.ids_with_role("moderator")],
                "moderators_channel": emulator.channels["moderators"],
            }
        )

    def open(self, events_url: str) -> str:
        """Send people's requests to the bot at ``events_url``; serve the page; its URL."""
        self.emulator.connect(events_url)
        self.page.start()
        return self.page.url

    def close(self) -> None:
        self.page.stop()
        self.emulator.stop()
