"""A Web API client for a workspace, for work that posts outside a Slack request.

Inside a request Bolt's ``authorize`` gives each listener a client with the right token.
The alert outbox, retrain cards, review digests and drift notices post later, on threads of
their own: they ask a :class:`SlackClients` for the workspace the message belongs to.
Single-workspace mode (SLACK_BOT_TOKEN) has one client for everything
(:class:`SingleTokenClients`); multi-workspace mode (OAuth) finds the workspace's bot token in
the installation store and refreshes it first when it is about to expire
(:class:`InstallationClients`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError
from slack_sdk.oauth.installation_store import InstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.token_rotation import TokenRotator

logger = logging.getLogger(__name__)

# Where listeners find the app's SlackClients in Bolt's context (work after the request).
CLIENTS_CONTEXT_KEY = "bertbot_clients"


class WorkspaceNotInstalled(SlackClientError, LookupError):
    """No installation (or no bot token) is stored for a workspace.

    A :class:`SlackClientError`: callers that survive a failed Web API call (the alert
    outbox, digests, drift notices) survive this the same way.
    """

    def __init__(self, team_id: str | None) -> None:
        super().__init__(f"bertbot is not installed in workspace {team_id or '(none named)'}")
        self.team_id = team_id


@runtime_checkable
class SlackClients(Protocol):
    """Web API clients per workspace.

    ``for_team(team_id)`` returns a client whose token is valid for that workspace now
    (refreshed first if it was about to expire); call it again for each unit of work rather
    than keeping the client, since a rotated token expires within hours. ``team_id=None``
    means the home workspace (where BERTBOT_ADMINS, BERTBOT_MODERATORS and the drift
    channel are). ``bot_user_id(team_id)`` is the bot's user id there. Both raise
    :class:`WorkspaceNotInstalled` for a workspace without an installation.
    """

    def for_team(self, team_id: str | None) -> WebClient: ...

    def bot_user_id(self, team_id: str | None) -> str | None: ...


class SingleTokenClients:
    """Single-workspace mode: one client (SLACK_BOT_TOKEN) for every workspace id."""

    def __init__(self, client: WebClient) -> None:
        self.client = client
        self._bot_user_id: str | None = None
        self._lock = threading.Lock()

    def for_team(self, team_id: str | None) -> WebClient:
        return self.client

    def bot_user_id(self, team_id: str | None) -> str | None:
        with self._lock:
            if self._bot_user_id is None:
                self._bot_user_id = self.client.auth_test().get("user_id")
            return self._bot_user_id


class InstallationClients:
    """Multi-workspace mode: each workspace's bot token from the installation store.

    A token that expires within ``rotation_minutes`` (token rotation on) is refreshed with
    slack_sdk's :class:`~slack_sdk.oauth.token_rotation.TokenRotator` (``oauth.v2.access``,
    grant ``refresh_token``) and the new one saved before the client is returned. One lock
    serialises rotations in this process, so two threads never spend one refresh token.
    """

    def __init__(
        self,
        store: InstallationStore,
        *,
        client_id: str,
        client_secret: str,
        make_client: Callable[[str | None], WebClient],
        rotation_minutes: int = 120,
        home_team: str | None = None,
    ) -> None:
        """Configure the clients.

        Args:
            store: Where installations are kept (bot rows, see ``find_bot``).
            client_id: The Slack app's client id (for refreshing tokens).
            client_secret: The Slack app's client secret.
            make_client: Builds a client for a token (None: no token, for ``oauth.v2.access``)
                at the configured Web API address.
            rotation_minutes: Refresh a token expiring within this many minutes.
            home_team: The workspace ``team_id=None`` means (BERTBOT_OAUTH__HOME_TEAM).
        """
        self._store = store
        self._make_client = make_client
        self._rotator = TokenRotator(
            client_id=client_id, client_secret=client_secret, client=make_client(None)
        )
        self._rotation_minutes = rotation_minutes
        self._home_team = home_team
        self._lock = threading.Lock()

    def for_team(self, team_id: str | None) -> WebClient:
        token = self.bot(team_id).bot_token
        if not token:
            raise WorkspaceNotInstalled(team_id)
        client = self._make_client(token)
        return client

    def bot_user_id(self, team_id: str | None) -> str | None:
        return self.bot(team_id).bot_user_id

    def bot(self, team_id: str | None) -> Bot:
        """The workspace's bot installation, its token refreshed if it was expiring.

        Raises:
            WorkspaceNotInstalled: Nothing is stored for the workspace.
            slack_sdk.oauth.token_rotation.SlackTokenRotationError: Slack refused the refresh.
        """
        team = team_id or self._home_team
        if not team:
            raise WorkspaceNotInstalled(None)
        with self._lock:
            bot = self._store.find_bot(enterprise_id=None, team_id=team)
            if bot is None:
                raise WorkspaceNotInstalled(team)
            refreshed = self._rotator.perform_bot_token_rotation(
                bot=bot, minutes_before_expiration=self._rotation_minutes
            )
            if refreshed is None:
                return bot
            self._store.save_bot(refreshed)
            logger.info("refreshed the bot token of workspace %s", team)
            return refreshed


def clients_of(clients: SlackClients | WebClient) -> SlackClients:
    """``clients`` as :class:`SlackClients` (a lone WebClient serves every workspace)."""
    if isinstance(clients, WebClient):
        return SingleTokenClients(clients)
    return clients
