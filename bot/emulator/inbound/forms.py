"""A modal's inputs as Slack reads them into ``view.state.values``: pure functions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bot.emulator import render
from bot.emulator.inbound import payloads


def inputs(view: Mapping[str, Any]) -> Iterable[tuple[str, Mapping[str, Any], bool]]:
    """(block id, element, optional) of each input block the page can fill in."""
    for block in view.get("blocks") or []:
        if block.get("type") == "input" and isinstance(block.get("element"), Mapping):
            element = block["element"]
            if element.get("type") in render.INPUT_TYPES:
                yield str(block["block_id"]), element, bool(block.get("optional"))


def with_state(view: Mapping[str, Any], values: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The view with ``state.values`` as Slack builds it from the inputs' current values.

    Args:
        view: The view as shown.
        values: block id -> action id -> the raw value the page read from the form.
    """
    state: dict[str, dict[str, Any]] = {}
    for block_id, element, _optional in inputs(view):
        action_id = str(element.get("action_id"))
        raw = (values.get(block_id) or {}).get(action_id)
        state[block_id] = {action_id: payloads.state_value(element, raw)}
    return {**view, "state": {"values": state}}


def missing_required(view: Mapping[str, Any]) -> list[str]:
    """The block ids of required inputs left empty (Slack's client refuses to submit)."""
    values = (view.get("state") or {}).get("values") or {}
    missing = []
    for block_id, element, optional in inputs(view):
        if optional:
            continue
        state = (values.get(block_id) or {}).get(str(element.get("action_id"))) or {}
        if not (
            state.get("value") or state.get("selected_option") or state.get("selected_options")
        ):
            missing.append(block_id)
    return missing
