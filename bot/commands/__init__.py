"""Slash commands, one module per command, each with ``register(app, services)``."""

from __future__ import annotations

from slack_bolt import App

from bot.commands import classify
from bot.services import BotServices


def register(app: App, services: BotServices) -> None:
    classify.register(app, services)
