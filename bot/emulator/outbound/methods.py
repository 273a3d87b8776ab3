"""Which handler answers which Web API method, and which methods want the app token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.emulator.outbound import chat, conversations, users, views
from bot.emulator.outbound.state import SlackState

Handler = Callable[[SlackState, dict[str, Any]], dict[str, Any]]

METHODS: dict[str, Handler] = {
    "auth.test": users.auth_test,
    "chat.postMessage": chat.post_message,
    "chat.update": chat.update,
    "chat.delete": chat.delete,
    "chat.postEphemeral": chat.post_ephemeral,
    "chat.getPermalink": chat.get_permalink,
    "views.open": views.open_,
    "views.update": views.update,
    "views.publish": views.publish,
    "reactions.add": users.reactions_add,
    "users.info": users.users_info,
    "usergroups.users.list": users.usergroups_users_list,
    "conversations.history": conversations.history,
    "conversations.info": conversations.info,
    "conversations.list": conversations.list_channels,
    "apps.connections.open": users.connections_open,
}
# Methods called with the app-level token (xapp-) instead of the bot token.
APP_TOKEN_METHODS = frozenset({"apps.connections.open"})
# Methods that also accept an admin's user token (xoxp-); the handler is told which kind
# of token called (``params["_token_kind"]``: ``bot`` or ``user``).
USER_TOKEN_METHODS = frozenset({"chat.delete"})
