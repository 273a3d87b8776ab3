"""``bertbot serve --emulator``: the bot and the local Slack emulator, run as a real process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bertbot.cli import main

MEMBER = "U0EMUMEMBER"


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.loads(response.read()))


@pytest.fixture
def emulator_process(migrated_template: Path, tmp_path: Path) -> Iterator[tuple[Any, str]]:
    shutil.copyfile(migrated_template, tmp_path / "bot.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BERTBOT_", "SLACK_"))}
    env |= {
        "BERTBOT_HOME": str(tmp_path / "home"),
        "BERTBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
        # Real-looking credentials are ignored: the emulator is its own workspace.
        "SLACK_BOT_TOKEN": "xoxb-real-workspace-token",
        "SLACK_SIGNING_SECRET": "real-signing-secret",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bertbot.cli", "serve", "--emulator", "--port", "0"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [process.stdout.readline() for _ in range(2)]  # type: ignore[union-attr]
        assert "serving Slack requests on http://127.0.0.1:" in lines[0], process.stderr.read()  # type: ignore[union-attr]
        assert "the Slack emulator is at http://127.0.0.1:" in lines[1]
        yield process, lines[1].split(" is at ", 1)[1].split()[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_serve_emulator_serves_the_page_and_the_bot_answers_through_it(
    emulator_process: tuple[Any, str],
) -> None:
    process, url = emulator_process
    assert b"bertbot" in _get(url + "/")
    config = json.loads(_get(url + "/emulator/api/config"))
    assert [u["id"] for u in config["users"]] == [MEMBER, "U0EMUMODERATOR", "U0EMUADMIN"]

    sent = _post(
        url + "/emulator/api/send", {"user": MEMBER, "channel": "C0GENERAL", "text": "/classify hi"}
    )
    assert sent == {"ok": True, "error": None}
    deadline = time.monotonic() + 15
    while True:
        state = json.loads(_get(url + f"/emulator/api/state?user={MEMBER}"))
        shown = state["channels"]["C0GENERAL"]
        if shown or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    [answer] = shown
    assert answer["ephemeral"] and "no production model yet" in answer["html"]

    process.send_signal(signal.SIGTERM)
    assert process.wait(15) == 0
    assert "bertbot: stopped" in process.stdout.read()


def test_serve_emulator_refuses_a_public_interface(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BERTBOT_HOME", str(tmp_path / "home"))
    assert main(["serve", "--emulator", "--host", "0.0.0.0", "--port", "0"]) == 1
    assert "serve --emulator listens on a loopback address only" in capsys.readouterr().err
