"""The views people see: each person's modal stack and App Home tab.

They change when the bot calls ``views.open``/``push``/``update``/``publish`` (see
:mod:`bot.emulator.sync`) or answers a ``view_submission`` with a ``response_action``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.emulator import render
from bot.emulator.inbound import forms


@dataclass
class ShownView:
    """A view as shown, with the errors under its inputs."""

    view: dict[str, Any]
    errors: dict[str, str] = field(default_factory=dict)
    aliases: set[str] = field(default_factory=set)  # other ids the bot was given for it


class Views:
    """Modal stacks and Home tabs by user id. The caller holds the emulator's lock."""

    def __init__(self) -> None:
        self.modals: dict[str, list[ShownView]] = {}
        self.homes: dict[str, ShownView] = {}

    def top(self, user_id: str) -> ShownView | None:
        """The modal on top of the user's stack."""
        stack = self.modals.get(user_id) or []
        return stack[-1] if stack else None

    def find(self, user_id: str, view_id: str) -> ShownView | None:
        """One of the user's modals or their Home tab, by id."""
        views = list(self.modals.get(user_id) or [])
        if user_id in self.homes:
            views.append(self.homes[user_id])
        return next((v for v in views if v.view.get("id") == view_id), None)

    def open(self, user_id: str, view: Mapping[str, Any]) -> None:
        self.modals[user_id] = [ShownView(fill_view(view))]

    def push(self, user_id: str, view: Mapping[str, Any]) -> None:
        if self.modals.get(user_id):
            self.modals[user_id].append(ShownView(fill_view(view)))

    def update(self, params: Mapping[str, Any], response: Mapping[str, Any]) -> str | None:
        """Apply ``views.update``; a note for the log when Slack would refuse it."""
        view_id = params.get("view_id")
        external_id = params.get("external_id")
        for stack in self.modals.values():
            for index, shown in enumerate(stack):
                if (view_id and shown.view.get("id") == view_id) or (
                    external_id and shown.view.get("external_id") == external_id
                ):
                    stack[index] = ShownView(
                        fill_view({**response["view"], "id": shown.view["id"]})
                    )
                    return None
        for user_id, home in self.homes.items():
            if view_id and (home.view.get("id") == view_id or view_id in home.aliases):
                self.publish(user_id, response["view"])
                return None
        return "no open view with that id (Slack answers not_found)"

    def publish(self, user_id: str, view: Mapping[str, Any]) -> None:
        """A user's Home tab is one view: it keeps its first id however often it changes."""
        home = self.homes.get(user_id)
        if home is None:
            self.homes[user_id] = ShownView(fill_view(view))
            return
        kept = str(home.view["id"])
        aliases = home.aliases | {str(view.get("id"))}
        self.homes[user_id] = ShownView(fill_view({**view, "id": kept}), aliases=aliases - {kept})

    def answer_submission(self, stack: list[ShownView], index: int, answer: Any) -> None:
        """Apply the bot's answer to a ``view_submission`` (its ``response_action``)."""
        action = answer.get("response_action") if isinstance(answer, dict) else None
        if action == "errors":
            errors = answer.get("errors") if isinstance(answer, dict) else None
            shown = {str(k): str(v) for k, v in dict(errors or {}).items()}
            inputs = {block_id for block_id, _, _ in forms.inputs(stack[index].view)}
            elsewhere = sorted(k for k in shown if k not in inputs)
            for block_id in elsewhere:  # Slack shows errors under input blocks only
                del shown[block_id]
            if elsewhere:
                shown[""] = f"bertbot sent errors for blocks that are not inputs: {elsewhere}"
            stack[index].errors = shown
        elif action == "update" and isinstance(answer.get("view"), dict):
            old = stack[index].view
            stack[index] = ShownView(fill_view({**answer["view"], "id": old.get("id")}))
        elif action == "push" and isinstance(answer.get("view"), dict):
            stack.append(ShownView(fill_view({**answer["view"], "id": _view_id()})))
        elif action == "clear":
            stack.clear()
        else:
            del stack[index:]


def fill_view(view: Mapping[str, Any]) -> dict[str, Any]:
    """A stored view with Slack's generated block and action ids filled in."""
    filled = dict(view)
    filled.setdefault("id", _view_id())
    filled["blocks"] = render.with_ids(filled.get("blocks") or [], str(filled["id"]))
    filled.setdefault("hash", uuid.uuid4().hex[:16])
    return filled


def view_json(shown: ShownView, ctx: render.RenderContext) -> dict[str, Any]:
    """A view rendered for the page."""
    view = shown.view
    return {
        "id": view.get("id"),
        "key": f"{view.get('id')}/{view.get('hash')}/{json.dumps(shown.errors, sort_keys=True)}",
        "type": view.get("type"),
        "title": render.text_html(view.get("title"), ctx) if view.get("title") else "",
        "submit": render.text_html(view.get("submit"), ctx) if view.get("submit") else "",
        "close": render.text_html(view.get("close"), ctx) if view.get("close") else "Cancel",
        "error": shown.errors.get(""),
        "html": render.blocks_html(view.get("blocks") or [], ctx, errors=shown.errors),
    }


def _view_id() -> str:
    return "V" + uuid.uuid4().hex[:10].upper()
