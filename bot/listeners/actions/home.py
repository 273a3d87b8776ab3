"""Label buttons (and selects) in the Home tab's "Needs review" queue.

A click stores a correction through
:meth:`bot.services.corrections.CorrectionService.correct`, the path every labelling control
uses (role checked server-side, idempotent, linked to the prediction and its model
version), then re-publishes the tab with the outcome on top. A Home tab click has no
response_url, so a refusal is shown the same way.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.listeners.actions.label import correct_click, parse_click
from bot.listeners.events.home import publish_home
from bot.services.corrections import CorrectionService
from bot.services.errors import BotError
from bot.services.status import StatusService
from bot.ui import blocks
from bot.ui.home import HOME_LABEL_ACTION_PREFIX, HOME_RELABEL_ACTION

HOME_LABEL_ACTIONS = re.compile(
    "^(" + re.escape(HOME_LABEL_ACTION_PREFIX) + r"[a-z0-9_]+|" + HOME_RELABEL_ACTION + ")$"
)


def register(app: App, corrections: CorrectionService, status: StatusService) -> None:
    @app.action(HOME_LABEL_ACTIONS)
    def home_label_clicked(
        ack: Ack,
        body: dict[str, Any],
        action: dict[str, Any],
        client: WebClient,
        logger: logging.Logger,
    ) -> None:
        ack()
        click = parse_click(body, action)
        if click is None:
            logger.warning("ignoring a malformed Home label action %s", action.get("action_id"))
            return
        try:
            correction = correct_click(corrections, click, logger, "Home label")
        except BotError as exc:
            notice = f":warning: {blocks.escape(str(exc))}"
        else:
            if correction.created:
                notice = ":white_check_mark: " + blocks.labelled_text(correction, click.user_id)
            else:
                notice = ":information_source: " + blocks.repeated_text(correction)
        publish_home(client, status, click.user_id, logger, notice=notice)
