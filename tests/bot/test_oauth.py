"""Multi-workspace mode over real HTTP: installs through Slack's OAuth flow (the fake's
``oauth.v2.access``), each workspace answered with its own token, rotation before the outbox
posts, and uninstalls (tokens at once, data after the retention)."""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest

from bot.app import BotConfig, create_app, make_client
from bot.emulator.inbound import SlackSender
from bot.emulator.outbound import FakeSlack
from bot.oauth import INSTALL_PATH, REDIRECT_PATH, OAuthConfig, bolt_oauth_settings
from bot.services import BotServices
from bot.services.alert_outbox import AlertPolicy
from bot.services.alert_posting import AlertSweeper
from bot.services.roles import Roles
from bot.services.workspaces import WorkspaceService
from bot.slack_clients import InstallationClients, WorkspaceNotInstalled
from bot.transport.http import BotHttpServer
from storage.db import Database
from storage.enums import utcnow
from storage.models import AuditEntry, Message
from storage.workspaces import installation_store, oauth_state_store
from tests.bot.conftest import (
    ADMIN,
    MEMBER,
    MODERATOR,
    SIGNING_SECRET,
    SPAM_TEXT,
    FakeModels,
    TrackingExecutor,
    eventually,
)
from trainer.tasks import TaskSpec

CLIENT_ID = "1111.2222"
CLIENT_SECRET = "oauth-client-secret"
TEAM_A = "T0AAAAAAA"
TEAM_B = "T0BBBBBBB"
RETENTION = timedelta(days=30)


@dataclass
class Page:
    status: int
    body: str
    headers: dict[str, str]


def _get(url: str, cookie: str | None = None) -> Page:
    request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return Page(response.status, response.read().decode(), dict(response.headers))
    except urllib.error.HTTPError as exc:
        return Page(exc.code, exc.read().decode(), dict(exc.headers))


@dataclass
class OAuthBot:
    fake: FakeSlack
    server: BotHttpServer
    services: BotServices
    database: Database
    clients: InstallationClients
    executor: TrackingExecutor

    def sender(self, team_id: str) -> SlackSender:
        return SlackSender(self.server.events_url, SIGNING_SECRET, fake=self.fake, team_id=team_id)

    def start_install(self) -> tuple[str, str]:
        """Open /slack/install: the "Add to Slack" link's state, and the browser's cookie."""
        page = _get(self.server.url + INSTALL_PATH)
        assert page.status == 200, page.body
        link = re.search(r'href="(https://slack\.com/oauth/v2/authorize\?[^"]+)"', page.body)
        assert link is not None, page.body
        query = urllib.parse.parse_qs(
            urllib.parse.urlsplit(link.group(1).replace("&amp;", "&")).query
        )
        assert query["client_id"] == [CLIENT_ID]
        assert set(query["scope"][0].split(",")) == {"commands", "chat:write", "channels:history"}
        cookie = page.headers["Set-Cookie"].split(";", 1)[0]
        return query["state"][0], cookie

    def redirect(self, code: str, state: str, cookie: str | None) -> Page:
        query = urllib.parse.urlencode({"code": code, "state": state})
        return _get(f"{self.server.url}{REDIRECT_PATH}?{query}", cookie)

    def install(self, team_id: str) -> str:
        """Install in a workspace like a browser would; the bot token it got."""
        state, cookie = self.start_install()
        page = self.redirect(self.fake_oauth.approve(team_id), state, cookie)
        assert page.status == 200, page.body
        bot = self.clients.bot(team_id)
        assert bot.bot_token and bot.team_id == team_id
        return bot.bot_token

    @property
    def fake_oauth(self):  # type: ignore[no-untyped-def]
        assert self.fake.oauth is not None
        return self.fake.oauth


@pytest.fixture
def token_expires_in() -> int | None:
    return None


