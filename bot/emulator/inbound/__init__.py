"""The inbound side: what people do, as the signed requests Slack sends the bot.

:mod:`.payloads` builds the payloads field for field (pure functions), :mod:`.signing`
signs them and :class:`SlackSender` posts them to the bot's ``/slack/events``;
:mod:`.actions` turns a person's action in the emulator's page into such a delivery. The
inbound side uses the outbound one (response_urls and timestamps come from the fake Web
API), never the other way round.
"""

from bot.emulator.inbound.sender import Delivery, SlackSender, new_event_id
from bot.emulator.inbound.signing import LOCAL_SIGNING_SECRET, slack_signature
from bot.emulator.outbound.identity import LOCAL_APP_TOKEN

__all__ = [
    "LOCAL_APP_TOKEN",
    "LOCAL_SIGNING_SECRET",
    "Delivery",
    "SlackSender",
    "new_event_id",
    "slack_signature",
]
