"""The bot SIGKILLed mid-request; a fresh process finishes the work, with no Slack retry.

``bertbot serve --http`` runs as a real process on a SQLite file, against a fake Slack on
127.0.0.1 with the local credentials (no Slack tokens). With no trained model the bot
stores a message and no prediction, which cannot show that a retry stores no second
prediction; so the process is started through ``serve_fake_models.py``, which runs the
same entry point with the keyword fake models of ``tests/bot`` and can stall at a chosen
point so the test kills the process exactly there:

* ``predict``: after the delivery was stored in the inbox and acknowledged, in the model
  call before the message's unit of work (nothing of the message stored): the next process
  takes the delivery over when the claim lapses and stores the message and its
  predictions once; a late Slack retry is acknowledged and changes nothing;
* ``alert``: after the commit (message, predictions and the pending alert in the outbox),
  before the moderators' alert is posted: the next process's sweeper posts it, once;
* ``label``: a label click killed after the annotation was inserted, before commit, and
  after the commit: clicking again (the same payload) must leave exactly one annotation.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy import select as sql_select

from bot.emulator.inbound import LOCAL_SIGNING_SECRET, Delivery, SlackSender, new_event_id
from bot.emulator.outbound import FakeSlack
from storage.db import Database
from storage.models import (
    Alert,
    Annotation,
    AuditEntry,
    InboxItem,
    Message,
    Prediction,
    SlackEvent,
)
from tests.reliability.conftest import Report

LAUNCHER = Path(__file__).with_name("serve_fake_models.py")
MODERATOR = "U0MODERATOR"
AUTHOR = "U0AUTHOR01"
STALL_WORD = "zzstallhere"
SPAM = "WIN a FREE prize now, click here"
TASKS = ("spam", "sentiment")


class RecordingSender(SlackSender):
    """A SlackSender that keeps the last body it sent, to send the same payload again."""

    last: tuple[bytes, str] = (b"", "")

    def post(self, body: bytes, content_type: str, **kwargs: Any) -> Delivery:
        self.last = (body, content_type)
        return super().post(body, content_type, **kwargs)


@dataclass
class Served:
    process: subprocess.Popen[str]
    events_url: str


class BotProcesses:
    """Starts ``bertbot serve --http`` processes on one SQLite file and one fake Slack."""

    def __init__(self, tmp_path: Path, database_url: str, fake: FakeSlack) -> None:
        self.tmp_path = tmp_path
        self.database_url = database_url
        self.fake = fake
        self.marker = tmp_path / "stalled"
        self.started: list[subprocess.Popen[str]] = []

    def start(self, stall: str | None = None, **settings: str) -> Served:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BERTBOT_", "SLACK_"))}
        env |= {
            "BERTBOT_HOME": str(self.tmp_path / "home"),
            "BERTBOT_DATABASE_URL": self.database_url,
            "BERTBOT_SLACK_API_URL": self.fake.api_url,
            "BERTBOT_MODERATORS": MODERATOR,
            "BERTBOT_TEST_STALL_MARKER": str(self.marker),
            **settings,
        }
        if stall:
            env["BERTBOT_TEST_STALL"] = f"{stall}:{STALL_WORD}"
        process = subprocess.Popen(
            [sys.executable, str(LAUNCHER), "serve", "--http", "--port", "0", "--threads", "2"],
            cwd=self.tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.started.append(process)
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 60)
        line = process.stdout.readline() if ready else ""
        assert "serving Slack requests on " in line, f"the bot did not start: {line!r}"
        return Served(process, line.rsplit(" ", 1)[-1].strip())

    def kill_when_stalled(self, served: Served, timeout: float = 20.0) -> None:
        """SIGKILL the process once it reached its stall point."""
        deadline = time.monotonic() + timeout
        while not self.marker.exists():
            assert served.process.poll() is None, "the bot died before its stall point"
            assert time.monotonic() < deadline, "the bot never reached its stall point"
            time.sleep(0.02)
        self.marker.unlink()
        self.kill(served)

    @staticmethod
    def kill(served: Served) -> None:
        served.process.send_signal(signal.SIGKILL)
        assert served.process.wait(10) == -signal.SIGKILL

    def close(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
                process.wait(10)


@pytest.fixture
def processes(reliability_template: Path, tmp_path: Path) -> Iterator[BotProcesses]:
    database_path = tmp_path / "bot.db"
    shutil.copyfile(reliability_template, database_path)
    with FakeSlack() as fake:
        procs = BotProcesses(tmp_path, f"sqlite:///{database_path}", fake)
        try:
            yield procs
        finally:
            procs.close()


def _counts(database_url: str) -> dict[str, Any]:
    database = Database.connect(database_url)
    try:
        with database.begin() as session:

            def count(model: Any) -> int:
                return int(session.scalar(sql_select(func.count()).select_from(model)) or 0)

            per_task = dict(
                session.execute(
                    sql_select(Prediction.task, func.count()).group_by(Prediction.task)
                ).all()
            )
            return {
                "events": count(SlackEvent),
                "messages": count(Message),
                "predictions": count(Prediction),
                "predictions_per_task": {t: int(per_task.get(t, 0)) for t in TASKS},
                "annotations": count(Annotation),
                "audit": count(AuditEntry),
                "inbox": count(InboxItem),
            }
    finally:
        database.dispose()


def _wait_for_counts(database_url: str, **wanted: int) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while True:
        counts = _counts(database_url)
        if all(counts[key] >= value for key, value in wanted.items()):
            return counts
        assert time.monotonic() < deadline, f"rows never appeared: {counts}, wanted {wanted}"
        time.sleep(0.05)


def _outbox(database_url: str) -> list[tuple[int, bool]]:
    """(attempts, posted) of each stored alert."""
    database = Database.connect(database_url)
    try:
        with database.begin() as session:
            rows = session.execute(
                sql_select(Alert.attempts, Alert.posted_at).order_by(Alert.id)
            ).all()
            return [(attempts, posted_at is not None) for attempts, posted_at in rows]
    finally:
        database.dispose()


def _alerts(fake: FakeSlack) -> list[Any]:
    return [c for c in fake.calls("chat.postMessage") if c.ok]


# Short claims and sweeps, so a dead process's deliveries are taken over within seconds.
QUICK_INBOX = {"BERTBOT_INBOX__CLAIM_SECONDS": "2", "BERTBOT_INBOX__SWEEP_SECONDS": "0.2"}


@pytest.mark.parametrize("killed_at", ["predict", "alert"])
def test_a_message_event_acknowledged_before_a_kill_is_stored_once_without_a_retry(
    processes: BotProcesses, killed_at: str, report: Report
) -> None:
    fake = processes.fake
    first = processes.start(stall=killed_at, **QUICK_INBOX)
    sender = SlackSender(first.events_url, LOCAL_SIGNING_SECRET, fake=fake)
    event = sender.message_event(f"{SPAM} {STALL_WORD}", user_id=AUTHOR)
    event_id = new_event_id()
    assert sender.event(event, event_id=event_id).status == 200  # stored, then acked
    processes.kill_when_stalled(first)
    after_kill = _counts(processes.database_url)

    # Slack sends nothing more (it had its 200): the next process takes the delivery over
    # once the dead one's claim lapses (predict), or posts the pending alert (alert).
    second = processes.start(BERTBOT_ALERT_RETRY_SECONDS="0.5", **QUICK_INBOX)
    counts = _wait_for_counts(processes.database_url, events=1, messages=1, predictions=2)
    fake.wait_for("chat.postMessage", timeout=10)
    # A retry Slack might still send (it timed out waiting) is acknowledged, not redone.
    retry = SlackSender(second.events_url, LOCAL_SIGNING_SECRET, fake=fake)
    assert retry.event(event, event_id=event_id, retry_num=1).status == 200
    time.sleep(1.0)  # anything that could still be stored or posted (it should not)
    counts = _counts(processes.database_url)
    report.add(
        killed_at=killed_at,
        processes_started=2,
        requests_sent=2,
        faults_injected=1,
        rows_after_kill=after_kill,
        messages_expected=1,
        messages_found=counts["messages"],
        events_found=counts["events"],
        predictions_per_task_expected=1,
        predictions_per_task_found=counts["predictions_per_task"],
        alerts_posted=len(_alerts(fake)),
    )
    report.emit()

    # Killed before commit: only the inbox row survived; after commit: everything did.
    expected_before = 0 if killed_at == "predict" else 1
    assert after_kill["messages"] == after_kill["events"] == expected_before
    assert after_kill["inbox"] == 1
    assert counts["messages"] == 1 and counts["events"] == 1 and counts["inbox"] == 1
    assert counts["predictions_per_task"] == {"spam": 1, "sentiment": 1}
    assert len(_alerts(fake)) == 1
    assert _outbox(processes.database_url) == [(1, True)]


def test_an_alert_left_unposted_by_a_kill_is_posted_by_the_sweeper_without_a_retry(
    processes: BotProcesses, report: Report
) -> None:
    fake = processes.fake
    first = processes.start(stall="alert")
    sender = SlackSender(first.events_url, LOCAL_SIGNING_SECRET, fake=fake)
    event = sender.message_event(f"{SPAM} {STALL_WORD}", user_id=AUTHOR)
    assert sender.event(event).status == 200
    processes.kill_when_stalled(first)
    outbox_after_kill = _outbox(processes.database_url)

    # Slack never retries (it had its 200): only the sweeper of a running process can heal it.
    started = time.monotonic()
    processes.start(BERTBOT_ALERT_RETRY_SECONDS="0.5")
    [alert] = fake.wait_for("chat.postMessage", timeout=15)
    healed_s = time.monotonic() - started
    time.sleep(1.5)  # three more sweeps: none may post it again
    report.add(
        killed_at="alert",
        processes_started=2,
        requests_sent=1,
        faults_injected=1,
        outbox_after_kill=outbox_after_kill,
        seconds_to_post=round(healed_s, 2),
        alerts_posted=len(_alerts(fake)),
    )
    report.emit()

    assert outbox_after_kill == [(0, False)]  # stored, never tried
    assert alert.ok and len(_alerts(fake)) == 1
    assert STALL_WORD in str(alert.params["blocks"])  # the killed request's message
    assert _outbox(processes.database_url) == [(1, True)]


@pytest.mark.parametrize("killed_at", ["before_commit", "after_commit"])
def test_a_label_click_sent_again_after_a_kill_is_stored_once(
    processes: BotProcesses, killed_at: str, report: Report
) -> None:
    fake = processes.fake
    first = processes.start(stall="label" if killed_at == "before_commit" else None)
    sender = RecordingSender(first.events_url, LOCAL_SIGNING_SECRET, fake=fake)
    event = sender.message_event(f"{SPAM} {STALL_WORD}", user_id=AUTHOR)
    assert sender.event(event).status == 200
    [alert_call] = fake.wait_for("chat.postMessage", timeout=10)
    alert = fake.message(alert_call.params["channel"], alert_call.response["ts"])
    assert alert is not None
    message = {"type": "message", "ts": alert.ts, "text": alert.text, "blocks": alert.blocks}
    response_url = fake.new_response_url()
    clicked = sender.click(
        user_id=MODERATOR,
        blocks=alert.blocks,
        action_id="bertbot_label:ham",
        channel_id=alert.channel,
        message=message,
        response_url=response_url,
    )
    assert clicked.status == 200
    body, content_type = sender.last
    if killed_at == "before_commit":
        processes.kill_when_stalled(first)
    else:
        _wait_for_counts(processes.database_url, annotations=1, audit=1)
        fake.wait_for("chat.update", timeout=10)
        processes.kill(first)
    after_kill = _counts(processes.database_url)

    second = processes.start()
    again = SlackSender(second.events_url, LOCAL_SIGNING_SECRET, fake=fake)
    answers_before = len(fake.calls("chat.update")) + len(fake.responses(response_url))
    assert again.post(body, content_type).status == 200  # the same payload, re-signed
    deadline = time.monotonic() + 10
    while len(fake.calls("chat.update")) + len(fake.responses(response_url)) <= answers_before:
        assert time.monotonic() < deadline, "the second process never answered the click"
        time.sleep(0.05)
    time.sleep(0.3)
    counts = _counts(processes.database_url)
    replies = [r.get("text", "") for r in fake.responses(response_url)]
    report.add(
        killed_at=killed_at,
        processes_started=2,
        requests_sent=4,
        faults_injected=1,
        annotations_after_kill=after_kill["annotations"],
        annotations_expected=1,
        annotations_found=counts["annotations"],
        audit_found=counts["audit"],
        alert_updates=len(fake.calls("chat.update")),
        replies=replies,
    )
    report.emit()

    assert after_kill["annotations"] == (0 if killed_at == "before_commit" else 1)
    assert counts["annotations"] == 1 and counts["audit"] == 1
    assert counts["messages"] == 1 and counts["predictions_per_task"] == {"spam": 1, "sentiment": 1}
    if killed_at == "after_commit":
        assert any("already" in text for text in replies)  # recognised as a repeat
