"""The requests Slack sends to an app, built field for field: pure functions.

Slash commands are a form body; interactions (``block_actions``, ``view_submission``,
``view_closed``, ``message_action``) are a form body with one ``payload`` field holding JSON;
events are ``event_callback`` JSON (see :meth:`bot.emulator.inbound.sender.SlackSender.event`).
"""

from __future__ import annotations

import json
import time
import urllib.parse
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

VERIFICATION_TOKEN = "verification-token-unused"


@dataclass(frozen=True)
class Workspace:
    """The ids every payload carries."""

    team_id: str
    team_domain: str
    api_app_id: str


def user_object(user_id: str, name: str, workspace: Workspace) -> dict[str, Any]:
    return {"id": user_id, "username": name, "name": name, "team_id": workspace.team_id}


def form_body(fields: Mapping[str, str]) -> bytes:
    return urllib.parse.urlencode(fields).encode()


def interaction_body(payload: Mapping[str, Any]) -> bytes:
    """An interaction as Slack posts it: ``payload=<json>``, form-encoded."""
    return form_body({"payload": json.dumps(payload)})


def action_ts() -> str:
    return f"{time.time():.6f}"


def new_trigger_id() -> str:
    """A fresh ``trigger_id``, shaped like Slack's (``<seconds>.<digits>.<hex>``)."""
    return f"{int(time.time())}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex[:16]}"


def slash_command(
    workspace: Workspace,
    *,
    command: str,
    text: str,
    user_id: str,
    user_name: str,
    channel_id: str,
    channel_name: str,
    response_url: str,
    trigger_id: str,
) -> dict[str, str]:
    """The form fields of a slash command."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": workspace.team_id,
        "team_domain": workspace.team_domain,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": workspace.api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id,
    }


def message_block_actions(
    workspace: Workspace,
    *,
    user: Mapping[str, Any],
    actions: Sequence[Mapping[str, Any]],
    channel_id: str,
    channel_name: str,
    message_ts: str,
    message: Mapping[str, Any] | None,
    response_url: str,
    trigger_id: str,
    state_values: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A click in a message. ``message`` is None for an ephemeral one (Slack sends no copy)."""
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": dict(user),
        "api_app_id": workspace.api_app_id,
        "token": VERIFICATION_TOKEN,
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": message is None,
        },
        "trigger_id": trigger_id,
        "team": {"id": workspace.team_id, "domain": workspace.team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": channel_name},
        "state": {"values": dict(state_values or {})},
        "response_url": response_url,
        "actions": [dict(a) for a in actions],
    }
    if message is not None:
        payload["message"] = dict(message)
    return payload


