"""Events API listeners, each module with a ``register``."""

from __future__ import annotations

from concurrent.futures import Executor

from slack_bolt import App

from bot.listeners.events import home, inbox
from bot.services import BotServices
from bot.services.status import StatusService
from bot.slack_clients import SlackClients


def register(
    app: App,
    services: BotServices,
    *,
    executor: Executor,
    status: StatusService | None = None,
    clients: SlackClients | None = None,
) -> None:
    inbox.register(
        app,
        services.inbox,
        services.ingestion,
        services.outbox,
        executor,
        workspaces=services.workspaces,
        clients=clients,
    )
    if status is not None:
        home.register(app, status)
