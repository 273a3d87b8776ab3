"""``/retrain [task] [--force]``: admins retrain a task (no task: every active task).

The listener acks at once, then asks :class:`bot.services.retraining.RetrainService` to queue the
jobs; the training itself runs on the service's worker thread, which reports through a
:class:`bot.services.retrain_card.SlackRetrainCard` in the command's channel.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient

from bot.services.errors import BotError, NotAllowedError
from bot.services.retrain_card import SlackRetrainCard
from bot.services.retrain_requests import JobInfo, RequestOutcome, parse_retrain
from bot.services.retraining import CONTEXT_KEY, RetrainService
from bot.services.roles import Roles
from bot.slack_clients import CLIENTS_CONTEXT_KEY, SlackClients
from bot.ui import retrain as retrain_ui

COMMAND = "/retrain"


def register(app: App, roles: Roles) -> None:
    @app.command(COMMAND)
    def retrain_command(
        ack: Ack,
        command: dict[str, Any],
        respond: Respond,
        client: WebClient,
        context: BoltContext,
        logger: logging.Logger,
    ) -> None:
        user_id = command["user_id"]
        team_id = command.get("team_id")
        if not roles.is_admin(user_id, team_id):
            logger.info("refused /retrain from %s: not an admin", user_id)
            ack(text=retrain_ui.NOT_ADMIN_RETRAIN, response_type="ephemeral")
            return
        retraining: RetrainService | None = context.get(CONTEXT_KEY)
        if retraining is None:
            ack(text=retrain_ui.NOT_ENABLED, response_type="ephemeral")
            return
        try:
            request = parse_retrain(command.get("text") or "", retraining.task_names)
        except BotError as exc:
            ack(text=str(exc), response_type="ephemeral")
            return
        if request is None:
            ack(text=retrain_ui.usage_text(retraining.task_names), response_type="ephemeral")
            return
        ack()
        channel_id = command.get("channel_id")
        response_url = command.get("response_url")
        # The card posts for as long as the retrain runs: it asks for the workspace's
        # client each time (a rotated token may expire before the job ends).
        clients: SlackClients | None = context.get(CLIENTS_CONTEXT_KEY)
        team_id = command.get("team_id")
        card_client = client if clients is None else (lambda: clients.for_team(team_id))

        def card_for(_job: JobInfo) -> SlackRetrainCard:
            return SlackRetrainCard(
                card_client,
                channel_id=channel_id,
                response_url=response_url,
                min_interval_s=retraining.progress_interval_s,
            )

        def answer(outcome: RequestOutcome) -> None:
            respond(text=retrain_ui.request_text(outcome), response_type="ephemeral")

        try:
            retraining.request(
                request,
                user_id=user_id,
                reporter_for=card_for,
                acknowledge=answer,
                team_id=team_id,
            )
        except NotAllowedError as exc:
            respond(text=str(exc), response_type="ephemeral")
        except BotError as exc:
            logger.warning("/retrain %s for %s failed: %s", request.tasks, user_id, exc)
            respond(text=str(exc), response_type="ephemeral")
