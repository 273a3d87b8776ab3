"""The small families: ``auth.test``, ``users.info``, ``reactions.add`` and
``apps.connections.open`` (Socket Mode)."""

from __future__ import annotations

from typing import Any

from bot.emulator.outbound.records import FakeMessage
from bot.emulator.outbound.state import SlackState, error


def auth_test(state: SlackState, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "ok": True,
        "url": f"https://{state.team_domain}.slack.com/",
        "team": state.team_domain,
        "user": state.users[state.bot_user_id],
        "team_id": state.team_id,
        "user_id": state.bot_user_id,
        "bot_id": state.bot_id,
        "is_enterprise_install": False,
    }


def users_info(state: SlackState, params: dict[str, Any]) -> dict[str, Any]:
    user_id = str(params.get("user", ""))
    name = state.users.get(user_id)
    if name is None:
        return error("user_not_found")
    return {
        "ok": True,
        "user": {
            "id": user_id,
            "team_id": state.team_id,
            "name": name,
            "real_name": name,
            "is_bot": user_id == state.bot_user_id,
            "deleted": False,
            "tz": "UTC",
            "profile": {"display_name": name, "real_name": name},
        },
    }


def reactions_add(state: SlackState, params: dict[str, Any]) -> dict[str, Any]:
    channel = state.channel_id(str(params.get("channel", "")))
    name = str(params.get("name", "")).strip(":")
    if channel is None:
        return error("channel_not_found")
    if not name:
        return error("invalid_name")
    key = (channel, str(params.get("timestamp", "")))
    message = state.messages.setdefault(key, FakeMessage(channel, key[1], "", [], user="U0UNKNOWN"))
    if name in message.reactions:
        return error("already_reacted")
    message.reactions.add(name)
    return {"ok": True}


def usergroups_users_list(state: SlackState, params: dict[str, Any]) -> dict[str, Any]:
    group = str(params.get("usergroup", ""))
    if group not in state.usergroups:
        return error("no_such_subteam")
    return {"ok": True, "users": list(state.usergroups[group])}


def connections_open(state: SlackState, params: dict[str, Any]) -> dict[str, Any]:
    # Slack answers with a fresh wss:// URL; a test points this at its ws:// server.
    if state.socket_mode_url is None:
        return error("socket_mode_not_enabled")
    return {"ok": True, "url": state.socket_mode_url}