@pytest.fixture
def oauth_bot(
    database: Database,
    tasks: dict[str, TaskSpec],
    models: FakeModels,
    token_expires_in: int | None,
) -> Iterator[OAuthBot]:
    with FakeSlack(users={MODERATOR: "mo", ADMIN: "ad", MEMBER: "me"}) as fake:
        fake.enable_oauth(CLIENT_ID, CLIENT_SECRET, token_expires_in=token_expires_in)
        config = OAuthConfig(
            CLIENT_ID,
            CLIENT_SECRET,
            scopes=("commands", "chat:write", "channels:history"),
            token_rotation_minutes=5,
        )
        installations = installation_store(database, CLIENT_ID)
        states = oauth_state_store(database, config.state_expiration_seconds)
        clients = InstallationClients(
            installations,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            make_client=lambda token: make_client(token, base_url=fake.api_url),
            rotation_minutes=config.token_rotation_minutes,
        )
        services = BotServices(
            database,
            models,
            tasks,
            Roles.of(admins=[ADMIN], moderators=[MODERATOR]),
            alerts=AlertPolicy(channel="moderators", threshold=0.8, reaction=None, retry_seconds=0),
            workspaces=WorkspaceService(database, installations, retention=RETENTION),
        )
        executor = TrackingExecutor(8)
        app = create_app(
            BotConfig(signing_secret=SIGNING_SECRET),
            services,
            make_client(None, base_url=fake.api_url),
            executor=executor,
            clients=clients,
            oauth=bolt_oauth_settings(config, installations, states),
        )
        server = BotHttpServer(app, host="127.0.0.1", port=0, threads=8).start()
        try:
            yield OAuthBot(fake, server, services, database, clients, executor)
        finally:
            server.close()
            executor.wait_idle()
            executor.shutdown(wait=True)
            services.close()


def _alerts_by(fake: FakeSlack, token: str) -> list[str]:
    return [
        call.headers.get("authorization", "")
        for call in fake.calls("chat.postMessage")
        if call.ok and call.params.get("channel") == "moderators" and call.token == token
    ]


def test_two_workspaces_install_and_are_answered_with_their_own_tokens(
    oauth_bot: OAuthBot,
) -> None:
    token_a = oauth_bot.install(TEAM_A)
    token_b = oauth_bot.install(TEAM_B)
    assert token_a != token_b
    exchanges = oauth_bot.fake.calls("oauth.v2.access")
    assert [call.params.get("code", "").split("-")[1] for call in exchanges] == [TEAM_A, TEAM_B]
    assert all(call.headers["authorization"].startswith("Basic ") for call in exchanges)

    for team, token in ((TEAM_A, token_a), (TEAM_B, token_b)):
        sender = oauth_bot.sender(team)
        event = sender.message_event(f"{SPAM_TEXT} in {team}", user_id=MEMBER)
        assert sender.event(event).status == 200
        eventually(lambda token=token: _alerts_by(oauth_bot.fake, token))
    oauth_bot.executor.wait_idle()
    assert _alerts_by(oauth_bot.fake, token_a) == [f"Bearer {token_a}"]
    assert _alerts_by(oauth_bot.fake, token_b) == [f"Bearer {token_b}"]
    # Nothing went out with a token that is not its workspace's (nor with none).
    assert all(
        call.token in (token_a, token_b) for call in oauth_bot.fake.calls("chat.postMessage")
    )


def test_a_bad_or_reused_state_is_refused(oauth_bot: OAuthBot) -> None:
    state, cookie = oauth_bot.start_install()
    oauth = oauth_bot.fake_oauth

    bogus = oauth_bot.redirect(oauth.approve(TEAM_A), "not-a-state", cookie)
    assert bogus.status >= 400
    no_cookie = oauth_bot.redirect(oauth.approve(TEAM_A), state, None)
    assert no_cookie.status >= 400
    assert oauth_bot.fake.calls("oauth.v2.access") == []

    assert oauth_bot.redirect(oauth.approve(TEAM_A), state, cookie).status == 200
    reused = oauth_bot.redirect(oauth.approve(TEAM_B), state, cookie)
    assert reused.status >= 400
    assert len(oauth_bot.fake.calls("oauth.v2.access")) == 1
    with pytest.raises(WorkspaceNotInstalled):
        oauth_bot.clients.for_team(TEAM_B)


def test_events_of_a_workspace_that_never_installed_are_not_handled(oauth_bot: OAuthBot) -> None:
    oauth_bot.install(TEAM_A)
    sender = oauth_bot.sender(TEAM_B)
    sender.event(sender.message_event(SPAM_TEXT, user_id=MEMBER))
    oauth_bot.executor.wait_idle()
    assert oauth_bot.fake.calls("chat.postMessage") == []
    with oauth_bot.database.begin() as session:
        assert session.query(Message).count() == 0


