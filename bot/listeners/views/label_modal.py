"""The "Label with bertbot" modal's submission.

A submission stores each chosen label through
:meth:`bot.services.corrections.CorrectionService.correct` and confirms privately. The role
is checked server-side on the submission itself: a refused submission is answered with
``response_action: errors`` and stores nothing, whatever the modal it came from looked like.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.listeners.team import team_of
from bot.services.corrections import CorrectionService
from bot.services.errors import BotError
from bot.ui import blocks, label_modal


@dataclass(frozen=True)
class Submission:
    """What a label modal's submission asks for.

    Attributes:
        user_id: Who submitted.
        choices: (prediction id, label) per task a label was chosen for.
        input_blocks: The ids of the modal's input blocks (where errors are shown).
        channel_id: The labelled message's channel (from the modal's metadata).
    """

    user_id: str | None
    choices: tuple[tuple[int, str], ...]
    input_blocks: tuple[str, ...]
    channel_id: str | None


def parse_submission(body: Mapping[str, Any], view: Mapping[str, Any]) -> Submission:
    """Read a ``view_submission`` of the label modal."""
    values: Mapping[str, Any] = (view.get("state") or {}).get("values") or {}
    choices = []
    for block_id, elements in values.items():
        prediction_id = blocks.prediction_id_of(block_id)
        selected = ((elements or {}).get(label_modal.LABEL_SELECT_ACTION) or {}).get(
            "selected_option"
        )
        if prediction_id is not None and selected and selected.get("value"):
            choices.append((prediction_id, str(selected["value"])))
    try:
        metadata = json.loads(view.get("private_metadata") or "{}")
    except json.JSONDecodeError:
        metadata = {}
    channel_id = metadata.get("channel") if isinstance(metadata, dict) else None
    user_id = (body.get("user") or {}).get("id")
    return Submission(
        user_id=str(user_id) if user_id else None,
        choices=tuple(choices),
        input_blocks=tuple(str(block_id) for block_id in values),
        channel_id=str(channel_id) if channel_id else None,
    )


def _errors(submission: Submission, text: str) -> dict[str, str]:
    # Slack shows an error under an input block; a modal without one still gets the answer.
    return {block_id: text for block_id in submission.input_blocks} or {"message": text}


def register(app: App, corrections: CorrectionService) -> None:
    @app.view(label_modal.MODAL_CALLBACK)
    def label_submitted(
        ack: Ack,
        body: dict[str, Any],
        view: dict[str, Any],
        client: WebClient,
        logger: logging.Logger,
    ) -> None:
        submission = parse_submission(body, view)
        team_id = team_of(body)
        if not corrections.can_label(submission.user_id, team_id):
            logger.info("refused a label modal submission from %s", submission.user_id)
            ack(
                response_action="errors",
                errors=_errors(submission, label_modal.ONLY_MODERATORS),
            )
            return
        if not submission.choices:
            ack(response_action="errors", errors=_errors(submission, label_modal.PICK_ONE))
            return
        ack()
        assert submission.user_id is not None  # can_label(None) is False
        lines = []
        for prediction_id, label in submission.choices:
            try:
                correction = corrections.correct(
                    user_id=submission.user_id,
                    prediction_id=prediction_id,
                    label=label,
                    team_id=team_id,
                )
            except BotError as exc:
                logger.warning("modal label on prediction %s failed: %s", prediction_id, exc)
                lines.append(f":warning: {blocks.escape(str(exc))}")
                continue
            if correction.created:
                lines.append(blocks.labelled_text(correction, submission.user_id))
            else:
                lines.append(blocks.repeated_text(correction))
        _confirm(client, submission, label_modal.saved_text(lines), logger)


def _confirm(client: WebClient, submission: Submission, text: str, logger: logging.Logger) -> None:
    """Tell the moderator what was stored, privately, in the labelled message's channel."""
    if submission.channel_id is None or submission.user_id is None:
        return
    try:
        client.chat_postEphemeral(channel=submission.channel_id, user=submission.user_id, text=text)
    except SlackApiError as exc:  # e.g. bertbot is not in that channel; the labels are stored
        logger.warning(
            "stored labels for %s but could not confirm in %s: %s",
            submission.user_id,
            submission.channel_id,
            exc.response.get("error"),
        )
