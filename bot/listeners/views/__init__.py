"""Modal submissions (``view_submission``), each module with a ``register``."""

from __future__ import annotations

from slack_bolt import App

from bot.listeners.views import admin, appeal, label_modal, policy
from bot.services import BotServices
from bot.services.status import StatusService


def register(app: App, services: BotServices, *, status: StatusService | None = None) -> None:
    admin.register(app, services.roles)
    appeal.register(app, services.appeals, services.outbox.policy.channel)
    policy.register(app, services.policies)
    if status is not None:  # the label modal is opened by the shortcut, registered with status
        label_modal.register(app, services.corrections)