def view_block_actions(
    workspace: Workspace,
    *,
    user: Mapping[str, Any],
    actions: Sequence[Mapping[str, Any]],
    view: Mapping[str, Any],
    trigger_id: str,
) -> dict[str, Any]:
    """A click in a modal or on the App Home tab: the view (with its state) comes along."""
    return {
        "type": "block_actions",
        "user": dict(user),
        "api_app_id": workspace.api_app_id,
        "token": VERIFICATION_TOKEN,
        "container": {"type": "view", "view_id": view.get("id")},
        "trigger_id": trigger_id,
        "team": {"id": workspace.team_id, "domain": workspace.team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "view": dict(view),
        "actions": [dict(a) for a in actions],
    }


def view_submission(
    workspace: Workspace,
    *,
    user: Mapping[str, Any],
    view: Mapping[str, Any],
    trigger_id: str,
) -> dict[str, Any]:
    return {
        "type": "view_submission",
        "team": {"id": workspace.team_id, "domain": workspace.team_domain},
        "user": dict(user),
        "api_app_id": workspace.api_app_id,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id,
        "view": dict(view),
        "response_urls": [],
        "enterprise": None,
        "is_enterprise_install": False,
    }


def view_closed(
    workspace: Workspace, *, user: Mapping[str, Any], view: Mapping[str, Any], is_cleared: bool
) -> dict[str, Any]:
    return {
        "type": "view_closed",
        "team": {"id": workspace.team_id, "domain": workspace.team_domain},
        "user": dict(user),
        "api_app_id": workspace.api_app_id,
        "token": VERIFICATION_TOKEN,
        "view": dict(view),
        "is_cleared": is_cleared,
        "enterprise": None,
        "is_enterprise_install": False,
    }


def message_action(
    workspace: Workspace,
    *,
    callback_id: str,
    user: Mapping[str, Any],
    channel_id: str,
    channel_name: str,
    message: Mapping[str, Any],
    response_url: str,
    trigger_id: str,
) -> dict[str, Any]:
    """A message shortcut (the message's "⋯" menu)."""
    return {
        "type": "message_action",
        "token": VERIFICATION_TOKEN,
        "action_ts": action_ts(),
        "team": {"id": workspace.team_id, "domain": workspace.team_domain},
        "user": dict(user),
        "channel": {"id": channel_id, "name": channel_name},
        "is_enterprise_install": False,
        "enterprise": None,
        "callback_id": callback_id,
        "trigger_id": trigger_id,
        "response_url": response_url,
        "message_ts": message.get("ts"),
        "message": dict(message),
    }


def app_home_opened(
    *, user_id: str, dm_channel_id: str, event_ts: str, view: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The ``app_home_opened`` event (without its envelope); ``view`` once one was published."""
    event: dict[str, Any] = {
        "type": "app_home_opened",
        "user": user_id,
        "channel": dm_channel_id,
        "tab": "home",
        "event_ts": event_ts,
    }
    if view is not None:
        event["view"] = dict(view)
    return event


def state_value(element: Mapping[str, Any], raw: Any) -> dict[str, Any]:
    """One input's entry in ``view.state.values``, from what the page sent.

    Args:
        element: The input element as the bot defined it.
        raw: A string (text inputs, selects, radio buttons) or a list of strings
            (checkboxes); None or "" when left empty.
    """
    kind = str(element.get("type"))
    if kind in ("static_select", "radio_buttons"):
        option = find_option(element, raw) if raw else None
        return {"type": kind, "selected_option": option}
    if kind == "checkboxes":
        chosen = [str(v) for v in raw] if isinstance(raw, list) else []
        options = [o for o in element.get("options") or [] if str(o.get("value")) in chosen]
        return {"type": kind, "selected_options": options}
    if kind == "number_input":
        return {"type": kind, "value": str(raw) if raw not in (None, "") else None}
    return {"type": kind, "value": str(raw) if raw not in (None, "") else None}


def find_option(element: Mapping[str, Any], value: Any) -> dict[str, Any] | None:
    """The option of a select (or its groups) with ``value``."""
    options = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        options.extend(group.get("options") or [])
    for option in options:
        if str(option.get("value")) == str(value):
            return dict(option)
    return None


def action_of(element: Mapping[str, Any], block_id: str, value: Any = None) -> dict[str, Any]:
    """The ``actions[0]`` of a click on ``element`` (a chosen option ``value`` for selects).

    Raises:
        LookupError: A select without that option, or an element the emulator cannot click.
    """
    kind = element.get("type")
    action: dict[str, Any] = {
        "action_id": element.get("action_id"),
        "block_id": block_id,
        "type": kind,
        "action_ts": action_ts(),
    }
    if kind == "button":
        action["text"] = element.get("text")
        if "value" in element:
            action["value"] = element["value"]
        if element.get("style"):
            action["style"] = element["style"]
        return action
    if kind in ("static_select", "overflow"):
        option = find_option(element, value)
        if option is None:
            raise LookupError(f"no option {value!r} in {element.get('action_id')!r}")
        action["selected_option"] = option
        if kind == "static_select":
            action["placeholder"] = element.get("placeholder")
        return action
    raise LookupError(f"clicking a {kind} is not supported by the emulator")
