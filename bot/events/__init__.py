"""Events API listeners, each module with ``register(app, services)``."""

from __future__ import annotations

from slack_bolt import App

from bot.events import messages
from bot.services import BotServices


def register(app: App, services: BotServices) -> None:
    messages.register(app, services)
