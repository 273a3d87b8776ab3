"""The errors services raise for the Slack user: short messages a listener shows as they are.

Storage errors that are not about the user's request pass through to the app's one error
handler (:func:`bot.app.handle_error`).
"""

from __future__ import annotations


class BotError(Exception):
    """A request cannot be served; the message is short and meant for the Slack user."""


class NotAllowedError(BotError):
    """The user's role does not allow the action."""


class UnavailableError(BotError):
    """The database cannot be reached: nothing was stored, and trying again is safe."""
