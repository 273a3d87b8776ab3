"""The multi-workspace (OAuth) section of the settings: ``BERTBOT_OAUTH__*``.

Multi-workspace mode is on when SLACK_CLIENT_ID and SLACK_CLIENT_SECRET are set (flat
variables beside SLACK_BOT_TOKEN, see :mod:`bertbot.settings`); this section says how the
install flow and uninstalls behave.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import NoDecode

# The bot scopes of manifest.yml's oauth_config (tests/bot/test_manifest.py keeps them in step).
DEFAULT_BOT_SCOPES = (
    "commands",
    "chat:write",
    "channels:history",
    "groups:history",
    "channels:read",
    "groups:read",
    "reactions:write",
    "usergroups:read",
    "users:read",
)
_SCOPE = re.compile(r"^[a-z][a-z0-9_.]*(:[a-z0-9_.]+)*$")
_TEAM_ID = re.compile(r"^T[A-Z0-9]{2,}$")


def _scopes(value: Any) -> Any:
    if isinstance(value, str):
        value = [item.strip() for item in value.split(",") if item.strip()]
    return value


class OAuthSettings(BaseModel):
    """Slack's OAuth install flow, token rotation and uninstalls (``BERTBOT_OAUTH__*``).

    ``redirect_url``: the public ``https://HOST/slack/oauth_redirect`` registered in the
    app's OAuth settings (unset: Slack uses the app's only redirect URL). ``scopes``: the
    bot scopes asked for at install (default: manifest.yml's). ``state_expiration_seconds``:
    how long an "Add to Slack" link stays valid. ``token_rotation_minutes``: with token
    rotation on, a token expiring within this many minutes is refreshed before use.
    ``retention_days``: a workspace's messages, predictions and corrections are purged this
    long after it uninstalled the app. ``home_team``: the workspace whose users
    BERTBOT_ADMINS and BERTBOT_MODERATORS name, where drift notices and review digests go.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    redirect_url: str | None = None
    scopes: Annotated[tuple[str, ...], NoDecode] = DEFAULT_BOT_SCOPES
    user_scopes: Annotated[tuple[str, ...], NoDecode] = ()
    state_expiration_seconds: int = Field(600, ge=60, le=86_400)
    token_rotation_minutes: int = Field(120, ge=1, le=24 * 60)
    retention_days: float = Field(30.0, ge=0.0, le=3650.0)
    home_team: str | None = None

    @field_validator("scopes", "user_scopes", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return _scopes(value)

    @field_validator("scopes", "user_scopes")
    @classmethod
    def _valid_scopes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [scope for scope in value if not _SCOPE.match(scope)]
        if bad:
            raise ValueError(f"not Slack scopes (like chat:write): {', '.join(bad)}")
        return value

    @field_validator("scopes")
    @classmethod
    def _some_scopes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("name at least one bot scope (default: manifest.yml's)")
        return value

    @field_validator("redirect_url")
    @classmethod
    def _redirect_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not re.match(r"^https?://[^/\s]+/\S*$", value):
            raise ValueError(
                "must be a URL such as https://bertbot.example.com/slack/oauth_redirect"
            )
        return value

    @field_validator("home_team")
    @classmethod
    def _home_team(cls, value: str | None) -> str | None:
        if value is not None and not _TEAM_ID.match(value):
            raise ValueError("must be a Slack team id (like T012ABCDEF)")
        return value
