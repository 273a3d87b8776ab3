"""A local Slack emulator: try bertbot in a browser, with no Slack workspace at all.

:class:`Emulator` is the workspace (people, channels, the Web API the bot calls, signed
requests to the bot); :class:`EmulatorWebServer` is its page. ``bertbot serve --emulator``
wires both to the bot served over HTTP; the browser tests do the same in-process.
"""

from bot.emulator.web import EmulatorWebServer
from bot.emulator.workspace import DEFAULT_USERS, EmulatedUser, Emulator, Entry, Outcome

__all__ = ["DEFAULT_USERS", "EmulatedUser", "Emulator", "EmulatorWebServer", "Entry", "Outcome"]
