"""Who is in a Slack user group, cached: exemptions by user group (``S...``) read it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError

logger = logging.getLogger(__name__)


class SlackUserGroups:
    """``usergroups.users.list``, cached for ``ttl_s`` per group (scope ``usergroups:read``).

    A group Slack cannot list (a lost scope, a deleted group, Slack down) counts as empty
    and is asked again after the ``ttl_s``: its members are then classified like anyone.
    Thread-safe.
    """

    def __init__(
        self,
        client: WebClient | Callable[[], WebClient],
        *,
        ttl_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}

    def __call__(self, group_id: str) -> frozenset[str]:
        now = self._clock()
        with self._lock:
            cached = self._cache.get(group_id)
        if cached is not None and now - cached[0] < self._ttl_s:
            return cached[1]
        try:
            # Multi-workspace mode gives a function: the home workspace's client, now.
            client = self._client() if callable(self._client) else self._client
            response = client.usergroups_users_list(usergroup=group_id)
            members = frozenset(str(user) for user in response.get("users") or [])
        except (SlackClientError, OSError) as exc:
            logger.warning("cannot list user group %s (%s); nobody exempt by it", group_id, exc)
            members = frozenset()
        with self._lock:
            self._cache[group_id] = (now, members)
        return members
