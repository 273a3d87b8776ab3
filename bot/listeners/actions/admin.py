"""The ``/retrain`` card's "Promote anyway" and "Roll back" buttons.

A click is checked server-side (admins only; anyone else gets a private refusal and nothing
opens), then a modal asks why; its submission is handled in
:mod:`bot.listeners.views.admin`.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.listeners.team import team_of
from bot.services.retraining import CONTEXT_KEY, RetrainService
from bot.services.roles import Roles
from bot.ui import retrain as retrain_ui
from bot.ui.retrain import CardRef

MOVE_ACTIONS = re.compile("^(" + "|".join(map(re.escape, retrain_ui.MOVE_ACTIONS)) + ")$")


def register(app: App, roles: Roles) -> None:
    @app.action(MOVE_ACTIONS)
    def move_clicked(
        ack: Ack,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: Respond,
        client: WebClient,
        context: BoltContext,
        logger: logging.Logger,
    ) -> None:
        ack()
        user_id = (body.get("user") or {}).get("id")
        if not roles.is_admin(user_id, team_of(body)):
            logger.info("refused %s from %s: not an admin", action.get("action_id"), user_id)
            respond(
                text=retrain_ui.NOT_ADMIN_MOVE, response_type="ephemeral", replace_original=False
            )
            return
        retraining: RetrainService | None = context.get(CONTEXT_KEY)
        if retraining is None:
            respond(text=retrain_ui.NOT_ENABLED, response_type="ephemeral", replace_original=False)
            return
        request = retrain_ui.parse_move_value(action.get("action_id"), action.get("value"))
        if request is None:
            logger.warning("ignoring a malformed card action %s", action.get("action_id"))
            return
        container = body.get("container") or {}
        card = CardRef(
            channel_id=container.get("channel_id") or (body.get("channel") or {}).get("id"),
            ts=None if container.get("is_ephemeral") else container.get("message_ts"),
            response_url=body.get("response_url"),
        )
        try:
            client.views_open(
                trigger_id=body["trigger_id"], view=retrain_ui.move_modal(request, card)
            )
        except SlackApiError:
            logger.exception("could not open the %s dialog for %s", request.action, user_id)
            respond(
                text="Slack did not open the dialog; nothing was changed. Please try again.",
                response_type="ephemeral",
                replace_original=False,
            )
