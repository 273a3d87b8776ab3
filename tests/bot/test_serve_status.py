"""``bertbot serve --http`` wires the status surfaces: ``/bertbot status`` from a real process."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from bot.emulator.inbound import LOCAL_SIGNING_SECRET, SlackSender
from bot.emulator.outbound import FakeSlack
from tests.bot.surfaces import all_text


def test_status_from_the_served_app_has_the_schedules_next_retrain(
    migrated_template: Path, tmp_path: Path
) -> None:
    shutil.copyfile(migrated_template, tmp_path / "bot.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BERTBOT_", "SLACK_"))}
    with FakeSlack() as fake:
        env |= {
            "BERTBOT_HOME": str(tmp_path / "home"),
            "BERTBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
            "BERTBOT_SLACK_API_URL": fake.api_url,
            # Once a year, 03:00 in Tokyo (18:00 UTC the day before); no scheduler runs here.
            "BERTBOT_RETRAIN__SCHEDULE": "0 3 1 1 *",
            "BERTBOT_RETRAIN__TIMEZONE": "Asia/Tokyo",
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
            sender = SlackSender(line.rsplit(" ", 1)[-1].strip(), LOCAL_SIGNING_SECRET, fake=fake)
            delivery = sender.command("status", command="/bertbot", user_id="U0MEMBER")
            assert delivery.status == 200
            [answer] = fake.wait_for("response_url", timeout=10)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(15)

    now = datetime.now(UTC)
    expected = datetime(now.year, 12, 31, 18, 0, tzinfo=UTC)
    if now >= expected:  # the last hours of a year: next year's
        expected = expected.replace(year=now.year + 1)
    text = all_text(answer.params["blocks"])
    assert f"<!date^{int(expected.timestamp())}^" in text, text
    assert "*spam*: no production model yet" in text
