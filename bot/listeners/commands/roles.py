"""``/bertbot roles list|add|remove @user moderator|admin``: a workspace's admins manage its
roles (routed here by ``/bertbot``'s listener, :mod:`.status`). The service checks the role
and audits every change; this only parses the words and answers privately."""

from __future__ import annotations

import logging

from bot.services.errors import BotError, NotAllowedError
from bot.services.workspace_roles import RoleService
from bot.ui import roles as roles_ui


def roles_answer(
    service: RoleService,
    words: list[str],
    *,
    user_id: str | None,
    team_id: str | None,
    logger: logging.Logger,
) -> str:
    """Run ``/bertbot roles …`` (``words`` after ``roles``) and say what happened.

    Listing is for the workspace's admins too: it names its moderators.
    """
    if not user_id or not team_id:
        return "Slack did not say who or which workspace asked; nothing changed."
    action = words[0].lower() if words else "list"
    try:
        if action == "list" and len(words) <= 1:
            if not service.can_manage(user_id, team_id):
                raise NotAllowedError("Only this workspace's admins can see its roles.")
            return roles_ui.listing_text(service.listing(team_id))
        if action in ("add", "remove") and len(words) == 3:
            change = getattr(service, action)(
                team_id=team_id, user_id=words[1], role=words[2].lower(), by=user_id
            )
            return roles_ui.change_text(change)
    except NotAllowedError as exc:
        logger.info("refused /bertbot roles %s from %s in %s", action, user_id, team_id)
        return str(exc)
    except BotError as exc:
        return f"{exc}\n{roles_ui.USAGE}"
    return roles_ui.USAGE
