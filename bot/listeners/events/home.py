"""The App Home tab: published on ``app_home_opened`` (and again after a label click there)."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.listeners.team import team_of
from bot.services.status import StatusService
from bot.ui.home import home_view


def publish_home(
    client: WebClient,
    status: StatusService,
    user_id: str,
    logger: logging.Logger,
    *,
    team_id: str | None,
    notice: str | None = None,
    answer: list[dict[str, Any]] | None = None,
) -> None:
    """Build and publish one user's Home tab (``views.publish``).

    Args:
        client: The Web API client.
        status: Where the tab's content comes from.
        user_id: Whose tab.
        logger: The listener's logger.
        team_id: The user's workspace (its queue, appeals and disputes; their roles there).
        notice: An escaped mrkdwn line to show on top (the outcome of the user's last click).
        answer: Blocks to show on top (the answer to the user's last click).
    """
    view = home_view(status.home(user_id, team_id), notice=notice, answer=answer)
    client.views_publish(user_id=user_id, view=view)
    logger.debug("published the Home tab of %s (%d blocks)", user_id, len(view["blocks"]))


def register(app: App, status: StatusService) -> None:
    @app.event("app_home_opened")
    def home_opened(
        body: dict[str, Any], event: dict[str, Any], client: WebClient, logger: logging.Logger
    ) -> None:
        user_id = event.get("user")
        if event.get("tab", "home") != "home" or not user_id:
            return  # the Messages tab, or a malformed event
        publish_home(client, status, str(user_id), logger, team_id=team_of(body))
