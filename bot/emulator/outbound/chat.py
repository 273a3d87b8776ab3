"""``chat.*`` methods: posting, updating and linking to messages."""

from __future__ import annotations

from typing import Any

from bot.emulator.outbound.records import FakeMessage
from bot.emulator.outbound.state import SlackState, error


def post_message(state: SlackState, params: dict[str, Any]) -> dict[str, Any]:
    channel = state.channel_id(str(params.get("channel", "")))
    if channel is None:
        return error("channel_not_found")
    if not params.get("text") and not params.get("blocks"):
        return error("no_text")
    ts = state.new_ts()
    message = FakeMessage(
        channel,
        ts,
        str(params.get("text") or ""),
        list(params.get("blocks") or []),
        state.bot_user_id,
        params.get("thread_ts"),
    )
    metadata = params.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict) or not isinstance(metadata.get("event_type"), str):
            return error("invalid_metadata_format")
        message.metadata = metadata
    state.messages[(channel, ts)] = message
    return {"ok": True, "channel": channel, "ts": ts, "message": state.message_json(message)}


def update(state: SlackState, params: dict[str, Any]) -> dict[str, Any]:
    channel = state.channel_id(str(params.get("channel", "")))
    message = state.messages.get((channel or "", str(params.get("ts", ""))))
    if message is None:
        return error("message_not_found")
    if message.user != state.bot_user_id:
        return error("cant_update_message")
    if "text" in params:
        message.text = str(params["text"])
    if "blocks" in params:
        message.blocks = list(params["blocks"] or [])
    message.edits += 1
    return {
        "ok": True,
        "channel": message.channel,
        "ts": message.ts,
        "text": message.text,
        "message": state.message_json(message),
    }


def delete(state: SlackState, params: dict[str, Any]) -> dict[str, Any]:
    """Like Slack: a bot token deletes only the bot's own messages; an admin's user
    token deletes anyone's."""
    channel = state.channel_id(str(params.get("channel", "")))
    key = (channel or "", str(params.get("ts", "")))
    message = state.messages.get(key)
    if message is None:
        return error("message_not_found")
    if params.get("_token_kind") != "user" and message.user != state.bot_user_id:
        return error("cant_delete_message")
    del state.messages[key]
    state.deleted.append(message)
    return {"ok": True, "channel": message.channel, "ts": message.ts}


def post_ephemeral(state: SlackState, params: dict[str, Any]) -> dict[str, Any]:
    if state.channel_id(str(params.get("channel", ""))) is None:
        return error("channel_not_found")
    if not params.get("user"):
        return error("user_not_in_channel")
    if not params.get("text") and not params.get("blocks"):
        return error("no_text")
    return {"ok": True, "message_ts": state.new_ts()}


def get_permalink(state: SlackState, params: dict[str, Any]) -> dict[str, Any]:
    channel = state.channel_id(str(params.get("channel", "")))
    ts = str(params.get("message_ts", ""))
    if channel is None or not ts:
        return error("channel_not_found" if channel is None else "message_not_found")
    return {
        "ok": True,
        "channel": channel,
        "permalink": f"https://{state.team_domain}.slack.com/archives/{channel}/"
        f"p{ts.replace('.', '')}",
    }
