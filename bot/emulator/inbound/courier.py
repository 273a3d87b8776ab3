"""Delivering people's requests to the bot, and what the emulator makes of the answer.

Never called with the emulator's lock held: the bot calls the Web API back meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.emulator.inbound.sender import Delivery, SlackSender


@dataclass(frozen=True)
class Answer:
    """The bot's answer as the emulator sees it; ``error`` when none arrived."""

    status: int | None
    body: bytes
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status == 200

    @property
    def why(self) -> str:
        """What Slack would tell the person about a failed delivery."""
        if self.error:
            return self.error
        return "dispatch_failed" if self.status != 401 else "invalid signature (HTTP 401)"


class Courier:
    """Posts requests to the bot through a :class:`SlackSender` once :meth:`connect` ed.

    Args:
        record: Called after each delivery with (what was sent, the answer), for the log.
    """

    def __init__(self, record: Callable[[str, Answer], None]) -> None:
        self._record = record
        self.sender: SlackSender | None = None

    def connect(self, sender: SlackSender) -> None:
        self.sender = sender

    def require_sender(self) -> SlackSender:
        if self.sender is None:
            raise RuntimeError("the emulator is not connected to a bot (call connect())")
        return self.sender

    def deliver(self, body: bytes, content_type: str, what: str) -> Answer:
        """POST a form or JSON body (a slash command or an interaction)."""
        sender = self.require_sender()
        return self._send(what, lambda: sender.post(body, content_type))

    def deliver_event(self, event: Mapping[str, Any], what: str) -> Answer:
        """Send an Events API callback wrapping ``event``."""
        sender = self.require_sender()
        return self._send(what, lambda: sender.event(event))

    def _send(self, what: str, post: Callable[[], Delivery]) -> Answer:
        try:
            delivery = post()
        except OSError as exc:
            answer = Answer(None, b"", _transport_error(exc))
        else:
            answer = Answer(delivery.status, delivery.body, None)
        self._record(what, answer)
        return answer


def _transport_error(exc: OSError) -> str:
    reason = getattr(exc, "reason", exc)
    if isinstance(exc, TimeoutError) or isinstance(reason, TimeoutError):
        return "operation_timeout"
    return "dispatch_failed"
