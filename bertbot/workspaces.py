"""Multi-workspace mode from the settings (the entry point's job): stores, OAuth, clients."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from bertbot.settings import Settings

if TYPE_CHECKING:
    from slack_bolt.oauth.oauth_settings import OAuthSettings
    from slack_sdk.oauth.installation_store import InstallationStore

    from bot.oauth import OAuthConfig
    from bot.services.workspaces import WorkspaceService
    from bot.slack_clients import InstallationClients
    from storage.db import Database


@dataclass(frozen=True)
class MultiWorkspace:
    """What ``serve --http`` needs in multi-workspace mode."""

    config: OAuthConfig
    oauth: OAuthSettings
    installations: InstallationStore
    clients: InstallationClients


def oauth_config(settings: Settings) -> OAuthConfig:
    """The OAuth flow's credentials and options (SLACK_CLIENT_*, BERTBOT_OAUTH__*)."""
    from bot.oauth import OAuthConfig

    slack, oauth = settings.slack, settings.oauth
    if not slack.oauth_enabled or slack.client_id is None or slack.client_secret is None:
        raise ValueError("multi-workspace mode needs SLACK_CLIENT_ID and SLACK_CLIENT_SECRET")
    return OAuthConfig(
        client_id=slack.client_id,
        client_secret=slack.client_secret.get_secret_value(),
        scopes=oauth.scopes,
        user_scopes=oauth.user_scopes,
        redirect_uri=oauth.redirect_url,
        state_expiration_seconds=oauth.state_expiration_seconds,
        token_rotation_minutes=oauth.token_rotation_minutes,
    )


def multi_workspace(settings: Settings, database: Database) -> MultiWorkspace:
    """slack_sdk's stores on bertbot's database, Bolt's OAuth settings and per-team clients."""
    from bot.app import make_client
    from bot.oauth import bolt_oauth_settings
    from bot.slack_clients import InstallationClients
    from storage.workspaces import installation_store, oauth_state_store

    config = oauth_config(settings)
    installations = installation_store(database, config.client_id)
    states = oauth_state_store(database, config.state_expiration_seconds)
    api_url = settings.slack.api_url
    clients = InstallationClients(
        installations,
        client_id=config.client_id,
        client_secret=config.client_secret,
        make_client=lambda token: make_client(token, base_url=api_url),
        rotation_minutes=config.token_rotation_minutes,
        home_team=settings.oauth.home_team,
    )
    return MultiWorkspace(
        config, bolt_oauth_settings(config, installations, states), installations, clients
    )


def workspace_service(
    settings: Settings, database: Database, installations: InstallationStore | None = None
) -> WorkspaceService:
    """Uninstalls and the purge, with BERTBOT_OAUTH__RETENTION_DAYS."""
    from bot.services.workspaces import WorkspaceService

    if installations is None and settings.slack.oauth_enabled and settings.slack.client_id:
        from storage.workspaces import installation_store

        installations = installation_store(database, settings.slack.client_id)
    return WorkspaceService(
        database, installations, retention=timedelta(days=settings.oauth.retention_days)
    )
