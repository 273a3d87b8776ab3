"""The ``/bertbot policy`` modal's submission: a change (admins only, checked again here
by the service), answered by updating the modal with the outcome on top."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App

from bot.listeners.commands.policy import policy_view
from bot.listeners.team import team_of
from bot.services.errors import BotError, NotAllowedError
from bot.services.policy import PolicyService
from bot.ui import policy as policy_ui
from bot.ui.blocks import escape


def register(app: App, policies: PolicyService) -> None:
    @app.view(policy_ui.POLICY_CALLBACK)
    def policy_submitted(
        ack: Ack, body: dict[str, Any], view: dict[str, Any], logger: logging.Logger
    ) -> None:
        user_id = str((body.get("user") or {}).get("id") or "")
        team_id = team_of(body)
        form = policy_ui.parse_policy_form(view)
        if isinstance(form, dict):
            ack(response_action="errors", errors=form)
            return
        try:
            if form.clear:
                result = policies.clear(
                    actor=user_id, channel_id=form.channel_id, task=form.task, team_id=team_id
                )
            else:
                result = policies.set(
                    actor=user_id,
                    channel_id=form.channel_id,
                    task=form.task,
                    watch=form.watch,
                    threshold=form.threshold,
                    action=form.action,
                    exempt=form.exempt,
                    team_id=team_id,
                )
        except NotAllowedError as exc:
            logger.info("policy change by %s refused: %s", user_id, exc)
            ack(response_action="errors", errors={policy_ui.CHANNEL_BLOCK: str(exc)})
            return
        except BotError as exc:
            block = policy_ui.THRESHOLD_BLOCK if "threshold" in str(exc) else policy_ui.TASK_BLOCK
            ack(response_action="errors", errors={block: str(exc)})
            return
        notice = f":white_check_mark: <#{result.channel_id}> now: {policy_ui.policy_line(result)}"
        if result.note:
            notice += f"\n:information_source: {escape(result.note)}"
        channels = policy_ui.channels_of(view)
        ack(response_action="update", view=policy_view(policies, channels, notice))
