""" "Why?" buttons on alerts, ``/classify`` answers and the Home tab's review items.

The click is acknowledged first; the explanation (a batched model call) is computed after,
on the listener's worker thread, and answered privately: ephemeral through the
response_url for messages, or on top of the re-published Home tab (which has no
response_url). Who may ask is checked server-side by
:meth:`bot.services.explanations.ExplanationService.explain`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.listeners.events.home import publish_home
from bot.listeners.team import team_of
from bot.services.errors import BotError, NotAllowedError
from bot.services.explanations import ExplanationService
from bot.services.status import StatusService
from bot.ui import blocks
from bot.ui.explain import explanation_blocks, explanation_text


def from_home_tab(body: Mapping[str, Any]) -> bool:
    return (body.get("view") or {}).get("type") == "home"


def register(
    app: App, explanations: ExplanationService, status: StatusService | None = None
) -> None:
    @app.action(blocks.WHY_ACTION)
    def why_clicked(
        ack: Ack,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: Respond,
        client: WebClient,
        logger: logging.Logger,
    ) -> None:
        ack()
        parsed = blocks.parse_why_value(action.get("value"))
        user_id = (body.get("user") or {}).get("id")
        if parsed is None or not user_id:
            logger.warning("ignoring a malformed Why? action (value %r)", action.get("value"))
            return
        prediction_id, requested_by = parsed
        answer: list[dict[str, Any]] | None = None
        try:
            explained = explanations.explain(
                user_id=str(user_id),
                prediction_id=prediction_id,
                requested_by=requested_by,
                team_id=team_of(body),
            )
        except BotError as exc:
            if isinstance(exc, NotAllowedError):
                logger.info("refused Why? from %s on prediction %s", user_id, prediction_id)
            text = str(exc)
        else:
            text, answer = explanation_text(explained), explanation_blocks(explained)
        if from_home_tab(body):
            if status is None:  # pragma: no cover - the Home tab exists only with a status
                return
            notice = None if answer else f":warning: {blocks.escape(text)}"
            publish_home(
                client,
                status,
                str(user_id),
                logger,
                team_id=team_of(body),
                notice=notice,
                answer=answer,
            )
            return
        respond(text=text, blocks=answer, response_type="ephemeral", replace_original=False)
