"""Interactive components (buttons, selects, shortcuts, "Why?"), each module with a ``register``."""

from __future__ import annotations

from slack_bolt import App

from bot.listeners.actions import admin, appeal, home, label, second_opinion, shortcut, why
from bot.services import BotServices
from bot.services.status import StatusService


def register(app: App, services: BotServices, *, status: StatusService | None = None) -> None:
    label.register(app, services.corrections)
    admin.register(app, services.roles)
    appeal.register(app, services.appeals, status)
    why.register(app, services.explanations, status)
    if status is not None:
        home.register(app, services.corrections, status, services.review)
        second_opinion.register(app, services.second_opinions, status)
        shortcut.register(app, status)
