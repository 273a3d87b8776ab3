"""``/bertbot status`` (and ``help``): models, metrics, labels and the next retrain, privately;
``/bertbot policy``: the moderation policy modal (admins); ``/bertbot roles``: the
workspace's roles (its admins). Every subcommand is for the workspace the command came from."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.listeners.commands.policy import open_policy_modal
from bot.listeners.commands.roles import roles_answer
from bot.services.policy import PolicyService
from bot.services.status import StatusService
from bot.services.workspace_roles import RoleService
from bot.ui import status as views

COMMAND = views.COMMAND


def register(
    app: App,
    status: StatusService,
    policies: PolicyService | None = None,
    roles: RoleService | None = None,
) -> None:
    @app.command(COMMAND)
    def bertbot_command(
        ack: Ack,
        command: dict[str, Any],
        respond: Respond,
        client: WebClient,
        logger: logging.Logger,
    ) -> None:
        words = (command.get("text") or "").split()
        subcommand = words[0].lower() if words else "help"
        team_id = command.get("team_id")
        if subcommand == "roles" and roles is not None:
            ack()
            text = roles_answer(
                roles, words[1:], user_id=command.get("user_id"), team_id=team_id, logger=logger
            )
            respond(text=text, response_type="ephemeral")
            return
        if subcommand == "policy" and policies is not None:
            ack()
            refusal = open_policy_modal(
                client,
                policies,
                user_id=command.get("user_id"),
                trigger_id=str(command.get("trigger_id") or ""),
                logger=logger,
                team_id=team_id,
            )
            if refusal:
                respond(text=refusal, response_type="ephemeral")
            return
        if subcommand != "status":
            unknown = None if subcommand == "help" else words[0]
            ack(
                text=views.usage_text(),
                blocks=views.usage_blocks(unknown),
                response_type="ephemeral",
            )
            return
        ack()
        report = status.status(command.get("user_id"), team_id)
        answer = respond(
            text=views.status_text(report),
            blocks=views.status_blocks(report),
            response_type="ephemeral",
        )
        if answer.status_code != 200:
            logger.warning(
                "%s status for %s was refused by Slack: %s %s",
                COMMAND,
                command.get("user_id"),
                answer.status_code,
                answer.body[:200],
            )
