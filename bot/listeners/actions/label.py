"""Label buttons and "Relabel as …" selects, from alerts and ``/classify`` results.

Every click is checked server-side (moderators and admins only). A shared alert is
updated in place with "Labelled <label> by <@user>"; an ephemeral ``/classify`` result
cannot be edited from its click (Slack sends no copy of it), so the user gets a private
confirmation instead.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.listeners.team import team_of
from bot.services.corrections import Correction, CorrectionService
from bot.services.errors import BotError, NotAllowedError
from bot.ui import blocks

LABEL_ACTIONS = re.compile(
    "^(" + re.escape(blocks.LABEL_ACTION_PREFIX) + r"[a-z0-9_]+|" + blocks.RELABEL_ACTION + ")$"
)


@dataclass(frozen=True)
class LabelClick:
    """What a labelling click asks for, and where the clicked message is."""

    user_id: str
    prediction_id: int
    label: str
    channel_id: str | None
    message_ts: str | None
    ephemeral: bool
    message_blocks: list[dict[str, Any]] | None
    team_id: str | None = None


def parse_click(body: Mapping[str, Any], action: Mapping[str, Any]) -> LabelClick | None:
    """Read a block_actions payload; None when it is not a well-formed label click."""
    prediction_id = blocks.prediction_id_of(action.get("block_id"))
    if action.get("type") == "static_select":
        label = (action.get("selected_option") or {}).get("value")
    else:
        label = action.get("value")
    user_id = (body.get("user") or {}).get("id")
    if prediction_id is None or not label or not user_id:
        return None
    container = body.get("container") or {}
    message = body.get("message") or {}
    return LabelClick(
        user_id=str(user_id),
        prediction_id=prediction_id,
        label=str(label),
        channel_id=container.get("channel_id") or (body.get("channel") or {}).get("id"),
        message_ts=container.get("message_ts") or message.get("ts"),
        ephemeral=bool(container.get("is_ephemeral")),
        message_blocks=message.get("blocks"),
        team_id=team_of(body),
    )


def correct_click(
    corrections: CorrectionService, click: LabelClick, logger: logging.Logger, what: str = "label"
) -> Correction:
    """Store a click's label (role checked by the service); log a refusal or failure.

    Raises:
        BotError: Refused or failed; the message is for the user.
    """
    try:
        return corrections.correct(
            user_id=click.user_id,
            prediction_id=click.prediction_id,
            label=click.label,
            team_id=click.team_id,
        )
    except NotAllowedError:
        logger.info(
            "refused a %s from %s on prediction %s", what, click.user_id, click.prediction_id
        )
        raise
    except BotError as exc:
        logger.warning("%s on prediction %s failed: %s", what, click.prediction_id, exc)
        raise


def register(app: App, corrections: CorrectionService) -> None:
    @app.action(LABEL_ACTIONS)
    def label_clicked(
        ack: Ack,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: Respond,
        client: WebClient,
        logger: logging.Logger,
    ) -> None:
        ack()
        click = parse_click(body, action)
        if click is None:
            logger.warning("ignoring a malformed label action %s", action.get("action_id"))
            return
        try:
            correction = correct_click(corrections, click, logger)
        except BotError as exc:
            respond(text=str(exc), response_type="ephemeral", replace_original=False)
            return
        if not correction.created:
            respond(
                text=blocks.repeated_text(correction),
                response_type="ephemeral",
                replace_original=False,
            )
            return
        status = blocks.labelled_text(correction, click.user_id)
        if (
            not click.ephemeral
            and click.channel_id
            and click.message_ts
            and click.message_blocks is not None
        ):
            try:
                client.chat_update(
                    channel=click.channel_id,
                    ts=click.message_ts,
                    text=status,
                    blocks=blocks.with_status(click.message_blocks, click.prediction_id, status),
                )
            except SlackApiError:
                logger.exception(
                    "stored a label for prediction %s but could not update %s/%s",
                    click.prediction_id,
                    click.channel_id,
                    click.message_ts,
                )
                respond(
                    text=f"{status}. Stored, but the alert could not be updated.",
                    response_type="ephemeral",
                    replace_original=False,
                )
        else:
            respond(text=status, response_type="ephemeral", replace_original=False)
