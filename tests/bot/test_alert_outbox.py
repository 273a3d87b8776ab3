"""Moderators' alerts survive a death between the commit and the post (over real HTTP).

The alert is stored (pending) with the message; the listener posts it after the commit.
Here the listener "dies" right there (its post raises before claiming anything, as a
SIGKILL would leave it), then Slack's retry, or a sweeper, must post it exactly once.
A poster that dies after Slack took the alert, before marking it posted, leaves it
claimed; whoever takes it next finds it in the channel by its metadata.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

import bot.listeners.events.messages as message_events
from bot.app import make_client
from bot.emulator.inbound import new_event_id
from bot.emulator.outbound import RecordedCall
from bot.services import BotServices
from bot.services.alert_outbox import Alert as BotAlert
from bot.services.alert_outbox import AlertOutbox, AlertPolicy
from bot.services.alert_posting import (
    ALERT_EVENT,
    AlertSweeper,
    alert_metadata,
    deliver_alert,
    find_posted_alert,
)
from bot.services.roles import Roles
from storage import alerts
from storage.db import Database
from storage.enums import utcnow
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


def test_slack_retrying_an_event_changes_nothing_and_the_sweeper_posts_its_alert_once(
    bot: Bot, dying: Callable[[bool], None]
) -> None:
    [(event, event_id)] = _store_spam_without_posting(bot, dying)

    # Slack retries (three deliveries of the same event id arriving together): the inbox
    # has the event already, so they are acknowledged and nothing runs again.
    with ThreadPoolExecutor(3) as pool:
        statuses = list(
            pool.map(
                lambda n: bot.sender.event(event, event_id=event_id, retry_num=n).status,
                (1, 2, 3),
            )
        )
    bot.settle()
    assert statuses == [200, 200, 200]
    assert _alerts(bot) == []

    # The alert outbox's sweeper posts what the first delivery left pending, once.
    client = make_client(BOT_TOKEN, base_url=bot.fake.api_url)
    sweeper = AlertSweeper(bot.services.outbox, client, min_age_s=0)
    assert sweeper.sweep() == 1 and sweeper.sweep() == 0
    [alert] = _alerts(bot)
    [row] = _outbox(bot)
    assert not row.pending and row.slack_ts == alert.response["ts"] and row.attempts == 1
    assert SPAM_TEXT in str(alert.params["blocks"])

    # Nothing was stored or predicted twice.
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
        sweeper = AlertSweeper(bot.services.outbox, client, interval_s=0.05, min_age_s=0)
        eventually(sweeper.sweep, timeout=5)
        assert len(_alerts(bot)) == 1 and sweeper.sweep() == 0
        [row] = _outbox(bot)
        assert not row.pending and row.attempts == 2


def test_the_sweeper_posts_old_pending_alerts_and_leaves_fresh_ones_to_their_request(
    bot: Bot, dying: Callable[[bool], None]
) -> None:
    _store_spam_without_posting(bot, dying)
    client = make_client(BOT_TOKEN, base_url=bot.fake.api_url)
    assert AlertSweeper(bot.services.outbox, client, min_age_s=60).sweep() == 0
    assert _alerts(bot) == []

    sweeper = AlertSweeper(bot.services.outbox, client, interval_s=0.05, min_age_s=0.2).start()
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
        {
            name: spec
            for name in bot.services.predictor.task_names
            if (spec := bot.services.predictor.task(name))
        },
        Roles.of(admins=[ADMIN], moderators=[MODERATOR]),
        alerts=bot.services.outbox.policy,
    )
    sweepers = [
        AlertSweeper(
            services.outbox, make_client(BOT_TOKEN, base_url=bot.fake.api_url), min_age_s=0
        )
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


class TestAPosterThatDiedAfterSlackTookTheAlert:
    """The post reached Slack, then the process died before ``alert_posted`` was stored."""

    @pytest.fixture(params=["moderators", "C0MODERATORS"], ids=["by-name", "by-id"])
    def alert_policy(self, request: pytest.FixtureRequest) -> AlertPolicy:
        return AlertPolicy(channel=request.param, threshold=0.8, reaction="eyes")

    def _post_then_die(self, bot: Bot) -> tuple[RecordedCall, str]:
        """Returns the alert's post and the alerted message's ts."""

        def died(*_: Any, **__: Any) -> None:
            raise Died("killed after Slack answered, before the alert was marked posted")

        bot.services.outbox.alert_posted = died  # type: ignore[method-assign]
        event = bot.sender.message_event(SPAM_TEXT, user_id=MEMBER)
        try:
            bot.sender.event(event)
            bot.settle()
        finally:
            del bot.services.outbox.alert_posted
        [posted] = _alerts(bot)
        [row] = _outbox(bot)
        assert row.pending and row.attempts == 1 and row.claimed_until is not None
        assert posted.params["metadata"] == {
            "event_type": ALERT_EVENT,
            "event_payload": {"alert_id": row.id, "channel": "C0GENERAL", "ts": event["ts"]},
        }
        # The claim lapses (it holds 60 s for a poster that is still alive).
        with bot.database.begin() as session:
            session.execute(update(Alert).values(claimed_until=utcnow() - timedelta(seconds=1)))
        return posted, str(event["ts"])

    def test_the_sweeper_finds_it_in_the_channel_and_does_not_post_it_again(self, bot: Bot) -> None:
        posted, alerted_ts = self._post_then_die(bot)
        client = make_client(BOT_TOKEN, base_url=bot.fake.api_url)

        assert AlertSweeper(bot.services.outbox, client, min_age_s=0).sweep() == 0

        assert _alerts(bot) == [posted]  # one alert in Slack
        [row] = _outbox(bot)
        assert not row.pending and row.attempts == 2 and row.slack_ts == posted.response["ts"]
        [history] = bot.fake.calls("conversations.history")
        assert history.params["channel"] == "C0MODERATORS"
        assert history.params["oldest"] == alerted_ts
        named = bot.services.outbox.policy.channel == "moderators"
        assert len(bot.fake.calls("conversations.list")) == (1 if named else 0)
        # The reaction the dead poster never added is added now.
        message = bot.fake.message("C0GENERAL", alerted_ts)
        assert message is not None and message.reactions == {"eyes"}
        print(
            f"\nalert posted, poster died before marking it; after the sweep "
            f"{len(_alerts(bot))} in Slack, row posted with ts {row.slack_ts}"
        )

        assert AlertSweeper(bot.services.outbox, client, min_age_s=0).sweep() == 0
        assert len(_alerts(bot)) == 1

    def test_when_slack_cannot_be_asked_it_is_posted_again_rather_than_lost(
        self, bot: Bot, caplog: pytest.LogCaptureFixture
    ) -> None:
        self._post_then_die(bot)
        bot.fake.fail_next("conversations.history", status=500)
        client = make_client(BOT_TOKEN, base_url=bot.fake.api_url)

        with caplog.at_level(logging.WARNING, logger="bot.services.alert_posting"):
            assert AlertSweeper(bot.services.outbox, client, min_age_s=0).sweep() == 1

        first, second = _alerts(bot)
        [row] = _outbox(bot)
        assert not row.pending and row.slack_ts == second.response["ts"] != first.response["ts"]
        assert "it may show twice" in caplog.text


def test_an_alert_about_another_message_with_the_same_outbox_id_is_not_taken_for_it(
    bot: Bot, dying: Callable[[bool], None]
) -> None:
    # Another deployment (its own database) posted its alert 1 to the same channel.
    _store_spam_without_posting(bot, dying)
    [row] = _outbox(bot)
    client = make_client(BOT_TOKEN, base_url=bot.fake.api_url)
    client.chat_postMessage(
        channel="moderators",
        text="someone else's alert",
        metadata={
            "event_type": ALERT_EVENT,
            "event_payload": {"alert_id": row.id, "channel": "C0GENERAL", "ts": "1.000001"},
        },
    )
    alert = _bot_alert(bot, row)

    assert find_posted_alert(client, alert, "moderators") is None

    client.chat_postMessage(channel="C0MODERATORS", text="ours", metadata=alert_metadata(alert))
    found = find_posted_alert(client, alert, "#moderators")
    assert found is not None and bot.fake.message("C0MODERATORS", found) is not None


def test_the_lookup_pages_through_the_channel_history(
    bot: Bot, dying: Callable[[bool], None]
) -> None:
    _store_spam_without_posting(bot, dying)
    alert = _bot_alert(bot, _outbox(bot)[0])
    client = make_client(BOT_TOKEN, base_url=bot.fake.api_url)
    client.chat_postMessage(channel="C0MODERATORS", text="ours", metadata=alert_metadata(alert))
    for i in range(450):  # newer chatter: the alert is on the third page of 200
        client.chat_postMessage(channel="C0MODERATORS", text=f"chatter {i}")

    assert find_posted_alert(client, alert, "C0MODERATORS") is not None
    assert len(bot.fake.calls("conversations.history")) == 3


class TestALookUpSlowerThanTheClaim:
    """A poster looking for an earlier try's post in a slow Slack keeps its claim."""

    CLAIM = timedelta(seconds=0.6)
    SLOW = 1.5  # seconds per conversations.history call: longer than the claim

    def _retried_alert(
        self, bot: Bot, dying: Callable[[bool], None]
    ) -> tuple[AlertOutbox, BotAlert]:
        """A pending alert an earlier try gave up on, and an outbox with a short claim."""
        _store_spam_without_posting(bot, dying)
        with bot.database.begin() as session:
            session.execute(update(Alert).values(attempts=1))
        bot.fake.delay("conversations.history", self.SLOW)
        outbox = AlertOutbox(
            bot.database, bot.services.predictor, bot.services.outbox.policy, claim=self.CLAIM
        )
        return outbox, _bot_alert(bot, _outbox(bot)[0])

    def _race(self, bot: Bot, outbox: AlertOutbox, alert: BotAlert) -> tuple[bool, bool]:
        """The first poster's result and the second's, who comes once the claim would lapse."""
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(
                deliver_alert, make_client(BOT_TOKEN, base_url=bot.fake.api_url), outbox, alert
            )
            time.sleep(self.CLAIM.total_seconds() * 1.7)  # the first is still looking
            assert not first.done()
            second = deliver_alert(make_client(BOT_TOKEN, base_url=bot.fake.api_url), outbox, alert)
            return first.result(timeout=30), second

    def test_the_claim_is_renewed_so_a_second_poster_cannot_take_it(
        self, bot: Bot, dying: Callable[[bool], None]
    ) -> None:
        outbox, alert = self._retried_alert(bot, dying)

        first, second = self._race(bot, outbox, alert)

        assert (first, second) == (True, False)
        assert len(_alerts(bot)) == 1
        [row] = _outbox(bot)
        assert row.attempts == 2  # the second poster never got the claim
        assert not row.pending and row.slack_ts == _alerts(bot)[0].response["ts"]
        assert len(bot.fake.calls("conversations.history")) == 1  # only the first looked

    def test_a_poster_whose_claim_was_taken_meanwhile_does_not_post(
        self,
        bot: Bot,
        dying: Callable[[bool], None],
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        # The renewals cannot reach the database: the claim lapses during the look-up and
        # the second poster takes it. The first checks its claim before posting.
        outbox, alert = self._retried_alert(bot, dying)
        monkeypatch.setattr(outbox, "holding", lambda *_: contextlib.nullcontext())

        with caplog.at_level(logging.WARNING, logger="bot.services.alert_posting"):
            first, second = self._race(bot, outbox, alert)

        assert (first, second) == (False, True)
        assert len(_alerts(bot)) == 1
        [row] = _outbox(bot)
        assert row.attempts == 3 and not row.pending
        assert "taken by another poster during its look-up" in caplog.text


def _bot_alert(bot: Bot, row: AlertRecord) -> BotAlert:
    [alert] = [
        a for a in bot.services.outbox.due_alerts(older_than=timedelta(0)) if a.alert_id == row.id
    ]
    return alert
