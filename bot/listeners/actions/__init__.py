"""Interactive components (buttons, selects), each module with ``register(app, services)``."""

from __future__ import annotations

from slack_bolt import App

from bot.listeners.actions import admin, home, label, shortcut
from bot.services import BotServices
from bot.services.status import StatusService


def register(app: App, services: BotServices, *, status: StatusService | None = None) -> None:
    label.register(app, services)
    admin.register(app, services)
    if status is not None:
        home.register(app, services, status)
        shortcut.register(app, services, status)
