"""Moderators' alerts survive a death between the commit and the post (over real HTTP).

The alert is stored (pending) with the message; the listener posts it after the commit.
Here the listener "dies" right there (its post raises before claiming anything, as a
SIGKILL would leave it), then Slack's retry, or a sweeper, must post it exactly once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import select

import bot.events.messages as message_events
from bot.alerts import AlertSweeper, deliver_alert
from bot.app import make_client
from bot.fake_slack import RecordedCall, new_event_id
from bot.roles import Roles
from bot.services import AlertPolicy, BotServices
from storage import alerts
from storage.db import Database
from storage.models import Alert
from storage.records import AlertRecord
from tests.bot.conftest import ADMIN, BOT_TOKEN, MEMBER, MODERATOR, SPAM_TEXT, Bot, eventually


class Died(RuntimeError):
    """The listener's process died after the commit, before posting the alert."""


@pytest.fixture
def dying(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[bool], None]]:
    """``dying(True)``: from now on, listeners die before posting; ``dying(False)``: they live."""

    def die(*_: Any, **__: Any) -> bool:
        raise Died("killed between the commit and the post")

    def set_dying(on: bool) -> None:
        monkeypatch.setattr(message_events, "deliver_alert", die if on else deliver_alert)

    yield set_dying


def _alerts(bot: Bot) -> list[RecordedCall]:
    return [c for c in bot.fake.calls("chat.postMessage") if c.ok]


def _outbox(bot: Bot) -> list[AlertRecord]:
    """Every stored alert, posted or not, in the order stored."""
    with bot.database.begin() as session:
        ids = session.scalars(select(Alert.id).order_by(Alert.id)).all()
        return [alerts.get_alert(session=session, alert_id=alert_id) for alert_id in ids]


def _store_spam_without_posting(bot: Bot, dying: Callable[[bool], None], n: int = 1) -> list[Any]:
    """Deliver ``n`` spam messages whose listener dies before posting; return the events."""
    dying(True)
    events = []
    for i in range(n):
        event = bot.sender.message_event(f"{SPAM_TEXT} #{i}", user_id=MEMBER)
        event_id = new_event_id()
        assert bot.sender.event(event, event_id=event_id).status == 200
        events.append((event, event_id))
    bot.settle()
    dying(False)
    assert _alerts(bot) == []
    pending = _outbox(bot)
    assert [(a.pending, a.attempts) for a in pending] == [(True, 0)] * n
    return events


def test_slack_retrying_an_event_posts_the_alert_its_first_delivery_left_pending_once(
    bot: Bot, dying: Callable[[bool], None]
) -> None:
    [(event, event_id)] = _store_spam_without_posting(bot, dying)

    # Slack retries (three deliveries of the same event id arriving together).
    with ThreadPoolExecutor(3) as pool:
        statuses = list(
            pool.map(
                lambda n: bot.sender.event(event, event_id=event_id, retry_num=n).status,
                (1, 2, 3),
            )
        )
    bot.settle()
    assert statuses == [200, 200, 200]
    [alert] = _alerts(bot)
    [row] = _outbox(bot)
    assert not row.pending and row.slack_ts == alert.response["ts"] and row.attempts == 1
    assert SPAM_TEXT in str(alert.params["blocks"])

    # A later retry finds nothing pending; nothing was stored or predicted twice.
    bot.sender.event(event, event_id=event_id, retry_num=4)
    bot.settle()
    assert len(_alerts(bot)) == 1
    counts = bot.counts()
    assert (counts["events"], counts["messages"], counts["predictions"]) == (1, 1, 2)
    assert [model.calls for model in bot.models.models.values()] == [1, 1]


class TestAFailedPost:
    @pytest.fixture
    def alert_policy(self) -> AlertPolicy:
        return AlertPolicy(channel="moderators", threshold=0.8, retry_seconds=1.0)

    def test_waits_out_its_back_off_then_the_sweeper_posts_it_once(self, bot: Bot) -> None:
        bot.fake.fail_next("chat.postMessage", status=503)
        event = bot.sender.message_event(SPAM_TEXT, user_id=MEMBER)
        event_id = new_event_id()
        bot.sender.event(event, event_id=event_id)
        bot.settle()
        [row] = _outbox(bot)
        assert row.pending and row.attempts == 1 and row.last_error == "503 fatal_error"

        # A retry within the back-off leaves it alone (Slack is failing; don't hammer it).
        bot.sender.event(event, event_id=event_id, retry_num=1)
        bot.settle()
        assert _alerts(bot) == []

        client = make_client(BOT_TOKEN, base_url=bot.fake.api_url)
        sweeper = AlertSweeper(bot.services, client, interval_s=0.05, min_age_s=0)
        eventually(sweeper.sweep, timeout=5)
        assert len(_alerts(bot)) == 1 and sweeper.sweep() == 0
        [row] = _outbox(bot)
        assert not row.pending and row.attempts == 2


def test_the_sweeper_posts_old_pending_alerts_and_leaves_fresh_ones_to_their_request(
    bot: Bot, dying: Callable[[bool], None]
) -> None:
    _store_spam_without_posting(bot, dying)
    client = make_client(BOT_TOKEN, base_url=bot.fake.api_url)
    assert AlertSweeper(bot.services, client, min_age_s=60).sweep() == 0
    assert _alerts(bot) == []

    sweeper = AlertSweeper(bot.services, client, interval_s=0.05, min_age_s=0.2).start()
    try:
        eventually(lambda: _alerts(bot), timeout=5)
        threading.Event().wait(0.3)  # several more sweeps
    finally:
        sweeper.stop()
    assert len(_alerts(bot)) == 1
    assert [(a.pending, a.attempts) for a in _outbox(bot)] == [(False, 1)]


def test_two_sweepers_racing_post_each_pending_alert_once(
    bot: Bot, dying: Callable[[bool], None]
) -> None:
    pending = 10
    _store_spam_without_posting(bot, dying, n=pending)
    assert bot.database.sqlite_path is not None
    # A second process: its own engine on the same file, its own Web API client.
    other_database = Database.connect(f"sqlite:///{bot.database.sqlite_path}")
    other = BotServices(
        other_database,
        bot.models,
        {name: spec for name in bot.services.task_names if (spec := bot.services.task(name))},
        Roles.of(admins=[ADMIN], moderators=[MODERATOR]),
        alerts=bot.services.alerts,
    )
    sweepers = [
        AlertSweeper(services, make_client(BOT_TOKEN, base_url=bot.fake.api_url), min_age_s=0)
        for services in (bot.services, other)
    ]
    barrier = threading.Barrier(len(sweepers))

    def race(sweeper: AlertSweeper) -> int:
        barrier.wait()
        return sweeper.sweep() + sweeper.sweep()

    try:
        with ThreadPoolExecutor(len(sweepers)) as pool:
            posted = list(pool.map(race, sweepers))
    finally:
        other_database.dispose()
    calls = _alerts(bot)
    print(f"\nsweepers posted {posted} of {pending} pending alerts")
    assert sum(posted) == pending == len(calls)
    blocks = [str(call.params["blocks"]) for call in calls]
    assert all(sum(f"#{i}" in b for b in blocks) == 1 for i in range(pending))  # each once
    assert [(a.pending, a.attempts) for a in _outbox(bot)] == [(False, 1)] * pending
