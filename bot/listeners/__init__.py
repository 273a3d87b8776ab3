"""Every Slack surface the bot listens on, one folder each, wired by :func:`register`.

``commands/`` (slash commands), ``actions/`` (buttons, selects, shortcuts), ``events/``
(Events API) and ``views/`` (modal submissions). Listeners are thin: parse the payload, call
a service, render with a :mod:`bot.ui` builder. Services arrive through these ``register``
closures (or Bolt's context for the retrain service), never module globals.
"""

from __future__ import annotations

from concurrent.futures import Executor

from slack_bolt import App

from bot.listeners import actions, commands, events, views
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
    """Register every listener on ``app``.

    Args:
        app: The Bolt app.
        services: The use cases the listeners call.
        executor: Runs listeners (and the inbox's handling) after the ack.
        status: Serves ``/bertbot status``, the App Home tab and the "Label with bertbot"
            shortcut; without it those surfaces are not registered.
        clients: Each workspace's client for work after the request (default: the app's).
    """
    commands.register(app, services, status=status)
    events.register(app, services, executor=executor, status=status, clients=clients)
    actions.register(app, services, status=status)
    views.register(app, services, status=status)
