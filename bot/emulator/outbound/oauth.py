"""The fake's OAuth side: ``oauth.v2.access`` issuing per-workspace bot tokens.

A test plays the installer in Slack with :meth:`FakeOAuth.approve` (what Slack does when
someone clicks "Allow": a one-time code for that workspace, sent back to the app's redirect
URL), then the app exchanges the code with ``oauth.v2.access``. Each workspace gets its own
bot token, bot user and bot id; ``auth.test`` answers per token. With ``token_expires_in``
the tokens rotate like Slack's: each comes with a refresh token, and the ``refresh_token``
grant issues a new one. :meth:`FakeOAuth.revoke` invalidates a workspace's tokens.
"""

from __future__ import annotations

import base64
import itertools
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.emulator.outbound.state import error


@dataclass
class IssuedToken:
    """A bot token the fake issued for one workspace."""

    token: str
    team_id: str
    team_name: str
    bot_user_id: str
    bot_id: str
    scopes: tuple[str, ...]
    expires_at: float | None = None
    refresh_token: str | None = None
    revoked: bool = False

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at


class FakeOAuth:
    """One Slack app's OAuth: its credentials, the codes it approved and the tokens issued."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        app_id: str,
        token_expires_in: int | None = None,
        clock: Any = time.time,
    ) -> None:
        """Configure the app.

        Args:
            client_id: The only client id ``oauth.v2.access`` accepts.
            client_secret: Its secret.
            app_id: The app's id in answers.
            token_expires_in: Seconds a bot token lives (with a refresh token); None: tokens
                never expire (rotation off).
            clock: Wall-clock seconds (tests may move it).
        """
        self.client_id = client_id
        self.client_secret = client_secret
        self.app_id = app_id
        self.token_expires_in = token_expires_in
        self._clock = clock
        self._lock = threading.Lock()
        self._codes: dict[str, tuple[str, str, str, tuple[str, ...]]] = {}
        self._tokens: dict[str, IssuedToken] = {}
        self._refresh: dict[str, str] = {}  # refresh token -> team id
        self._serial = itertools.count(1)

    # What a test does in Slack's place ------------------------------------------------

    def approve(
        self,
        team_id: str,
        *,
        team_name: str | None = None,
        installer: str = "U0INSTALLER",
        scopes: tuple[str, ...] = ("commands", "chat:write"),
    ) -> str:
        """An installer allowed the app in ``team_id``: a one-time code for the redirect."""
        with self._lock:
            code = f"code-{team_id}-{next(self._serial)}"
            self._codes[code] = (team_id, team_name or f"team {team_id}", installer, scopes)
            return code

    def revoke(self, team_id: str) -> None:
        """Every token of the workspace stops working (the app was uninstalled)."""
        with self._lock:
            for issued in self._tokens.values():
                if issued.team_id == team_id:
                    issued.revoked = True

    def tokens(self, team_id: str) -> list[IssuedToken]:
        """The tokens issued for a workspace, oldest first."""
        with self._lock:
            return [t for t in self._tokens.values() if t.team_id == team_id]

    def expire(self, token: str) -> None:
        """Make one token expired now (as if its hours had passed)."""
        with self._lock:
            self._tokens[token].expires_at = self._clock() - 1

    # The Web API side ------------------------------------------------------------------

    def lookup(self, token: str) -> IssuedToken | str | None:
        """The workspace a token acts for, an error name if it no longer works, or None."""
        with self._lock:
            issued = self._tokens.get(token)
            if issued is None:
                return None
            if issued.revoked:
                return "token_revoked"
            if issued.expired(self._clock()):
                return "token_expired"
            return issued

    def access(self, params: Mapping[str, Any], headers: Mapping[str, str]) -> dict[str, Any]:
        """``oauth.v2.access``: exchange a code, or a refresh token, for a bot token."""
        client_id, client_secret = _client_credentials(params, headers)
        if client_id != self.client_id:
            return error("invalid_client_id")
        if client_secret != self.client_secret:
            return error("bad_client_secret")
        grant = str(params.get("grant_type") or "authorization_code")
        with self._lock:
            if grant == "refresh_token":
                team_id = self._refresh.pop(str(params.get("refresh_token") or ""), None)
                if team_id is None:
                    return error("invalid_refresh_token")
                previous = [t for t in self._tokens.values() if t.team_id == team_id][-1]
                issued = self._issue(
                    team_id, previous.team_name, previous.scopes, previous.bot_user_id
                )
                return self._answer(issued, installer=None)
            if grant != "authorization_code":
                return error("invalid_grant_type")
            approved = self._codes.pop(str(params.get("code") or ""), None)
            if approved is None:
                return error("invalid_code")
            team_id, team_name, installer, scopes = approved
            issued = self._issue(team_id, team_name, scopes, f"U0BOT{team_id[1:]}")
            return self._answer(issued, installer=installer)

    def _issue(
        self, team_id: str, team_name: str, scopes: tuple[str, ...], bot_user_id: str
    ) -> IssuedToken:
        serial = next(self._serial)
        rotating = self.token_expires_in is not None
        token = f"xoxe.xoxb-{team_id}-{serial}" if rotating else f"xoxb-{team_id}-{serial}"
        issued = IssuedToken(
            token=token,
            team_id=team_id,
            team_name=team_name,
            bot_user_id=bot_user_id,
            bot_id=f"B0BOT{team_id[1:]}",
            scopes=scopes,
        )
        if self.token_expires_in is not None:
            issued.expires_at = self._clock() + self.token_expires_in
            issued.refresh_token = f"xoxe-1-{team_id}-{serial}"
            self._refresh[issued.refresh_token] = team_id
        self._tokens[token] = issued
        return issued

    def _answer(self, issued: IssuedToken, *, installer: str | None) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "ok": True,
            "app_id": self.app_id,
            "access_token": issued.token,
            "token_type": "bot",
            "scope": ",".join(issued.scopes),
            "bot_user_id": issued.bot_user_id,
            "team": {"id": issued.team_id, "name": issued.team_name},
            "enterprise": None,
            "is_enterprise_install": False,
        }
        if installer is not None:
            answer["authed_user"] = {"id": installer}
        if issued.expires_at is not None:
            answer["expires_in"] = self.token_expires_in
            answer["refresh_token"] = issued.refresh_token
        return answer


def auth_test_for(issued: IssuedToken) -> dict[str, Any]:
    """``auth.test`` called with a token the fake issued through OAuth."""
    return {
        "ok": True,
        "url": f"https://{issued.team_id.lower()}.slack.com/",
        "team": issued.team_name,
        "user": "bertbot",
        "team_id": issued.team_id,
        "user_id": issued.bot_user_id,
        "bot_id": issued.bot_id,
        "is_enterprise_install": False,
    }


def _client_credentials(
    params: Mapping[str, Any], headers: Mapping[str, str]
) -> tuple[str | None, str | None]:
    """The app's id and secret: HTTP Basic (as slack_sdk sends them), else form fields."""
    auth = headers.get("authorization", "")
    if auth.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(auth[6:].strip()).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None, None
        client_id, _, secret = decoded.partition(":")
        return client_id, secret
    form_id, form_secret = params.get("client_id"), params.get("client_secret")
    return (str(form_id) if form_id else None, str(form_secret) if form_secret else None)
