"""The outbound side: what the bot's Web API calls do, and so what people see.

:class:`FakeSlack` is a recording Slack Web API on a local port (:mod:`.server`); it keeps
the workspace's channels, users and messages (:mod:`.state`) and answers each method with
the handler of its family (:mod:`.chat`, :mod:`.conversations`, :mod:`.views`,
:mod:`.users`). Nothing here imports the inbound side.
"""

from bot.emulator.outbound.elements import find_element, iter_elements
from bot.emulator.outbound.identity import (
    DEFAULT_CHANNELS,
    LOCAL_ADMIN_USER_TOKEN,
    LOCAL_APP_ID,
    LOCAL_APP_TOKEN,
    LOCAL_BOT_ID,
    LOCAL_BOT_TOKEN,
    LOCAL_BOT_USER_ID,
    LOCAL_TEAM_DOMAIN,
    LOCAL_TEAM_ID,
)
from bot.emulator.outbound.records import FakeMessage, RecordedCall
from bot.emulator.outbound.server import RESPONSE_URL_METHOD, FakeSlack

__all__ = [
    "DEFAULT_CHANNELS",
    "LOCAL_ADMIN_USER_TOKEN",
    "LOCAL_APP_ID",
    "LOCAL_APP_TOKEN",
    "LOCAL_BOT_ID",
    "LOCAL_BOT_TOKEN",
    "LOCAL_BOT_USER_ID",
    "LOCAL_TEAM_DOMAIN",
    "LOCAL_TEAM_ID",
    "RESPONSE_URL_METHOD",
    "FakeMessage",
    "FakeSlack",
    "RecordedCall",
    "find_element",
    "iter_elements",
]
