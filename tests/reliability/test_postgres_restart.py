"""PostgreSQL restarted in the middle of a burst of 500 moderator corrections.

The bot is served over HTTP on a fresh PostgreSQL database. Eight threads click label
buttons (signed ``block_actions``, as Slack sends them) on 500 predictions while the
PostgreSQL server is stopped (fast shutdown: open connections are cut) and started again.
A click whose answer says it was not stored is sent again with the very same payload (a
moderator clicking again: same prediction, user and label, so the same idempotency key),
until it is stored. Meanwhile ``/classify`` is asked every few hundred milliseconds.

It proves: every click ends up as exactly one annotation (and one audit entry), none is
lost or doubled by the outage; every HTTP request is acked at once even while the database
is down; ``/classify`` always answers within 3 s (without label controls while the
database is down).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.emulator.outbound import DEFAULT_CHANNELS
from storage import messages
from storage.db import Database
from storage.models import Annotation, AuditEntry
from tests.bot.conftest import ADMIN, MEMBER, MODERATOR, Bot
from tests.reliability.conftest import BotFactory, PostgresServer, Report, posted_to

CLICKS = 500
CLIENT_THREADS = 8
RESTART_AFTER = 150  # clicks stored before PostgreSQL is stopped
OUTAGE_S = 1.5  # PostgreSQL stays down this long (plus its stop and start times)
MAX_ATTEMPTS = 100
RETRY_PAUSE_S = 0.1
ANSWER_LIMIT_S = 3.0
FORM = "application/x-www-form-urlencoded"

pytestmark = pytest.mark.postgres  # ~10 s: the burst takes ~7 s, PostgreSQL is down ~4 s of it


@dataclass
class Click:
    prediction_id: int
    user_id: str
    label: str
    response_url: str
    body: bytes
    attempts: int = 0
    refused: int = 0  # answers saying "not stored, try again"
    repeated: bool = False  # stored by an attempt whose answer was lost


def _click_body(bot: Bot, prediction_id: int, user_id: str, label: str, response_url: str) -> bytes:
    """A ``block_actions`` payload exactly as Slack sends a button click (built once)."""
    ts = bot.sender.new_ts()
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_id.lower(), "team_id": bot.sender.team_id},
        "api_app_id": bot.sender.api_app_id,
        "token": "verification-token-unused",
        "container": {
            "type": "message",
            "message_ts": ts,
            "channel_id": DEFAULT_CHANNELS["general"],
            "is_ephemeral": True,
        },
        "trigger_id": f"{int(time.time())}.{uuid.uuid4().int % 10**12}",
        "team": {"id": bot.sender.team_id, "domain": bot.sender.team_domain},
        "channel": {"id": DEFAULT_CHANNELS["general"], "name": "general"},
        "response_url": response_url,
        "actions": [
            {
                "action_id": f"bertbot_label:{label}",
                "block_id": f"label:{prediction_id}",
                "type": "button",
                "value": label,
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


def _seed_predictions(database: Database, count: int) -> list[int]:
    with database.begin() as session:
        return [
            messages.add_prediction(
                session=session,
                task="spam",
                model_version="3",
                label="spam" if i % 3 else "ham",
                scores={"ham": 0.1, "spam": 0.9} if i % 3 else {"ham": 0.9, "spam": 0.1},
                latency_ms=1.0,
                text=f"message {i}: win a free prize {uuid.uuid4().hex[:6]}",
            ).id
            for i in range(count)
        ]


class Burst:
    """Sends clicks until each is stored, counting what it took."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self.stored = 0
        self.http_not_200 = 0
        self.slowest_ack_s = 0.0
        self.unanswered = 0
        self._lock = threading.Lock()
        self.restart_due = threading.Event()

    def deliver(self, click: Click) -> None:
        fake = self.bot.fake
        for _ in range(MAX_ATTEMPTS):
            click.attempts += 1
            before = len(fake.responses(click.response_url))
            delivery = self.bot.sender.post(click.body, FORM)  # re-signed, same body
            with self._lock:
                self.slowest_ack_s = max(self.slowest_ack_s, delivery.elapsed_s)
                if delivery.status != 200:
                    self.http_not_200 += 1
            try:
                reply = fake.wait_for(
                    "response_url",
                    before + 1,
                    timeout=10,
                    where=posted_to(click.response_url),
                )[-1]
            except TimeoutError:
                with self._lock:
                    self.unanswered += 1
                time.sleep(RETRY_PAUSE_S)
                continue
            text = str(reply.params.get("text", ""))
            if text.startswith("Labelled") or "already" in text:
                click.repeated = "already" in text
                with self._lock:
                    self.stored += 1
                    if self.stored >= RESTART_AFTER:
                        self.restart_due.set()
                return
            assert "database is unavailable" in text, f"unexpected answer: {text!r}"
            click.refused += 1
            time.sleep(RETRY_PAUSE_S)
        raise AssertionError(f"click on prediction {click.prediction_id} never stored")


