"""``bertbot serve --http``: the production entry point, run as a real process."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bertbot.cli import main
from bot.emulator.inbound import LOCAL_SIGNING_SECRET, SlackSender
from bot.emulator.outbound import FakeSlack


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in list(os.environ):
        if name.startswith(("BERTBOT_", "SLACK_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("BERTBOT_HOME", str(tmp_path / "home"))
    return tmp_path


@pytest.mark.parametrize(
    ("env", "argv", "message"),
    [
        ({}, ["--http"], "needs SLACK_BOT_TOKEN (xoxb-...) and SLACK_SIGNING_SECRET"),
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, ["--http"], "needs SLACK_SIGNING_SECRET too"),
        (
            {"BERTBOT_SLACK_API_URL": "http://127.0.0.1:9/api/"},
            ["--http", "--host", "0.0.0.0"],
            "only listens on a loopback address",
        ),
        ({}, [], "choose how to serve: --http"),
    ],
    ids=["no-credentials", "half-credentials", "local-fake-on-a-public-interface", "no-mode"],
)
def test_serve_refuses_clearly_without_usable_credentials(
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    argv: list[str],
    message: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["serve", *argv]) == 1
    assert message in capsys.readouterr().err


@pytest.fixture
def served(
    migrated_template: Path, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[str], str, FakeSlack]]:
    shutil.copyfile(migrated_template, tmp_path / "bot.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BERTBOT_", "SLACK_"))}
    with FakeSlack() as fake:
        env |= {
            "BERTBOT_HOME": str(tmp_path / "home"),
            "BERTBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
            "BERTBOT_SLACK_API_URL": fake.api_url,
            "BERTBOT_MODERATORS": "U0MODERATOR",
        }
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bertbot.cli",
                "serve",
                "--http",
                "--port",
                "0",
                "--threads",
                "2",
                "--with-scheduler",
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            line = process.stdout.readline()  # type: ignore[union-attr]
            assert "serving Slack requests on " in line, process.stderr.read()  # type: ignore[union-attr]
            yield process, line.rsplit(" ", 1)[-1].strip(), fake
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)


def test_serve_http_answers_signed_requests_and_stops_on_sigterm(
    served: tuple[subprocess.Popen[str], str, FakeSlack],
) -> None:
    process, events_url, fake = served
    assert events_url.startswith("http://127.0.0.1:") and events_url.endswith("/slack/events")
    health = events_url.replace("/slack/events", "/healthz")
    with urllib.request.urlopen(health, timeout=5) as response:
        assert response.read() == b"ok\n"
    assert fake.calls("auth.test")[0].ok  # the token was checked at start-up

    sender = SlackSender(events_url, LOCAL_SIGNING_SECRET, fake=fake)
    assert sender.command("hello", user_id="U0MEMBER", bad_signature=True).status == 401
    delivery = sender.command("hello", user_id="U0MEMBER")
    assert delivery.status == 200
    [answer] = fake.wait_for("response_url", timeout=10)
    text = "\n".join(b["text"]["text"] for b in answer.params["blocks"] if "text" in b)
    assert "*spam*: no production model yet" in text
    # Prometheus metrics on the same port.
    metrics = events_url.replace("/slack/events", "/metrics")
    with urllib.request.urlopen(metrics, timeout=5) as response:
        scraped = response.read().decode()
    assert 'bertbot_http_request_seconds_count{route="/slack/events:command",status="200"} 1.0' in (
        scraped
    )
    assert 'bertbot_http_request_seconds_count{route="/slack/events",status="401"} 1.0' in scraped
    assert 'bertbot_inbox_depth{status="dead"} 0.0' in scraped

    process.send_signal(signal.SIGTERM)
    assert process.wait(15) == 0
    output = process.stdout.read()  # type: ignore[union-attr]
    assert "bertbot: stopped" in output
    assert "retrain:spam next at" in output and "retrain:sentiment next at" in output
