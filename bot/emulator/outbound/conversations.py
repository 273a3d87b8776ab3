"""``conversations.*`` methods: a channel's history, one channel, the list (cursor = offset)."""

from __future__ import annotations

from typing import Any

from bot.emulator.outbound.state import SlackState, error, flag


def history(state: SlackState, params: dict[str, Any]) -> dict[str, Any]:
    # Newest first, after ``oldest`` (exclusive), ``limit`` per page, cursor = offset.
    channel = state.channel_id(str(params.get("channel", "")))
    if channel is None:
        return error("channel_not_found")
    try:
        oldest = str(params.get("oldest") or "0")
        float(oldest)  # Slack refuses what is not a number
        after = _ts_key(oldest)
        limit = min(max(int(params.get("limit") or 100), 1), 999)
        offset = int(params.get("cursor") or 0)
    except ValueError:
        return error("invalid_arguments")
    found = sorted(
        (
            m
            for m in state.messages.values()
            if m.channel == channel and m.thread_ts is None and _ts_key(m.ts) > after
        ),
        key=lambda m: _ts_key(m.ts),
        reverse=True,
    )
    page = found[offset : offset + limit]
    with_metadata = flag(params.get("include_all_metadata"))
    more = offset + limit < len(found)
    return {
        "ok": True,
        "messages": [state.message_json(m, with_metadata=with_metadata) for m in page],
        "has_more": more,
        "response_metadata": {"next_cursor": str(offset + limit) if more else ""},
    }


def info(state: SlackState, params: dict[str, Any]) -> dict[str, Any]:
    # A DM (D...) is an IM; a channel the bot left answers is_member false, as Slack's
    # public channels do (a private one it is not in would be channel_not_found).
    channel = state.channel_id(str(params.get("channel", "")))
    if channel is None:
        return error("channel_not_found")
    if channel.startswith("D"):
        return {"ok": True, "channel": {"id": channel, "is_im": True, "user": None}}
    name = next((n for n, cid in state.channels.items() if cid == channel), None)
    if name is None:
        return error("channel_not_found")
    return {"ok": True, "channel": _channel_json(state, name, channel)}


def list_channels(state: SlackState, params: dict[str, Any]) -> dict[str, Any]:
    # Every channel is public here; cursor = offset.
    try:
        limit = min(max(int(params.get("limit") or 100), 1), 1000)
        offset = int(params.get("cursor") or 0)
    except ValueError:
        return error("invalid_arguments")
    channels = sorted(state.channels.items(), key=lambda item: item[1])
    page = channels[offset : offset + limit]
    more = offset + limit < len(channels)
    return {
        "ok": True,
        "channels": [_channel_json(state, name, cid) for name, cid in page],
        "response_metadata": {"next_cursor": str(offset + limit) if more else ""},
    }


def _channel_json(state: SlackState, name: str, channel_id: str) -> dict[str, Any]:
    return {
        "id": channel_id,
        "name": name,
        "is_channel": True,
        "is_private": False,
        "is_member": channel_id not in state.left,
    }


def _ts_key(ts: str) -> tuple[int, int]:
    # "1700000000.000100" -> (1700000000, 100): ordered like Slack's timestamps.
    seconds, _, fraction = ts.partition(".")
    try:
        return int(seconds or 0), int((fraction or "0").ljust(6, "0")[:6])
    except ValueError:
        return 0, 0
