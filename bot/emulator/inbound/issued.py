"""The response_urls and trigger_ids handed to the bot, and whom each was issued to.

When the bot later posts to a response_url or opens a modal with a trigger_id, the
emulator looks up the :class:`Origin` here to know whose screen (and which message) it is.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from bot.emulator.inbound import payloads
from bot.emulator.outbound import FakeSlack

TRIGGER_TTL_S = 3.0  # Slack refuses a trigger_id older than that
RESPONSE_URL_TTL_S = 30 * 60.0  # a response_url works for 30 minutes


@dataclass(frozen=True)
class Origin:
    """Who a response_url or trigger_id was issued to, and for which message."""

    user_id: str
    channel_id: str | None
    entry_id: int | None
    at: float


class Issued:
    """Issues response_urls (from the fake Web API) and trigger_ids, and finds their origin."""

    def __init__(self, slack: FakeSlack, lock: threading.RLock) -> None:
        self.slack = slack
        self._lock = lock
        self._origins: dict[str, Origin] = {}
        self._triggers: dict[str, Origin] = {}

    def response_url(self, origin: Origin) -> str:
        url = self.slack.new_response_url()
        with self._lock:
            _forget_older(self._origins, origin.at - RESPONSE_URL_TTL_S)
            self._origins[url.rsplit("/", 1)[-1]] = origin
        return url

    def trigger(self, origin: Origin) -> str:
        trigger = payloads.new_trigger_id()
        with self._lock:
            _forget_older(self._triggers, origin.at - 20 * TRIGGER_TTL_S)
            self._triggers[trigger] = origin
        return trigger

    def origin_of_response_url(self, path: str) -> Origin | None:
        """Whom the response_url at ``path`` (``/response_url/<key>``) was issued to."""
        return self._origins.get(path.rstrip("/").rsplit("/", 1)[-1])

    def origin_of_trigger(self, trigger_id: str) -> Origin | None:
        return self._triggers.get(trigger_id)


def _forget_older(issued: dict[str, Origin], cutoff: float) -> None:
    """Drop what was issued before ``cutoff`` (dicts keep insertion order: oldest first)."""
    for key in [k for k, origin in issued.items() if origin.at < cutoff]:
        del issued[key]
