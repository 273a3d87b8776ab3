"""Interactive components (buttons, selects), each module with ``register(app, services)``."""

from __future__ import annotations

from slack_bolt import App

from bot.actions import label
from bot.services import BotServices


def register(app: App, services: BotServices) -> None:
    label.register(app, services)
