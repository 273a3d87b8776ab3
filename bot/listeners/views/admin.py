"""The reason modal behind the ``/retrain`` card's "Promote anyway" and "Roll back" buttons.

The submission is checked again server-side (admins only), moves the alias through
:meth:`bot.services.retraining.RetrainService.move` (audited with who and why) and
re-renders the card from the registry.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError
from slack_sdk.webhook import WebhookClient

from bot.listeners.team import team_of
from bot.services.errors import BotError, NotAllowedError
from bot.services.retraining import CONTEXT_KEY, RetrainService
from bot.services.roles import Roles
from bot.ui import retrain as retrain_ui
from bot.ui.retrain import CardRef
from trainer.promotion import AliasMove


def register(app: App, roles: Roles) -> None:
    @app.view(retrain_ui.MOVE_CALLBACK)
    def move_submitted(
        ack: Ack,
        body: dict[str, Any],
        view: dict[str, Any],
        client: WebClient,
        context: BoltContext,
        logger: logging.Logger,
    ) -> None:
        user_id = (body.get("user") or {}).get("id")
        parsed = retrain_ui.parse_move_submission(view)
        if parsed is None:
            logger.warning("ignoring a malformed %s submission", retrain_ui.MOVE_CALLBACK)
            ack()
            return
        request, card = parsed
        retraining: RetrainService | None = context.get(CONTEXT_KEY)
        team_id = team_of(body)
        if user_id is None or not roles.is_admin(user_id, team_id) or retraining is None:
            logger.info("refused a %s submission from %s", request.action, user_id)
            refusal = retrain_ui.NOT_ADMIN_MOVE if retraining else retrain_ui.NOT_ENABLED
            ack(response_action="errors", errors={retrain_ui.REASON_BLOCK: refusal})
            return
        if not request.reason.strip():
            ack(
                response_action="errors",
                errors={retrain_ui.REASON_BLOCK: "Say why: it is kept in the audit log."},
            )
            return
        ack()
        try:
            move = retraining.move(request, user_id=user_id, team_id=team_id)
        except BotError as exc:
            level = logging.INFO if isinstance(exc, NotAllowedError) else logging.WARNING
            logger.log(
                level, "%s of %s by %s refused: %s", request.action, request.task, user_id, exc
            )
            _tell(client, card, user_id, str(exc), logger)
            return
        _update_card(client, retraining, request.run_id, card, move, user_id, logger)


def _update_card(
    client: WebClient,
    retraining: RetrainService,
    run_id: int | None,
    card: CardRef,
    move: AliasMove,
    user_id: str,
    logger: logging.Logger,
) -> None:
    status = retrain_ui.moved_text(move, user_id)
    if run_id is None:
        _tell(client, card, user_id, status, logger)
        return
    content = retrain_ui.result_card(retraining.report(run_id), status=status)
    try:
        if card.channel_id and card.ts:
            client.chat_update(
                channel=card.channel_id, ts=card.ts, text=content.text, blocks=content.blocks
            )
        elif card.response_url:
            WebhookClient(card.response_url).send(
                text=content.text, blocks=content.blocks, replace_original=True
            )
    except (SlackClientError, OSError):
        logger.exception("moved %s production but could not update the card", move.task)
        _tell(client, card, user_id, f"{status} (the card could not be updated)", logger)


def _tell(
    client: WebClient, card: CardRef, user_id: str, text: str, logger: logging.Logger
) -> None:
    """A private note to the admin, next to the card."""
    try:
        if card.response_url and (card.ts is None or not card.channel_id):
            # An ephemeral card: the bot may not be able to post in its channel.
            WebhookClient(card.response_url).send(
                text=text, response_type="ephemeral", replace_original=False
            )
        elif card.channel_id:
            client.chat_postEphemeral(channel=card.channel_id, user=user_id, text=text)
    except (SlackClientError, OSError):
        logger.warning("could not tell %s: %s", user_id, text, exc_info=True)
