"""A local Slack emulator: try bertbot in a browser, with no Slack workspace at all.

Two sides, as seen from the bot:

- :mod:`bot.emulator.outbound` is what the bot's Web API calls do: :class:`FakeSlack`, a
  recording Web API on a local port, and so what people see;
- :mod:`bot.emulator.inbound` is what people do, as the signed requests Slack sends the bot
  (payloads, signing, :class:`SlackSender`, and the page's actions).

:class:`Emulator` (:mod:`.workspace`) is the workspace built from both (people, channels,
the page's records, the sync of Web API calls into what people see);
:class:`EmulatorWebServer` is its page. ``bertbot serve --emulator`` wires both to the bot
served over HTTP; the browser tests do the same in-process.
"""

from bot.emulator.directory import DEFAULT_USERS, EmulatedUser
from bot.emulator.inbound.actions import Outcome
from bot.emulator.page import Entry
from bot.emulator.web import EmulatorWebServer
from bot.emulator.workspace import Emulator

__all__ = ["DEFAULT_USERS", "EmulatedUser", "Emulator", "EmulatorWebServer", "Entry", "Outcome"]
