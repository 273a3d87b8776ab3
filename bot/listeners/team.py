"""The workspace (team) a request came from: the team every role check and read is for."""

from __future__ import annotations

from typing import Any


def team_of(body: Any) -> str | None:
    """The Slack team id of a command, action, view submission or event body.

    Slash commands carry ``team_id``; interactions ``team.id`` (``user.team_id`` as well);
    Events API envelopes ``team_id``. None when the body names no team.
    """
    if not isinstance(body, dict):
        return None
    for value in (
        body.get("team_id"),
        _id_of(body.get("team")),
        (body.get("user") or {}).get("team_id") if isinstance(body.get("user"), dict) else None,
    ):
        if isinstance(value, str) and value:
            return value
    return None


def _id_of(value: Any) -> Any:
    return value.get("id") if isinstance(value, dict) else None
