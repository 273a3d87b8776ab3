"""Nothing acknowledged is lost: the durable inbox under a SIGKILL and a database outage.

* 200 message events (a fifth of them spam) are acknowledged by a real ``bertbot serve``
  process, which is SIGKILLed at a random point while it works through them; a new
  process starts and no retry is sent (Slack never retries an event it got a 200 for).
  Every message ends stored exactly once with one prediction per task, and every spam
  message has exactly one alert posted. Five kill points, on SQLite and PostgreSQL.
* PostgreSQL is down for 10 s while 200 events arrive; Slack's retry schedule for 5xx
  answers is simulated: all 200 end stored once.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy import select as sql_select

from bot.emulator.inbound import LOCAL_SIGNING_SECRET, SlackSender, new_event_id
from bot.emulator.outbound import FakeSlack
from bot.inbox_policy import InboxPolicy
from bot.services.inbox import InboxSweeper
from storage.db import Database
from storage.enums import InboxStatus
from storage.models import InboxItem, Message, Prediction, SlackEvent
from tests.bot.conftest import MEMBER
from tests.reliability.conftest import BotFactory, PostgresServer, Report
from tests.reliability.test_kill_and_retry import AUTHOR, QUICK_INBOX, BotProcesses

EVENTS = 200
SPAM_EVERY = 5  # a fifth of the messages are spam
KILL_RUNS = 5
ALERTED = re.compile(r"WIN a FREE prize now #\d+-\d+")


def _texts(run: int) -> list[str]:
    return [
        f"WIN a FREE prize now #{run}-{i}" if i % SPAM_EVERY == 0 else f"hello team #{run}-{i}"
        for i in range(EVENTS)
    ]


def _state(database_url: str) -> dict[str, Any]:
    database = Database.connect(database_url)
    try:
        with database.begin() as session:

            def count(model: Any, *where: Any) -> int:
                query = sql_select(func.count()).select_from(model)
                for clause in where:
                    query = query.where(clause)
                return int(session.scalar(query) or 0)

            per_task = dict(
                session.execute(
                    sql_select(Prediction.task, func.count()).group_by(Prediction.task)
                ).all()
            )
            texts = list(session.scalars(sql_select(Message.text)))
            return {
                "events": count(SlackEvent),
                "messages": count(Message),
                "distinct_texts": len(set(texts)),
                "predictions_per_task": {t: int(per_task.get(t, 0)) for t in ("spam", "sentiment")},
                "inbox": count(InboxItem),
                "inbox_done": count(InboxItem, InboxItem.status == InboxStatus.DONE),
            }
    finally:
        database.dispose()


def _alerted_texts(fake: FakeSlack) -> list[str]:
    """The message each posted alert is about (from the alert's blocks)."""
    found = []
    for call in fake.calls("chat.postMessage"):
        if call.ok:
            found += ALERTED.findall(json.dumps(call.params.get("blocks")))
    return found


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, reliability_template: Path, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "bot.db"
        path.write_bytes(reliability_template.read_bytes())
        return f"sqlite:///{path}"
    database: Database = request.getfixturevalue("postgres_database")
    return database.engine.url.render_as_string(hide_password=False)


@pytest.fixture
def processes(database_url: str, tmp_path: Path) -> Iterator[BotProcesses]:
    with FakeSlack() as fake:
        procs = BotProcesses(tmp_path, database_url, fake)
        try:
            yield procs
        finally:
            procs.close()


@pytest.mark.slow
@pytest.mark.parametrize("run", range(KILL_RUNS))
def test_events_acknowledged_before_a_sigkill_are_all_handled_once_without_retries(
    processes: BotProcesses, run: int, report: Report
) -> None:
    fake = processes.fake
    # A model call takes 40 ms per text: the process works through the backlog for seconds.
    slow = {"BERTBOT_TEST_PREDICT_SECONDS": "0.04", "BERTBOT_ALERT_RETRY_SECONDS": "0.5"}
    first = processes.start(**QUICK_INBOX, **slow)
    sender = SlackSender(first.events_url, LOCAL_SIGNING_SECRET, fake=fake)
    texts = _texts(run)
    events = [(sender.message_event(text, user_id=AUTHOR), new_event_id()) for text in texts]
    acked: set[str] = set()

    def deliver(event: tuple[dict[str, Any], str]) -> None:
        try:
            if sender.event(event[0], event_id=event[1]).status == 200:
                acked.add(event[1])
        except OSError:  # the process is gone: no answer, so Slack would send it again
            pass

    # Deliveries keep arriving while the bot works; it is killed at a random point of its
    # backlog (a different one each run), counted in deliveries it has handled.
    kill_after = random.Random(run).randint(20, EVENTS - 40)
    pool = ThreadPoolExecutor(8)
    pending = [pool.submit(deliver, event) for event in events]
    deadline = time.monotonic() + 60
    while _state(processes.database_url)["inbox_done"] < kill_after:
        assert time.monotonic() < deadline, "the bot never got that far"
        time.sleep(0.01)
    processes.kill(first)
    for future in pending:
        future.result(timeout=30)
    pool.shutdown()
    at_kill = _state(processes.database_url)
    alerts_at_kill = len(_alerted_texts(fake))
    acked_by_first = set(acked)

    # A new process takes over once the dead claims lapse. Slack sends nothing again of
    # what it got a 200 for; what never got an answer it does send again.
    started = time.monotonic()
    second = processes.start(**QUICK_INBOX, **slow)
    again = SlackSender(second.events_url, LOCAL_SIGNING_SECRET, fake=fake)
    unanswered = [event for event in events if event[1] not in acked_by_first]
    for event, event_id in unanswered:
        assert again.event(event, event_id=event_id, retry_num=1).status == 200
    spam = [text for text in texts if "FREE" in text]
    while True:
        state = _state(processes.database_url)
        if state["inbox_done"] == EVENTS and len(_alerted_texts(fake)) >= len(spam):
            break
        assert time.monotonic() < started + 90, f"not everything was handled: {state}"
        time.sleep(0.1)
    recovered_s = time.monotonic() - started
    time.sleep(1.5)  # more sweeps: nothing may be stored or posted again
    state = _state(processes.database_url)
    alerted = _alerted_texts(fake)
    report.add(
        run=run,
        database=processes.database_url.split(":", 1)[0],
        acknowledged_before_kill=len(acked_by_first),
        handled_before_kill=at_kill["inbox_done"],
        messages_at_kill=at_kill["messages"],
        alerts_at_kill=alerts_at_kill,
        retries_of_acknowledged=0,
        sent_again_unanswered=len(unanswered),
        seconds_to_finish=round(recovered_s, 1),
        messages_found=state["messages"],
        predictions_per_task=state["predictions_per_task"],
        spam_messages=len(spam),
        alerts_posted=len(alerted),
    )
    report.emit()

    assert 0 < at_kill["inbox_done"] < len(acked_by_first), "killed with a backlog to handle"
    assert len(acked_by_first) >= kill_after
    assert state["messages"] == state["distinct_texts"] == EVENTS
    assert state["events"] == EVENTS and state["inbox"] == EVENTS
    assert state["predictions_per_task"] == {"spam": EVENTS, "sentiment": EVENTS}
    assert sorted(alerted) == sorted(spam), "one alert per spam message, none twice"


@pytest.mark.postgres
@pytest.mark.slow
def test_a_10_second_database_outage_loses_no_event(
    postgres_database: Database,
    postgres_server: PostgresServer,
    serve_bot: BotFactory,
    report: Report,
) -> None:
    bot = serve_bot(
        postgres_database,
        inbox=InboxPolicy(
            claim_seconds=3,
            sweep_seconds=0.2,
            retry_base_seconds=0.5,
            retry_max_seconds=2,
            max_attempts=100,
        ),
    )
    inbox_sweeper = InboxSweeper(bot.services.inbox).start()
    texts = _texts(0)
    events = [(bot.sender.message_event(text, user_id=MEMBER), new_event_id()) for text in texts]
    # Slack retries a 5xx (or no answer within 3 s) at once, after a minute and after five;
    # here after 0 s, 12 s and 30 s: each later try is longer after the first than the outage.
    schedule = (0.0, 12.0, 30.0)
    answers: dict[str, list[int]] = {}
    lost: list[str] = []

    def deliver(index: int) -> None:
        event, event_id = events[index]
        first = time.monotonic()
        codes = answers.setdefault(event_id, [])
        for attempt, after in enumerate(schedule):
            time.sleep(max(0.0, first + after - time.monotonic()))
            try:
                status = bot.sender.event(
                    event, event_id=event_id, retry_num=attempt or None
                ).status
            except OSError:
                status = 0
            codes.append(status)
            if status == 200:
                return
        lost.append(event_id)

    outage: dict[str, float] = {}

    def outage_after(delivered: int) -> None:
        while sum(1 for codes in list(answers.values()) if 200 in codes) < delivered:
            time.sleep(0.01)
        outage["down"] = time.monotonic()
        postgres_server.stop()
        time.sleep(10.0)
        postgres_server.start()
        outage["up"] = time.monotonic()

    restarter = threading.Thread(target=outage_after, args=(50,))
    restarter.start()
    try:
        # One thread per delivery: each waits out its own retry schedule, as Slack does.
        with ThreadPoolExecutor(EVENTS) as pool:
            for index in range(EVENTS):
                pool.submit(deliver, index)
                time.sleep(0.05)  # ~20 events a second, spread over the outage
        restarter.join(60)
        url = postgres_database.engine.url.render_as_string(hide_password=False)
        deadline = time.monotonic() + 60
        while _state(url)["inbox_done"] < EVENTS:
            assert time.monotonic() < deadline, f"not all handled: {_state(url)}"
            time.sleep(0.2)
        state = _state(url)
    finally:
        inbox_sweeper.stop()
    refused = sum(1 for codes in answers.values() for code in codes if code != 200)
    report.add(
        events=EVENTS,
        outage_s=round(outage["up"] - outage["down"], 1),
        answers_not_200=refused,
        events_needing_a_retry=sum(1 for codes in answers.values() if codes[0] != 200),
        lost_after_three_tries=len(lost),
        messages_found=state["messages"],
        predictions_per_task=state["predictions_per_task"],
    )
    report.emit()
    assert lost == []
    assert sum(1 for codes in answers.values() if codes[0] != 200) >= 50, "few saw the outage"
    assert state["messages"] == state["distinct_texts"] == EVENTS
    assert state["events"] == EVENTS and state["inbox"] == EVENTS
    assert state["predictions_per_task"] == {"spam": EVENTS, "sentiment": EVENTS}
