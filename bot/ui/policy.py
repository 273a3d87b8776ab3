"""The ``/bertbot policy`` modal: each channel the bot is in with its policy, and a form to
change one channel's policy for one task."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.services.policy import EffectivePolicy
from bot.ui.blocks import escape
from bot.ui.format import Block, context, header, limit_blocks, plain, section
from storage.enums import PolicyAction

POLICY_CALLBACK = "policy_submit"
CHANNEL_BLOCK = "policy_channel"
TASK_BLOCK = "policy_task"
WATCH_BLOCK = "policy_watch"
THRESHOLD_BLOCK = "policy_threshold"
ACTION_BLOCK = "policy_action"
EXEMPT_BLOCK = "policy_exempt"
CLEAR_BLOCK = "policy_clear"
VALUE = "value"
KEEP = "keep"
NOT_ADMIN = "Only admins can change the moderation policy."
_ACTION_HELP = {
    PolicyAction.LOG: "log: store only",
    PolicyAction.ALERT: "alert: moderators' channel",
    PolicyAction.REACT: "react: alert + emoji",
    PolicyAction.NOTIFY: "notify: alert + note to the author",
    PolicyAction.REMOVE: "remove: delete + note to the author",
}
MAX_CHANNELS = 40


@dataclass(frozen=True)
class Channel:
    """A channel the bot is in."""

    id: str
    name: str


@dataclass(frozen=True)
class PolicyForm:
    """What an admin submitted (None: leave as it is)."""

    channel_id: str
    task: str
    watch: bool | None
    threshold: float | None
    action: str | None
    exempt: list[str] | None
    clear: bool


_ALERT_NOTES = {
    PolicyAction.REACT: ":warning: This channel's policy also marks the message with an emoji.",
    PolicyAction.NOTIFY: "This channel's policy also tells the author privately; they may appeal.",
    PolicyAction.REMOVE: "This channel's policy removes the message and tells the author "
    "privately; they may appeal (an upheld appeal re-posts it).",
}


def alert_action_blocks(action: PolicyAction) -> list[Block]:
    """A line under a moderators' alert saying what the channel's policy does beyond it."""
    note = _ALERT_NOTES.get(action)
    return [context(note, block_id="policy_action_note")] if note else []


def policy_line(policy: EffectivePolicy) -> str:
    """One task's policy in one line (mrkdwn)."""
    action = policy.action.value
    if policy.requested is not policy.action:
        action = f"{action} _(asked: {policy.requested.value})_"
    parts = [
        f"*{escape(policy.task)}*: {'watched' if policy.watch else '*not watched*'}",
        f"threshold {policy.threshold:.2f}",
        action,
    ]
    if policy.exempt:
        parts.append("exempt " + ", ".join(_mention(e) for e in policy.exempt))
    parts.append("channel policy" if policy.stored else "workspace default")
    return " · ".join(parts)


def policy_modal(
    channels: Sequence[Channel],
    policies: Mapping[str, Mapping[str, EffectivePolicy]],
    defaults: Sequence[EffectivePolicy],
    *,
    notice: str | None = None,
) -> dict[str, Any]:
    """The modal: the workspace default, each channel's policy, and the change form.

    Args:
        channels: The channels the bot is in.
        policies: What applies in each channel, by channel id then task.
        defaults: The workspace default per task.
        notice: The outcome of the last change (mrkdwn, escaped by the caller).
    """
    blocks: list[Block] = []
    if notice:
        blocks.append(section(notice, block_id="policy_notice"))
    blocks.append(header("Workspace default"))
    blocks += [context(policy_line(p), block_id=f"default:{p.task}") for p in defaults]
    notes = sorted({p.note for p in defaults if p.note} | _notes(policies))
    blocks += [context(f":information_source: {escape(n)}", block_id="policy_note") for n in notes]
    blocks.append(header("Channels bertbot is in"))
    if not channels:
        blocks.append(context("bertbot is in no channel yet: invite it with /invite @bertbot."))
    for channel in channels[:MAX_CHANNELS]:
        lines = "\n".join(policy_line(p) for p in policies.get(channel.id, {}).values())
        blocks.append(section(f"<#{channel.id}>\n{lines}", block_id=f"channel:{channel.id}"))
    tasks = [p.task for p in defaults]
    if not channels:
        return _modal(channels, blocks, submit=False)
    blocks.append(header("Change a channel's policy"))
    blocks += [
        _select(CHANNEL_BLOCK, "Channel", [(f"#{c.name}", c.id) for c in channels]),
        _select(TASK_BLOCK, "Task", [(t, t) for t in tasks]),
        _select(
            WATCH_BLOCK,
            "Watch",
            [("Keep as it is", KEEP), ("On", "on"), ("Off", "off")],
            initial=KEEP,
        ),
        _input(THRESHOLD_BLOCK, "Threshold (0-1, empty: keep)", optional=True),
        _select(
            ACTION_BLOCK,
            "Action",
            [("Keep as it is", KEEP)] + [(text, a.value) for a, text in _ACTION_HELP.items()],
            initial=KEEP,
        ),
        # Text, not a users select: user groups (S...) can be exempt too.
        _input(EXEMPT_BLOCK, "Exempt user or group ids (U…, S…; empty: keep; none)", optional=True),
        {
            "type": "input",
            "block_id": CLEAR_BLOCK,
            "optional": True,
            "label": plain("Reset"),
            "element": {
                "type": "checkboxes",
                "action_id": VALUE,
                "options": [
                    {
                        "text": plain("Clear: use the workspace default for this task"),
                        "value": "clear",
                    }
                ],
            },
        },
    ]
    return _modal(channels, blocks, submit=True)


