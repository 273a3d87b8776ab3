"""Who, where and what a request was, for logs: never the text people wrote."""

from __future__ import annotations

from typing import Any


def describe_request(body: Any) -> str:
    """Who, where and what a request was, for logs (never the message text)."""
    if not isinstance(body, dict):
        return "request without a body"
    kind = body.get("type") or ("command " + str(body.get("command")) if "command" in body else "?")
    # The last resort must not raise on a malformed body: every field may be missing or odd.
    user = body.get("user_id") or _id_of(body.get("user"))
    channel = body.get("channel_id") or _id_of(body.get("channel"))
    event = body.get("event")
    if isinstance(event, dict) and event:
        kind = f"event {event.get('type')}/{event.get('subtype') or '-'} {body.get('event_id')}"
        user = user or _id_of(event.get("user"))
        channel = channel or _id_of(event.get("channel"))
    actions_ = body.get("actions")
    if isinstance(actions_, list) and actions_ and isinstance(actions_[0], dict):
        kind = f"{kind} {actions_[0].get('action_id')}"
    team = body.get("team_id") or _id_of(body.get("team"))
    return f"{kind} team={team} user={user} channel={channel}"


def _id_of(value: Any) -> Any:
    """An id given as ``"U1"`` or as ``{"id": "U1"}``; None otherwise."""
    return value.get("id") if isinstance(value, dict) else value if isinstance(value, str) else None
