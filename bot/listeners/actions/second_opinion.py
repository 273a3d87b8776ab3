"""Second-opinion and dispute controls in the Home tab.

A moderator's click answers a request through
:meth:`bot.services.second_opinion.SecondOpinionService.answer`; an admin's click decides a
dispute through :meth:`~bot.services.second_opinion.SecondOpinionService.decide`. Roles
are checked there on every click; the tab is re-published with the outcome (or the
refusal) on top, as a Home tab click has no response_url.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.listeners.events.home import publish_home
from bot.listeners.team import team_of
from bot.services.errors import BotError, NotAllowedError
from bot.services.second_opinion import OpinionOutcome, SecondOpinionService
from bot.services.status import StatusService
from bot.ui import blocks
from bot.ui import second_opinion as ui


def _actions(prefix: str, select: str) -> re.Pattern[str]:
    return re.compile("^(" + re.escape(prefix) + r"[a-z0-9_]+|" + re.escape(select) + ")$")


OPINION_ACTIONS = _actions(ui.OPINION_ACTION_PREFIX, ui.OPINION_SELECT_ACTION)
DISPUTE_ACTIONS = _actions(ui.DISPUTE_ACTION_PREFIX, ui.DISPUTE_SELECT_ACTION)

Store = Callable[..., OpinionOutcome]


def register(app: App, opinions: SecondOpinionService, status: StatusService) -> None:
    def handle(
        what: str,
        store: Store,
        body: dict[str, Any],
        action: dict[str, Any],
        client: WebClient,
        logger: logging.Logger,
    ) -> None:
        user_id = (body.get("user") or {}).get("id")
        value = (
            (action.get("selected_option") or {}).get("value")
            if action.get("type") == "static_select"
            else action.get("value")
        )
        parsed = ui.parse_value(value)
        if not user_id or parsed is None:
            logger.warning("ignoring a malformed %s click %s", what, action.get("action_id"))
            return
        request_id, label = parsed
        try:
            outcome = store(
                user_id=str(user_id), request_id=request_id, label=label, team_id=team_of(body)
            )
        except NotAllowedError as exc:
            logger.info("refused a %s from %s on request %s", what, user_id, request_id)
            notice = f":warning: {blocks.escape(str(exc))}"
        except BotError as exc:
            logger.info("%s on request %s by %s failed: %s", what, request_id, user_id, exc)
            notice = f":warning: {blocks.escape(str(exc))}"
        else:
            icon = ":white_check_mark:" if outcome.created else ":information_source:"
            notice = f"{icon} {ui.outcome_text(outcome)}"
        publish_home(client, status, str(user_id), logger, team_id=team_of(body), notice=notice)

    @app.action(OPINION_ACTIONS)
    def opinion_clicked(
        ack: Ack,
        body: dict[str, Any],
        action: dict[str, Any],
        client: WebClient,
        logger: logging.Logger,
    ) -> None:
        ack()
        handle("second opinion", opinions.answer, body, action, client, logger)

    @app.action(DISPUTE_ACTIONS)
    def dispute_clicked(
        ack: Ack,
        body: dict[str, Any],
        action: dict[str, Any],
        client: WebClient,
        logger: logging.Logger,
    ) -> None:
        ack()
        handle("dispute decision", opinions.decide, body, action, client, logger)