def _modal(channels: Sequence[Channel], blocks: list[Block], *, submit: bool) -> dict[str, Any]:
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": POLICY_CALLBACK,
        "title": plain("Moderation policy"),
        "close": plain("Close"),
        "private_metadata": json.dumps([[c.id, c.name] for c in channels[:MAX_CHANNELS]]),
        "blocks": limit_blocks(blocks),
    }
    if submit:
        view["submit"] = plain("Save")
    return view


def channels_of(view: Mapping[str, Any]) -> list[Channel]:
    """The channels a submitted modal listed (kept in its private_metadata)."""
    try:
        items = json.loads(view.get("private_metadata") or "[]")
        return [Channel(str(cid), str(name)) for cid, name in items]
    except (ValueError, TypeError):
        return []


def parse_policy_form(view: Mapping[str, Any]) -> PolicyForm | dict[str, str]:
    """The submitted change, or errors by block id (shown under the inputs)."""
    values = (view.get("state") or {}).get("values") or {}

    def field(block: str) -> Mapping[str, Any]:
        return (values.get(block) or {}).get(VALUE) or {}

    def selected(block: str) -> str | None:
        option = field(block).get("selected_option") or {}
        return option.get("value")

    errors: dict[str, str] = {}
    channel, task = selected(CHANNEL_BLOCK), selected(TASK_BLOCK)
    if not channel:
        errors[CHANNEL_BLOCK] = "Pick a channel."
    if not task:
        errors[TASK_BLOCK] = "Pick a task."
    threshold: float | None = None
    text = (field(THRESHOLD_BLOCK).get("value") or "").strip()
    if text:
        try:
            threshold = float(text)
        except ValueError:
            errors[THRESHOLD_BLOCK] = "A number between 0 and 1, such as 0.9."
    watch = selected(WATCH_BLOCK)
    action = selected(ACTION_BLOCK)
    exempt_text = (field(EXEMPT_BLOCK).get("value") or "").replace(",", " ").split()
    exempt = [] if exempt_text == ["none"] else exempt_text or None
    clear = any(o.get("value") == "clear" for o in field(CLEAR_BLOCK).get("selected_options") or [])
    if errors:
        return errors
    assert channel is not None and task is not None
    return PolicyForm(
        channel_id=channel,
        task=task,
        watch=None if watch in (None, KEEP) else watch == "on",
        threshold=threshold,
        action=None if action in (None, KEEP) else action,
        exempt=exempt,
        clear=clear,
    )


def _notes(policies: Mapping[str, Mapping[str, EffectivePolicy]]) -> set[str]:
    return {p.note for by_task in policies.values() for p in by_task.values() if p.note}


def _mention(entity: str) -> str:
    return f"<!subteam^{entity}>" if entity.startswith("S") else f"<@{entity}>"


def _select(
    block_id: str, label: str, options: Sequence[tuple[str, str]], *, initial: str | None = None
) -> Block:
    element: dict[str, Any] = {
        "type": "static_select",
        "action_id": VALUE,
        "placeholder": plain(label),
        "options": [{"text": plain(text), "value": value} for text, value in options[:100]],
    }
    if initial is not None:
        element["initial_option"] = next(o for o in element["options"] if o["value"] == initial)
    return {"type": "input", "block_id": block_id, "label": plain(label), "element": element}


def _input(block_id: str, label: str, *, optional: bool) -> Block:
    return {
        "type": "input",
        "block_id": block_id,
        "optional": optional,
        "label": plain(label),
        "element": {"type": "plain_text_input", "action_id": VALUE},
    }
