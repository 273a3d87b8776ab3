"""Events API listeners, each module with a ``register``."""

from __future__ import annotations

from slack_bolt import App

from bot.listeners.events import home, messages
from bot.services import BotServices
from bot.services.status import StatusService


def register(app: App, services: BotServices, *, status: StatusService | None = None) -> None:
    messages.register(app, services.ingestion, services.outbox)
    if status is not None:
        home.register(app, status)
