"""Slash commands, one module per command, each with a ``register``."""

from __future__ import annotations

from slack_bolt import App

from bot.listeners.commands import classify, retrain
from bot.listeners.commands import status as status_command
from bot.services import BotServices
from bot.services.status import StatusService


def register(app: App, services: BotServices, *, status: StatusService | None = None) -> None:
    classify.register(app, services.classification, services.corrections)
    retrain.register(app, services.roles)
    if status is not None:
        status_command.register(app, status, services.policies, services.workspace_roles)
