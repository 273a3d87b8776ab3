"""Socket Mode: the same Bolt app over a real WebSocket to a local stand-in for Slack.

The fake Slack answers ``apps.connections.open`` with the ``ws://`` URL of
:class:`tests.bot.ws_fake.FakeSocketModeServer`; slack_sdk's built-in client connects to
it exactly as it would to Slack, and the tests drive envelopes through that socket.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest

from bertbot.cli import main
from bot.app import BotConfig, create_app, make_client
from bot.emulator.inbound import LOCAL_APP_TOKEN, SlackSender
from bot.emulator.outbound import LOCAL_BOT_TOKEN, FakeSlack
from bot.observability import BotMetrics
from bot.services import BotServices
from bot.services.alert_outbox import AlertPolicy
from bot.services.roles import Roles
from bot.transport.socket_mode import SocketModeError, SocketModeRunner, check_app_token
from storage.db import Database
from tests.bot.conftest import (
    ADMIN,
    BOT_TOKEN,
    GENERAL,
    HAM_TEXT,
    MEMBER,
    MODERATOR,
    SPAM_TEXT,
    FakeModels,
    TrackingExecutor,
)
from tests.bot.ws_fake import FakeSocketModeServer
from trainer.tasks import TaskSpec


@pytest.fixture
def wss(fake_slack: FakeSlack) -> Iterator[FakeSocketModeServer]:
    with FakeSocketModeServer() as server:
        fake_slack.socket_mode_url = server.url
        yield server


@pytest.fixture
def app(
    database: Database,
    fake_slack: FakeSlack,
    tasks: dict[str, TaskSpec],
    alert_policy: AlertPolicy,
    models: FakeModels,
) -> Iterator[App]:
    services = BotServices(
        database,
        models,
        tasks,
        Roles.of(admins=[ADMIN], moderators=[MODERATOR]),
        alerts=alert_policy,
    )
    executor = TrackingExecutor(4)
    client = make_client(BOT_TOKEN, base_url=fake_slack.api_url)
    # Socket Mode envelopes are not signed: the secret is never used here.
    yield create_app(BotConfig(signing_secret="unused"), services, client, executor=executor)
    executor.wait_idle()
    executor.shutdown(wait=True)


def slash_command(fake: FakeSlack, text: str, *, user_id: str = MEMBER) -> dict[str, Any]:
    """A slash command payload as Socket Mode delivers it (the same fields as over HTTP)."""
    return {
        "token": "verification-token-unused",
        "team_id": fake.team_id,
        "team_domain": fake.team_domain,
        "channel_id": GENERAL,
        "channel_name": "general",
        "user_id": user_id,
        "user_name": user_id.lower(),
        "command": "/classify",
        "text": text,
        "api_app_id": "A0BERTBOT",
        "is_enterprise_install": "false",
        "response_url": fake.new_response_url(),
        "trigger_id": f"{int(time.time())}.1.{uuid.uuid4().hex[:16]}",
    }


def event_callback(fake: FakeSlack, event: dict[str, Any]) -> dict[str, Any]:
    return {
        "token": "verification-token-unused",
        "team_id": fake.team_id,
        "api_app_id": "A0BERTBOT",
        "event": event,
        "type": "event_callback",
        "event_id": "Ev" + uuid.uuid4().hex[:10].upper(),
        "event_time": int(time.time()),
        "authorizations": [{"team_id": fake.team_id, "user_id": fake.bot_user_id, "is_bot": True}],
    }


def answer_text(call: Any) -> str:
    return "\n".join(b["text"]["text"] for b in call.params["blocks"] if "text" in b)


def test_socket_mode_round_trip_acks_envelopes_and_answers_through_the_web_api(
    app: App, fake_slack: FakeSlack, wss: FakeSocketModeServer
) -> None:
    runner = SocketModeRunner(app, LOCAL_APP_TOKEN).start()
    try:
        # Start-up: the app token (not the bot token) asked for the URL, then the handshake.
        [opened] = fake_slack.calls("apps.connections.open")
        assert opened.ok and opened.token == LOCAL_APP_TOKEN
        wss.wait_connected()
        assert f"ticket={wss.ticket}" in wss.handshakes[0]["request-line"]
        assert runner.session_id
        wss.hello()

        # A slash command: the envelope is acked over the socket, the answer goes to the
        # response_url on the fake Slack.
        command = slash_command(fake_slack, SPAM_TEXT)
        envelope_id = wss.envelope("slash_commands", command, accepts_response_payload=True)
        assert wss.wait_for_ack(envelope_id) == {"envelope_id": envelope_id}
        [answer] = fake_slack.wait_for("response_url", timeout=10)
        assert fake_slack.responses(command["response_url"]) == [answer.params]
        assert "*spam*: *Spam* · 97% · model v3" in answer_text(answer)

        # An ack with a body (usage for an empty /classify) travels back in the envelope.
        usage_id = wss.envelope(
            "slash_commands", slash_command(fake_slack, ""), accepts_response_payload=True
        )
        usage = wss.wait_for_ack(usage_id)
        assert "/classify" in usage["payload"]["text"]
        assert usage["payload"]["response_type"] == "ephemeral"

        # An Events API message: acked, classified, and the spam alert posted via the Web API.
        sender = SlackSender("http://127.0.0.1:9/unused", "unused", fake=fake_slack)
        event = sender.message_event(SPAM_TEXT, user_id=MEMBER)
        event_id = wss.envelope(
            "events_api", event_callback(fake_slack, event), accepts_response_payload=False
        )
        assert wss.wait_for_ack(event_id) == {"envelope_id": event_id}
        [alert] = fake_slack.wait_for("chat.postMessage", timeout=10)
        assert alert.params["channel"] == "moderators"

        ham = sender.message_event(HAM_TEXT, user_id=MEMBER)
        ham_id = wss.envelope(
            "events_api", event_callback(fake_slack, ham), accepts_response_payload=False
        )
        wss.wait_for_ack(ham_id)
    finally:
        runner.close()
    wss.wait_disconnected()
    assert wss.pings >= 1  # the client's first ping got our pong
    assert wss.errors == []
    assert len(fake_slack.calls("chat.postMessage")) == 1  # no alert for ham


def test_serve_forever_returns_after_close_from_another_thread(
    app: App, wss: FakeSocketModeServer
) -> None:
    runner = SocketModeRunner(app, LOCAL_APP_TOKEN)
    thread = threading.Thread(target=runner.serve_forever)
    thread.start()
    wss.wait_connected()
    runner.close()
    thread.join(10)
    assert not thread.is_alive()
    wss.wait_disconnected()
    runner.close()  # twice is harmless


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "needs an app-level token (SLACK_APP_TOKEN"),
        (BOT_TOKEN, "starting with xapp-; this is a bot token (xoxb-)"),
        ("secret", "starting with xapp-; this is not an app-level token"),
    ],
    ids=["empty", "bot-token", "garbage"],
)
def test_runner_refuses_what_is_not_an_app_token(token: str, message: str) -> None:
    with pytest.raises(SocketModeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_app_token(token)


def test_start_fails_clearly_when_slack_refuses_or_the_socket_does_not_open(
    app: App, fake_slack: FakeSlack
) -> None:
    # No Socket Mode URL to hand out (Socket Mode off for the app).
    with pytest.raises(SocketModeError, match="SLACK_APP_TOKEN.*socket_mode_not_enabled"):
        SocketModeRunner(app, LOCAL_APP_TOKEN).start()
    # A wrong app token.
    with FakeSocketModeServer() as server:
        fake_slack.socket_mode_url = server.url
        with pytest.raises(SocketModeError, match="SLACK_APP_TOKEN.*invalid_auth"):
            SocketModeRunner(app, "xapp-1-wrong").start()
    # The URL leads nowhere (the server above is gone).
    with pytest.raises(SocketModeError, match="did not connect"):
        SocketModeRunner(app, LOCAL_APP_TOKEN).start()


class RecordingClient(BaseSocketModeClient):
    """A Socket Mode client with no socket: connect() is recorded, responses collected."""

    def __init__(self, app_token: str, web_client: WebClient) -> None:
        self.app_token = app_token
        self.web_client = web_client
        self.logger = logging.getLogger("test.socket_mode")
        self.socket_mode_request_listeners = []
        self.message_listeners = []
        self.connected = False
        self.closed = False
        self.sent: list[dict[str, Any]] = []

    def connect(self) -> None:
        self.connected = True

    def is_connected(self) -> bool:
        return self.connected and not self.closed

    def disconnect(self) -> None:
        self.connected = False

    def send_message(self, message: str) -> None:
        self.sent.append(json.loads(message))

    def close(self) -> None:
        self.closed = True


def _start_with_recording_client(
    app: App, metrics: BotMetrics | None = None
) -> tuple[SocketModeRunner, RecordingClient]:
    """A started runner whose Socket Mode client records what it sends instead of connecting."""
    made: list[RecordingClient] = []

    def factory(app_token: str, web_client: WebClient) -> RecordingClient:
        made.append(RecordingClient(app_token, web_client))
        return made[0]

    runner = SocketModeRunner(app, LOCAL_APP_TOKEN, client_factory=factory, metrics=metrics).start()
    [client] = made
    return runner, client


@pytest.mark.parametrize(
    ("kind", "payload"),
    [
        ("events_api", {"type": "event_callback", "event": "x", "event_id": "Ev1"}),
        ("interactive", {"type": "block_actions", "user": {"id": MEMBER}, "actions": [1]}),
        ("slash_commands", {"command": "/classify", "text": "hi"}),  # no user_id
    ],
)
def test_a_malformed_envelope_is_acked_and_dropped_before_bolt(
    app: App, fake_slack: FakeSlack, kind: str, payload: dict[str, Any]
) -> None:
    runner, client = _start_with_recording_client(app)
    [listener] = client.socket_mode_request_listeners
    bad = SocketModeRequest(type=kind, envelope_id="env-bad", payload=payload)
    cast(Any, listener)(client, bad)
    assert client.sent == [{"envelope_id": "env-bad"}]  # acked: Slack will not redeliver it
    good = SocketModeRequest(
        type="slash_commands",
        envelope_id="env-good",
        payload=slash_command(fake_slack, ""),
        accepts_response_payload=True,
    )
    cast(Any, listener)(client, good)  # the connection still serves
    assert client.sent[-1]["envelope_id"] == "env-good"
    runner.close()
    assert fake_slack.calls("chat.postMessage") == []


def test_an_injected_client_gets_the_apps_web_client_and_dispatches_to_the_app(
    app: App, fake_slack: FakeSlack
) -> None:
    runner, client = _start_with_recording_client(app)
    assert client.connected and client.app_token == LOCAL_APP_TOKEN
    assert client.web_client is app.client
    [listener] = client.socket_mode_request_listeners
    request = SocketModeRequest(
        type="slash_commands",
        envelope_id="env-1",
        payload=slash_command(fake_slack, ""),
        accepts_response_payload=True,
    )
    cast(Any, listener)(client, request)  # as the client calls it
    [ack] = client.sent
    assert ack["envelope_id"] == "env-1" and "/classify" in ack["payload"]["text"]
    runner.close()
    assert client.closed


def test_each_acked_envelope_is_timed_by_kind_and_a_dropped_one_is_not(
    app: App, fake_slack: FakeSlack
) -> None:
    metrics = BotMetrics(process=False)
    runner, client = _start_with_recording_client(app, metrics)
    [listener] = client.socket_mode_request_listeners
    command = SocketModeRequest(
        type="slash_commands",
        envelope_id="env-1",
        payload=slash_command(fake_slack, ""),
        accepts_response_payload=True,
    )
    event = SocketModeRequest(
        type="events_api",
        envelope_id="env-2",
        payload=event_callback(fake_slack, {"type": "app_mention", "user": MEMBER, "text": "hi"}),
    )
    malformed = SocketModeRequest(
        type="slash_commands", envelope_id="env-3", payload={"command": "/classify"}
    )
    for request in (command, event, malformed):
        cast(Any, listener)(client, request)
    runner.close()
    assert [m["envelope_id"] for m in client.sent] == ["env-1", "env-2", "env-3"]
    count = metrics.registry.get_sample_value
    assert count("bertbot_ack_seconds_count", {"kind": "command"}) == 1
    assert count("bertbot_ack_seconds_count", {"kind": "event"}) == 1
    assert count("bertbot_ack_seconds_sum", {"kind": "command"}) < 3.0


# `bertbot serve --socket`, the entry point ------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in list(os.environ):
        if name.startswith(("BERTBOT_", "SLACK_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("BERTBOT_HOME", str(tmp_path / "home"))
    return tmp_path


@pytest.mark.parametrize(
    ("env", "argv", "code", "message"),
    [
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, ["--socket"], 1, "serve --socket needs SLACK_APP_TOKEN"),
        ({"SLACK_APP_TOKEN": "xapp-1"}, ["--socket"], 1, "needs SLACK_BOT_TOKEN (xoxb-...) too"),
        (
            {"SLACK_APP_TOKEN": "xoxb-1", "SLACK_BOT_TOKEN": "xoxb-1"},
            ["--socket"],
            2,
            "SLACK_APP_TOKEN: an app-level token starts with xapp-",
        ),
    ],
    ids=["no-app-token", "no-bot-token", "bot-token-as-app-token"],
)
def test_serve_socket_refuses_clearly_without_the_right_tokens(
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    argv: list[str],
    code: int,
    message: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["serve", *argv]) == code
    assert message in capsys.readouterr().err


def test_serve_http_and_socket_are_mutually_exclusive(
    clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--http", "--socket"])
    assert exited.value.code == 2
    assert "--socket: not allowed with argument --http" in capsys.readouterr().err


def test_serve_socket_round_trip_and_clean_stop_on_sigterm(
    migrated_template: Path, tmp_path: Path
) -> None:
    shutil.copyfile(migrated_template, tmp_path / "bot.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BERTBOT_", "SLACK_"))}
    with FakeSlack() as fake, FakeSocketModeServer() as server:
        fake.socket_mode_url = server.url
        env |= {
            "BERTBOT_HOME": str(tmp_path / "home"),
            "BERTBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
            "BERTBOT_SLACK_API_URL": fake.api_url,
            "SLACK_BOT_TOKEN": LOCAL_BOT_TOKEN,
            "SLACK_APP_TOKEN": LOCAL_APP_TOKEN,
        }
        metrics_port = _free_port()
        argv = ["serve", "--socket", "--threads", "2", "--metrics-port", str(metrics_port)]
        process = subprocess.Popen(
            [sys.executable, "-m", "bertbot.cli", *argv],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            line = process.stdout.readline()  # type: ignore[union-attr]
            assert "serving Slack requests over Socket Mode" in line, process.stderr.read()  # type: ignore[union-attr]
            server.wait_connected()
            assert [c.token for c in fake.calls("apps.connections.open")] == [LOCAL_APP_TOKEN]
            assert fake.calls("auth.test")[0].token == LOCAL_BOT_TOKEN
            server.hello()
            command = slash_command(fake, "hello")
            envelope_id = server.envelope("slash_commands", command, accepts_response_payload=True)
            assert server.wait_for_ack(envelope_id, timeout=10) == {"envelope_id": envelope_id}
            [answer] = fake.wait_for("response_url", timeout=10)
            assert "*spam*: no production model yet" in answer_text(answer)
            # The metrics, on a port of their own.
            line = process.stdout.readline()  # type: ignore[union-attr]
            assert f"serving metrics on http://127.0.0.1:{metrics_port}/metrics" in line
            url = f"http://127.0.0.1:{metrics_port}/metrics"
            with urllib.request.urlopen(url, timeout=5) as response:
                scraped = response.read().decode()
            assert 'bertbot_ack_seconds_count{kind="command"} 1.0' in scraped

            process.send_signal(signal.SIGTERM)
            assert process.wait(15) == 0
            server.wait_disconnected()
            assert "bertbot: stopped" in process.stdout.read()  # type: ignore[union-attr]
            with pytest.raises(OSError):  # closed with the process
                urllib.request.urlopen(url, timeout=2)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
