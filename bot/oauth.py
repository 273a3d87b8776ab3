"""Multi-workspace mode: Slack's OAuth install flow through Bolt.

``GET /slack/install`` answers an "Add to Slack" page whose link carries a fresh state (kept
in the state store, single use, and in a browser cookie); Slack sends the installer back to
``GET /slack/oauth_redirect`` with a code, which Bolt exchanges (``oauth.v2.access`` at the
configured Web API address) for the workspace's bot token, saved in the installation store.
Requests are then authorised per workspace from that store (bot tokens only), refreshing a
token that is about to expire when Slack issued it with a refresh token (token rotation).
"""

from __future__ import annotations

from dataclasses import dataclass

from slack_bolt.oauth.oauth_settings import OAuthSettings
from slack_sdk.oauth.installation_store import InstallationStore
from slack_sdk.oauth.state_store import OAuthStateStore

INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"


@dataclass(frozen=True)
class OAuthConfig:
    """The Slack app's OAuth credentials and how installs behave.

    Attributes:
        client_id: SLACK_CLIENT_ID.
        client_secret: SLACK_CLIENT_SECRET.
        scopes: Bot scopes asked for at install.
        user_scopes: User scopes asked of the installer (none by default).
        redirect_uri: The public URL of ``/slack/oauth_redirect`` (None: the app's only one).
        state_expiration_seconds: How long an install link's state is valid.
        token_rotation_minutes: Refresh a rotating token expiring within this many minutes.
    """

    client_id: str
    client_secret: str
    scopes: tuple[str, ...]
    user_scopes: tuple[str, ...] = ()
    redirect_uri: str | None = None
    state_expiration_seconds: int = 600
    token_rotation_minutes: int = 120

    def __post_init__(self) -> None:
        if not self.client_id or not self.client_secret:
            raise ValueError("OAuth needs a client id and a client secret")
        if not self.scopes:
            raise ValueError("OAuth needs at least one bot scope")


def bolt_oauth_settings(
    config: OAuthConfig, installations: InstallationStore, states: OAuthStateStore
) -> OAuthSettings:
    """Bolt's OAuth settings for ``config`` on bertbot's stores.

    Args:
        config: Credentials, scopes, redirect URL, state expiry, rotation window.
        installations: Where installations are saved (see :mod:`storage.workspaces`).
        states: Where install states are issued and consumed.
    """
    return OAuthSettings(
        client_id=config.client_id,
        client_secret=config.client_secret,
        scopes=list(config.scopes),
        user_scopes=list(config.user_scopes) or None,
        redirect_uri=config.redirect_uri,
        install_path=INSTALL_PATH,
        redirect_uri_path=REDIRECT_PATH,
        installation_store=installations,
        # bertbot acts with bot tokens only; rotated bot tokens are saved on the bot rows.
        installation_store_bot_only=True,
        token_rotation_expiration_minutes=config.token_rotation_minutes,
        state_store=states,
        state_expiration_seconds=config.state_expiration_seconds,
    )
