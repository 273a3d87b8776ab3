"""``/classify [task:] <text>``: a private prediction per task, label controls for moderators."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, Respond

from bot.listeners.slack_text import to_plain
from bot.services.classification import ClassificationService, parse_classify
from bot.services.corrections import CorrectionService
from bot.ui import blocks

COMMAND = "/classify"


def register(
    app: App, classification: ClassificationService, corrections: CorrectionService
) -> None:
    @app.command(COMMAND)
    def classify_command(
        ack: Ack, command: dict[str, Any], respond: Respond, logger: logging.Logger
    ) -> None:
        request = parse_classify(to_plain(command.get("text") or ""), classification.task_names)
        if request is None:
            ack(
                text=blocks.usage_text(classification.task_names, COMMAND),
                blocks=blocks.usage_blocks(classification.task_names, COMMAND),
                response_type="ephemeral",
            )
            return
        ack()
        user_id = command["user_id"]
        outcome = classification.classify(request, requested_by=user_id)
        answer = respond(
            text=blocks.classify_text(outcome),
            blocks=blocks.classify_blocks(
                outcome,
                can_label=corrections.can_label(user_id, command.get("team_id")),
                requested_by=user_id,
            ),
            response_type="ephemeral",
        )
        if answer.status_code != 200:
            logger.warning(
                "/classify answer for %s was refused by Slack: %s %s",
                user_id,
                answer.status_code,
                answer.body[:200],
            )