class ClassifyProbe:
    """Asks ``/classify`` as a member until stopped; records how long answers take."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self.sent = 0
        self.answered_stored = 0
        self.answered_unstored = 0
        self.latencies: list[float] = []
        self.http_not_200 = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.sent += 1
            delivery = self.bot.sender.command(f"classify me {self.sent}", user_id=MEMBER)
            if delivery.status != 200:
                self.http_not_200 += 1
            assert delivery.response_url is not None
            [reply] = self.bot.fake.wait_for(
                "response_url", timeout=10, where=posted_to(delivery.response_url)
            )
            self.latencies.append(reply.at - delivery.sent_at)
            shown = json.dumps(reply.params.get("blocks"))
            if "database is unavailable" in shown:
                self.answered_unstored += 1
            else:
                assert "*spam*: *" in shown, shown  # a prediction, not an error
                self.answered_stored += 1
            self.stop.wait(0.2)


def test_every_correction_is_stored_exactly_once_across_a_postgres_restart(
    postgres_database: Database,
    postgres_server: PostgresServer,
    serve_bot: BotFactory,
    report: Report,
) -> None:
    bot = serve_bot(postgres_database, threads=8)
    prediction_ids = _seed_predictions(postgres_database, CLICKS)
    users = [MODERATOR, ADMIN]
    clicks = [
        Click(
            prediction_id,
            users[i % 2],
            "ham" if i % 2 else "spam",
            bot.fake.new_response_url(),
            b"",
        )
        for i, prediction_id in enumerate(prediction_ids)
    ]
    for click in clicks:
        click.body = _click_body(
            bot, click.prediction_id, click.user_id, click.label, click.response_url
        )

    burst = Burst(bot)
    probe = ClassifyProbe(bot)
    outage: dict[str, float] = {}

    def restart() -> None:
        burst.restart_due.wait(120)
        started = time.monotonic()
        postgres_server.stop()
        outage["stopped_after_s"] = time.monotonic() - started
        time.sleep(OUTAGE_S)
        postgres_server.start()
        outage["down_s"] = time.monotonic() - started

    started = time.monotonic()
    probe_thread = threading.Thread(target=probe.run, name="classify-probe", daemon=True)
    restart_thread = threading.Thread(target=restart, name="pg-restart", daemon=True)
    probe_thread.start()
    restart_thread.start()
    try:
        with ThreadPoolExecutor(CLIENT_THREADS, thread_name_prefix="moderator") as pool:
            list(pool.map(burst.deliver, clicks))
    finally:
        restart_thread.join(120)
        probe.stop.set()
        probe_thread.join(30)
    burst_s = time.monotonic() - started
    bot.settle(60)

    with postgres_database.begin() as session:
        per_click = Counter(
            session.execute(
                select(Annotation.prediction_id, Annotation.annotator, Annotation.label)
            ).all()
        )
        audited = int(
            session.scalar(
                select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "label")
            )
            or 0
        )
    expected = Counter((c.prediction_id, c.user_id, c.label) for c in clicks)
    attempts = sum(c.attempts for c in clicks)
    report.add(
        clicks=CLICKS,
        requests_sent=attempts + probe.sent,
        click_requests=attempts,
        clicks_retried=sum(1 for c in clicks if c.attempts > 1),
        refused_not_stored=sum(c.refused for c in clicks),
        stored_by_a_lost_attempt=sum(1 for c in clicks if c.repeated),
        unanswered=burst.unanswered,
        faults_injected=1,
        postgres_down_s=round(outage.get("down_s", -1), 2),
        annotations_expected=CLICKS,
        annotations_found=sum(per_click.values()),
        audit_expected=CLICKS,
        audit_found=audited,
        http_not_200=burst.http_not_200 + probe.http_not_200,
        slowest_ack_s=round(burst.slowest_ack_s, 3),
        classify_sent=probe.sent,
        classify_answered_stored=probe.answered_stored,
        classify_answered_unstored=probe.answered_unstored,
        classify_slowest_answer_s=round(max(probe.latencies, default=0.0), 3),
        burst_s=round(burst_s, 1),
    )
    report.emit()

    assert "down_s" in outage, "PostgreSQL was not restarted during the burst"
    assert sum(c.refused for c in clicks) > 0, "no click met the outage: nothing was tested"
    assert per_click == expected  # one annotation per click, with its user and label
    assert audited == CLICKS
    assert burst.http_not_200 == 0 and probe.http_not_200 == 0
    assert burst.slowest_ack_s < ANSWER_LIMIT_S
    assert probe.answered_unstored > 0, "no /classify was asked while PostgreSQL was down"
    assert probe.answered_stored > 0
    assert max(probe.latencies) < ANSWER_LIMIT_S