@pytest.mark.parametrize("token_expires_in", [3600])
def test_an_expiring_token_is_rotated_before_the_outbox_posts(oauth_bot: OAuthBot) -> None:
    first = oauth_bot.install(TEAM_A)
    assert first.startswith("xoxe.xoxb-")
    # Slack is down when the message arrives: the alert stays in the outbox.
    oauth_bot.fake.fail_next("chat.postMessage", status=500, times=3)
    sender = oauth_bot.sender(TEAM_A)
    sender.event(sender.message_event(SPAM_TEXT, user_id=MEMBER))
    oauth_bot.executor.wait_idle()
    assert not _alerts_by(oauth_bot.fake, first)

    # Hours pass: the stored token now expires within the rotation window, and Slack no
    # longer takes it.
    store = installation_store(oauth_bot.database, CLIENT_ID)
    bot = store.find_bot(enterprise_id=None, team_id=TEAM_A)
    assert bot is not None and bot.bot_token == first
    bot.bot_token_expires_at = int(utcnow().timestamp()) + 60
    store.save_bot(bot)
    oauth_bot.fake_oauth.expire(first)
    oauth_bot.fake.reset()

    assert AlertSweeper(oauth_bot.services.outbox, oauth_bot.clients, min_age_s=0).sweep() == 1
    methods = [call.method for call in oauth_bot.fake.calls()]
    assert methods.index("oauth.v2.access") < methods.index("chat.postMessage")
    [refresh] = oauth_bot.fake.calls("oauth.v2.access")
    assert refresh.params["grant_type"] == "refresh_token" and refresh.ok
    second = refresh.response["access_token"]
    assert second != first and _alerts_by(oauth_bot.fake, second) == [f"Bearer {second}"]
    assert not any(call.token == first for call in oauth_bot.fake.calls())
    saved = store.find_bot(enterprise_id=None, team_id=TEAM_A)
    assert saved is not None and saved.bot_token == second
    assert saved.bot_refresh_token == refresh.response["refresh_token"]


@pytest.mark.parametrize("event_type", ["app_uninstalled", "tokens_revoked"])
def test_an_uninstall_removes_the_tokens_at_once_and_the_data_after_the_retention(
    oauth_bot: OAuthBot, event_type: str
) -> None:
    oauth_bot.install(TEAM_A)
    token_b = oauth_bot.install(TEAM_B)
    for team in (TEAM_A, TEAM_B):
        sender = oauth_bot.sender(team)
        sender.event(sender.message_event(SPAM_TEXT, user_id=MEMBER))
    oauth_bot.executor.wait_idle()
    eventually(lambda: len(oauth_bot.fake.calls("chat.postMessage")) == 2)

    oauth_bot.fake_oauth.revoke(TEAM_A)
    event = {"type": event_type}
    if event_type == "tokens_revoked":
        event["tokens"] = {"oauth": [], "bot": ["U0BOT0AAAAAAA"]}  # type: ignore[assignment]
    assert oauth_bot.sender(TEAM_A).event(event).status == 200
    oauth_bot.executor.wait_idle()

    # The tokens are gone at once; the other workspace is untouched.
    store = installation_store(oauth_bot.database, CLIENT_ID)
    eventually(lambda: store.find_bot(enterprise_id=None, team_id=TEAM_A) is None)
    assert store.find_installation(enterprise_id=None, team_id=TEAM_A) is None
    assert oauth_bot.clients.for_team(TEAM_B).token == token_b
    with pytest.raises(WorkspaceNotInstalled):
        oauth_bot.clients.for_team(TEAM_A)

    # The data stays until the retention has passed, then only TEAM_A's goes (audited).
    workspaces = oauth_bot.services.workspaces
    assert workspaces.purge_due().purged == ()
    report = workspaces.purge_due(now=utcnow() + RETENTION + timedelta(minutes=1))
    [purged] = report.purged
    assert (purged.team_id, purged.messages, purged.predictions) == (TEAM_A, 1, 2)
    with oauth_bot.database.begin() as session:
        assert [m.team_id for m in session.query(Message)] == [TEAM_B]
        actions = [entry.action for entry in session.query(AuditEntry)]
    assert actions.count("workspace.uninstall") == 1 and actions.count("workspace.purge") == 1
    assert workspaces.purge_due(now=utcnow() + 2 * RETENTION).purged == ()
