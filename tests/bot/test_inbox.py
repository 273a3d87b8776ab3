"""The durable inbox's rules: stored once, handled once, retried with back-off, dead-lettered.

On SQLite and PostgreSQL, with hand-written handlers (the message handling itself is tested
over HTTP in test_events.py and under SIGKILL in tests/reliability).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from bertbot.cli import main
from bot.inbox_policy import InboxPolicy
from bot.services.inbox import Inbox, InboxClaim, InboxSweeper
from bot.ui.status import inbox_line
from storage import inbox as inbox_store
from storage import schema
from storage.db import Database
from storage.enums import InboxStatus, utcnow
from storage.models import InboxItem
from storage.records import InboxRecord, InboxStats


def envelope(event_id: str, text: str = "hi") -> tuple[dict[str, object], str]:
    body = {
        "type": "event_callback",
        "event_id": event_id,
        "team_id": "T0LOCAL",
        "event": {"type": "message", "text": text, "channel": "C1", "ts": "1.1"},
    }
    return body, json.dumps(body)


def row(database: Database, item_id: int) -> InboxRecord:
    with database.begin() as session:
        return inbox_store.get_item(session=session, item_id=item_id)


def pending(database: Database, event_id: str) -> int:
    """A delivery nobody holds (as a sweeper finds one)."""
    _, raw = envelope(event_id)
    with database.begin() as session:
        record = inbox_store.add_delivery(
            session=session, event_id=event_id, event_type="message", team_id=None, payload=raw
        )
    assert record is not None
    return record.id


@pytest.fixture
def database(fresh_database: Database) -> Database:
    return fresh_database


def test_a_delivery_is_stored_once_and_a_retry_is_recognised(database: Database) -> None:
    inbox = Inbox(database)
    first = inbox.accept(*envelope("Ev1"))
    assert first is not None
    assert inbox.accept(*envelope("Ev1")) is None  # Slack's retry: acknowledged, not stored
    record = row(database, first.id)
    # Stored already claimed by the process that received it, which handles it at once.
    assert (record.status, record.claimed_by, record.attempts) == (
        InboxStatus.WORKING,
        inbox.holder,
        1,
    )
    assert (record.event_type, record.team_id) == ("message", "T0LOCAL")
    assert json.loads(record.payload)["event_id"] == "Ev1"


def test_handled_once_and_marked_done(database: Database) -> None:
    inbox = Inbox(database)
    seen: list[InboxClaim] = []
    inbox.bind(lambda claim: (seen.append(claim), inbox.done(claim)))
    claim = inbox.accept(*envelope("Ev1", "hello"))
    assert claim is not None
    inbox.run(claim)
    assert inbox.handle_due() == 0, "done: nobody handles it again"
    assert [c.body["event"]["text"] for c in seen] == ["hello"]  # type: ignore[index]
    assert row(database, claim.id).status == InboxStatus.DONE and seen[0].attempts == 1


def test_at_most_workers_deliveries_are_handled_at_once_and_all_are_handled(
    database: Database,
) -> None:
    inbox = Inbox(database, InboxPolicy(workers=2))
    running, most, lock = [0], [0], threading.Lock()

    def slow(claim: InboxClaim) -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        inbox.done(claim)

    inbox.bind(slow)
    with ThreadPoolExecutor(8) as pool:  # the listener executor: more threads than workers
        for i in range(20):
            claim = inbox.accept(*envelope(f"Ev{i}"))
            assert claim is not None
            inbox.enqueue(claim, pool.submit)
    assert most[0] == 2 and inbox.stats().done == 20


def test_failures_back_off_exponentially_then_dead_letter_and_retry_brings_it_back(
    database: Database,
) -> None:
    policy = InboxPolicy(max_attempts=3, retry_base_seconds=0.2, retry_max_seconds=0.3)
    inbox = Inbox(database, policy)
    calls: list[float] = []

    def broken(claim: InboxClaim) -> None:
        calls.append(time.monotonic())
        raise RuntimeError(f"model unavailable (attempt {claim.attempts})")

    inbox.bind(broken)
    claim = inbox.accept(*envelope("Ev1"))
    assert claim is not None
    item = claim.id
    inbox.run(claim)
    record = row(database, item)
    assert record.status == InboxStatus.PENDING and record.attempts == 1
    assert "model unavailable (attempt 1)" in (record.last_error or "")
    wait = (record.available_at - utcnow()).total_seconds()
    assert 0.05 < wait <= 0.2, "waits the base delay after the first failure"
    assert inbox.handle_due() == 0, "not due during its back-off"

    time.sleep(0.25)
    assert inbox.handle_due() == 1
    record = row(database, item)
    wait = (record.available_at - utcnow()).total_seconds()
    assert record.attempts == 2 and 0.15 < wait <= 0.3, "doubled, capped at the maximum"
    time.sleep(0.35)
    assert inbox.handle_due() == 1
    record = row(database, item)
    assert record.status == InboxStatus.DEAD and record.attempts == 3
    time.sleep(0.35)
    assert inbox.handle_due() == 0, "a dead letter waits for an operator"
    stats = inbox.stats()
    assert (stats.pending, stats.dead) == (0, 1)

    inbox.bind(inbox.done)
    assert inbox.retry(item) == 1
    assert inbox.handle_due() == 1
    assert row(database, item).status == InboxStatus.DONE and len(calls) == 3


def test_a_dead_processs_claim_lapses_and_another_takes_the_delivery_over(
    database: Database,
) -> None:
    dead = Inbox(database, InboxPolicy(claim_seconds=1))
    claim = dead.accept(*envelope("Ev1"))  # stored and claimed, then the process died
    assert claim is not None
    item = claim.id
    alive = Inbox(database)
    alive.bind(alive.done)
    assert alive.handle_due() == 0, "the claim still holds"
    time.sleep(1.1)
    assert alive.handle_due() == 1
    record = row(database, item)
    assert record.status == InboxStatus.DONE and record.attempts == 2


def test_two_processes_sweeping_at_once_handle_each_delivery_once(database: Database) -> None:
    items = 40
    handled: Counter[str] = Counter()
    lock = threading.Lock()
    processes = [Inbox(database, InboxPolicy(claim_seconds=30)) for _ in range(2)]

    def handler_of(inbox: Inbox):  # type: ignore[no-untyped-def]
        def handle(claim: InboxClaim) -> None:
            with lock:
                handled[claim.event_id] += 1
            inbox.done(claim)

        return handle

    for inbox in processes:
        inbox.bind(handler_of(inbox))
    for i in range(items):  # left pending (say, by a process that failed them once)
        pending(database, f"Ev{i}")
    barrier = threading.Barrier(2)

    def sweep(inbox: Inbox) -> int:
        barrier.wait()
        total = 0
        while (n := inbox.handle_due(limit=3)) > 0:
            total += n
        return total

    with ThreadPoolExecutor(2) as pool:
        totals = list(pool.map(sweep, processes))
    assert sum(totals) == items and set(handled.values()) == {1}
    assert processes[0].stats().done == items


def test_the_sweeper_thread_handles_what_is_due_and_prunes(database: Database) -> None:
    inbox = Inbox(database, InboxPolicy(sweep_seconds=0.05, retention_days=1))
    inbox.bind(inbox.done)
    old = pending(database, "Ev-old")
    fresh = pending(database, "Ev-fresh")
    assert old is not None and fresh is not None
    sweeper = InboxSweeper(inbox, prune_every_s=0.05).start()
    try:
        deadline = time.monotonic() + 5
        while inbox.stats().done < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with database.begin() as session:  # finished two days ago: past the retention
            session.execute(
                update(InboxItem)
                .where(InboxItem.id == old)
                .values(finished_at=utcnow() - timedelta(days=2))
            )
        deadline = time.monotonic() + 5
        while inbox.stats().done > 1:
            assert time.monotonic() < deadline, "the old row was never pruned"
            time.sleep(0.05)
    finally:
        sweeper.stop()
    assert [r.event_id for r in inbox.items()] == ["Ev-fresh"]


def test_the_status_line_says_what_waits_and_what_died() -> None:
    now = utcnow()
    stats = InboxStats(
        pending=3, working=1, dead=2, done=40, oldest_waiting_at=now - timedelta(seconds=42)
    )
    assert inbox_line(stats, now) == "4 waiting (oldest 42 s), 2 dead letter(s), 40 handled"
    idle = InboxStats(0, 0, 0, 7, None)
    assert inbox_line(idle, now) == "0 waiting, 0 dead letter(s), 7 handled"


def test_bertbot_inbox_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("BERTBOT_HOME", str(home))
    for name in ("BERTBOT_DATABASE_URL", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"):
        monkeypatch.delenv(name, raising=False)
    assert main(["db", "upgrade"]) == 0
    database = Database.connect(f"sqlite:///{home / 'bertbot.db'}")
    schema.check_schema(database)
    inbox = Inbox(database, InboxPolicy(max_attempts=1))
    inbox.bind(lambda claim: (_ for _ in ()).throw(RuntimeError("boom")))
    dead_claim = inbox.accept(*envelope("Ev-dead"))
    inbox.accept(*envelope("Ev-waiting"))
    assert dead_claim is not None
    dead_item = dead_claim.id
    inbox.run(dead_claim)
    capsys.readouterr()

    assert main(["inbox", "status"]) == 1  # a dead letter: exit 1 for monitoring
    out = capsys.readouterr().out
    assert "1 waiting" in out and "1 dead letter(s)" in out
    assert main(["inbox", "status", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["dead"] == 1
    assert main(["inbox", "list", "--dead", "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["event_id"] == "Ev-dead" and "boom" in listed["last_error"]
    assert main(["inbox", "retry"]) == 1  # neither an id nor --dead
    assert "name one dead letter" in capsys.readouterr().err
    assert main(["inbox", "retry", str(dead_item + 1)]) == 1  # not dead
    capsys.readouterr()
    assert main(["inbox", "retry", str(dead_item)]) == 0
    assert "1 event(s) will be handled again" in capsys.readouterr().out
    assert main(["inbox", "status"]) == 0
    database.dispose()
