"""``bertbot serve --http`` in multi-workspace mode, run as a real process."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from bertbot.cli import main
from bot.emulator.inbound import SlackSender
from bot.emulator.outbound import FakeSlack

CLIENT_ID = "1111.2222"
CLIENT_SECRET = "oauth-client-secret"
SIGNING_SECRET = "oauth-signing-secret"


@pytest.mark.parametrize(
    ("env", "argv", "message"),
    [
        ({}, ["--http"], "needs SLACK_SIGNING_SECRET too"),
        ({"SLACK_SIGNING_SECRET": "s"}, ["--socket"], "serves over --http"),
    ],
    ids=["no-signing-secret", "socket-mode"],
)
def test_serve_refuses_oauth_mode_without_what_it_needs(
    clean_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.setenv("SLACK_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("SLACK_CLIENT_SECRET", CLIENT_SECRET)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["serve", *argv]) == 1
    assert message in capsys.readouterr().err


def test_serve_installs_a_workspace_and_answers_it_with_its_token(
    migrated_template: Path, tmp_path: Path
) -> None:
    shutil.copyfile(migrated_template, tmp_path / "bot.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BERTBOT_", "SLACK_"))}
    with FakeSlack() as fake:
        oauth = fake.enable_oauth(CLIENT_ID, CLIENT_SECRET)
        env |= {
            "BERTBOT_HOME": str(tmp_path / "home"),
            "BERTBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
            "BERTBOT_SLACK_API_URL": fake.api_url,
            "SLACK_CLIENT_ID": CLIENT_ID,
            "SLACK_CLIENT_SECRET": CLIENT_SECRET,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "bertbot.cli", "serve", "--http", "--port", "0"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            line = process.stdout.readline()  # type: ignore[union-attr]
            assert "serving Slack requests on " in line, process.stderr.read()  # type: ignore[union-attr]
            events_url = line.rsplit(" ", 1)[-1].strip()
            install_url = process.stdout.readline().rsplit(" ", 1)[-1].strip()  # type: ignore[union-attr]
            assert install_url == events_url.replace("/slack/events", "/slack/install")
            assert fake.calls("auth.test") == []  # no token to check at start-up

            with urllib.request.urlopen(install_url, timeout=10) as response:
                page = response.read().decode()
                cookie = response.headers["Set-Cookie"].split(";", 1)[0]
            state = re.search(r"state=([0-9a-f-]+)", page)
            assert state is not None and f"client_id={CLIENT_ID}" in page
            query = urllib.parse.urlencode({"code": oauth.approve("T0SERVED"), "state": state[1]})
            redirect = install_url.replace("/slack/install", "/slack/oauth_redirect")
            request = urllib.request.Request(f"{redirect}?{query}", headers={"Cookie": cookie})
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
            [issued] = oauth.tokens("T0SERVED")

            sender = SlackSender(events_url, SIGNING_SECRET, fake=fake, team_id="T0SERVED")
            home = {"type": "app_home_opened", "user": "U0MEMBER", "tab": "home"}
            assert sender.event(home).status == 200
            [published] = fake.wait_for("views.publish", timeout=10)
            assert published.headers["authorization"] == f"Bearer {issued.token}"
            process.send_signal(signal.SIGTERM)
            assert process.wait(20) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
