"""``views.open``, ``views.update`` and ``views.publish``: the view comes back with its ids."""

from __future__ import annotations

import uuid
from typing import Any

from bot.emulator.outbound.identity import LOCAL_APP_ID
from bot.emulator.outbound.state import SlackState, error


def view(state: SlackState, params: dict[str, Any], *, needs: str) -> dict[str, Any]:
    """Answer a ``views.*`` call that must carry ``needs`` (or, to update, an external id)."""
    shown = params.get("view")
    if not isinstance(shown, dict):
        return error("invalid_arguments")
    if not params.get(needs) and not (needs == "view_id" and params.get("external_id")):
        return error("invalid_arguments")
    view_id = params.get("view_id") or "V" + uuid.uuid4().hex[:10].upper()
    return {
        "ok": True,
        "view": {
            **shown,
            "id": view_id,
            "team_id": state.team_id,
            "app_id": LOCAL_APP_ID,
            "bot_id": state.bot_id,
            "hash": uuid.uuid4().hex[:16],
        },
    }


def open_(state: SlackState, params: dict[str, Any]) -> dict[str, Any]:
    return view(state, params, needs="trigger_id")


def update(state: SlackState, params: dict[str, Any]) -> dict[str, Any]:
    return view(state, params, needs="view_id")


def publish(state: SlackState, params: dict[str, Any]) -> dict[str, Any]:
    return view(state, params, needs="user_id")
