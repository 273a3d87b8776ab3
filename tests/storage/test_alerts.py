"""The alert outbox: pending until posted, claimed by one caller at a time."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from storage import alerts, messages, schema
from storage.db import Database
from storage.enums import utcnow
from storage.errors import DuplicateError, NotFoundError
from storage.records import AlertRecord

CLAIM = timedelta(seconds=60)


def _prediction(session: Session, ts: str = "1700000000.000100") -> tuple[int, int]:
    message = messages.add_message(
        session=session, team_id="T1", channel_id="C1", ts=ts, text="WIN a prize", user_id="U1"
    )
    prediction = messages.add_prediction(
        session=session,
        task="spam",
        model_version="3",
        label="spam",
        scores={"ham": 0.03, "spam": 0.97},
        latency_ms=1.0,
        message_id=message.id,
    )
    return message.id, prediction.id


def _alert(session: Session, ts: str = "1700000000.000100") -> tuple[int, AlertRecord]:
    message_id, prediction_id = _prediction(session, ts)
    alert = alerts.add_alert(
        session=session, prediction_id=prediction_id, label="spam", channel="moderators"
    )
    return message_id, alert


def test_an_alert_is_pending_until_posted_and_then_never_claimed_again(session: Session) -> None:
    message_id, alert = _alert(session)
    assert alert.pending and alert.attempts == 0 and alert.channel == "moderators"
    assert alerts.pending_alerts(session=session, message_id=message_id) == [alert]

    assert alerts.claim_alert(session=session, alert_id=alert.id, ttl=CLAIM)
    posted = alerts.mark_alert_posted(session=session, alert_id=alert.id, slack_ts="1.000001")
    assert not posted.pending and posted.slack_ts == "1.000001" and posted.attempts == 1
    assert posted.claimed_until is None
    assert alerts.pending_alerts(session=session, message_id=message_id) == []
    later = utcnow() + timedelta(hours=1)  # even once any claim would have lapsed
    assert not alerts.claim_alert(session=session, alert_id=alert.id, ttl=CLAIM, now=later)
    assert alerts.alerts_for_message(session=session, message_id=message_id) == [posted]


def test_a_claim_holds_until_it_lapses(session: Session) -> None:
    message_id, alert = _alert(session)
    now = utcnow()
    assert alerts.claim_alert(session=session, alert_id=alert.id, ttl=CLAIM, now=now)
    soon = now + timedelta(seconds=59)
    assert not alerts.claim_alert(session=session, alert_id=alert.id, ttl=CLAIM, now=soon)
    assert alerts.pending_alerts(session=session, message_id=message_id, now=soon) == []

    lapsed = now + timedelta(seconds=61)  # the claimer died: someone else may post it
    [pending] = alerts.pending_alerts(session=session, message_id=message_id, now=lapsed)
    assert pending.id == alert.id and pending.attempts == 1
    assert alerts.claim_alert(session=session, alert_id=alert.id, ttl=CLAIM, now=lapsed)
    assert alerts.get_alert(session=session, alert_id=alert.id).attempts == 2


def test_only_the_last_claimer_renews_its_claim(session: Session) -> None:
    message_id, alert = _alert(session)
    now = utcnow()
    assert alerts.claim_alert(session=session, alert_id=alert.id, ttl=CLAIM, now=now)
    later = now + timedelta(seconds=50)
    assert alerts.renew_alert_claim(
        session=session, alert_id=alert.id, attempt=1, ttl=CLAIM, now=later
    )
    held = now + timedelta(seconds=100)  # past the first claim, within the renewed one
    assert not alerts.claim_alert(session=session, alert_id=alert.id, ttl=CLAIM, now=held)
    assert alerts.pending_alerts(session=session, message_id=message_id, now=held) == []

    lapsed = later + timedelta(seconds=61)  # the renewer died too: someone else takes it
    assert alerts.claim_alert(session=session, alert_id=alert.id, ttl=CLAIM, now=lapsed)
    # The first claimer's token (attempt 1) is stale: it may neither renew nor post.
    assert not alerts.renew_alert_claim(
        session=session, alert_id=alert.id, attempt=1, ttl=CLAIM, now=lapsed
    )
    assert alerts.renew_alert_claim(
        session=session, alert_id=alert.id, attempt=2, ttl=CLAIM, now=lapsed
    )
    alerts.mark_alert_posted(session=session, alert_id=alert.id, slack_ts="1.000001")
    assert not alerts.renew_alert_claim(
        session=session, alert_id=alert.id, attempt=2, ttl=CLAIM, now=lapsed
    )


def test_a_failed_post_keeps_the_alert_pending_after_its_back_off(session: Session) -> None:
    message_id, alert = _alert(session)
    now = utcnow()
    assert alerts.claim_alert(session=session, alert_id=alert.id, ttl=CLAIM, now=now)
    retry_at = now + timedelta(seconds=30)
    released = alerts.release_alert(
        session=session, alert_id=alert.id, error="503 fatal_error " + "x" * 2000, retry_at=retry_at
    )
    assert released.pending and released.last_error is not None
    assert released.last_error.startswith("503 fatal_error") and len(released.last_error) == 1000
    assert alerts.pending_alerts(session=session, message_id=message_id, now=now) == []
    assert not alerts.claim_alert(session=session, alert_id=alert.id, ttl=CLAIM, now=now)
    after = retry_at + timedelta(seconds=1)
    assert [a.id for a in alerts.pending_alerts(session=session, now=after)] == [alert.id]
    assert alerts.claim_alert(session=session, alert_id=alert.id, ttl=CLAIM, now=after)


def test_pending_alerts_filter_by_age_and_message(session: Session) -> None:
    first_message, first = _alert(session, ts="1.1")
    second_message, second = _alert(session, ts="1.2")
    assert [a.id for a in alerts.pending_alerts(session=session)] == [first.id, second.id]
    assert alerts.pending_alerts(session=session, message_id=second_message) == [second]
    assert alerts.pending_alerts(session=session, created_before=first.created_at) == []
    old = alerts.pending_alerts(session=session, created_before=utcnow() + timedelta(seconds=1))
    assert len(old) == 2
    assert len(alerts.pending_alerts(session=session, limit=1)) == 1


def test_one_alert_per_prediction(session: Session) -> None:
    _, alert = _alert(session)
    with pytest.raises(DuplicateError):
        alerts.add_alert(
            session=session, prediction_id=alert.prediction_id, label="spam", channel="other"
        )
    assert alerts.get_alert(session=session, alert_id=alert.id).channel == "moderators"
    assert not alerts.claim_alert(session=session, alert_id=alert.id + 1000, ttl=CLAIM)
    with pytest.raises(NotFoundError):
        alerts.get_alert(session=session, alert_id=alert.id + 1000)


def test_concurrent_claims_of_one_alert_are_won_once(empty_database: Database) -> None:
    schema.upgrade(empty_database)
    with empty_database.begin() as session:
        _, alert = _alert(session)
    threads = 8
    barrier = threading.Barrier(threads)
    won: list[bool] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def claim() -> None:
        barrier.wait()
        try:
            with empty_database.begin() as session:
                result = alerts.claim_alert(session=session, alert_id=alert.id, ttl=CLAIM)
            with lock:
                won.append(result)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=claim) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert not errors, errors
    assert sorted(won) == [False] * (threads - 1) + [True]
    with empty_database.begin() as session:
        assert alerts.get_alert(session=session, alert_id=alert.id).attempts == 1


def test_an_alert_about_a_message_deleted_meanwhile_is_not_pending(session: Session) -> None:
    message_id, alert = _alert(session)
    other_id, other = _alert(session, ts="1700000000.000200")
    messages.mark_message_deleted(session=session, message_id=message_id)
    assert alerts.pending_alerts(session=session, message_id=message_id) == []
    assert [a.id for a in alerts.pending_alerts(session=session)] == [other.id]
    assert other_id != message_id


def test_the_unposted_count_is_the_outbox_depth(session: Session) -> None:
    assert alerts.unposted_count(session=session) == 0
    _alert(session)
    _, claimed = _alert(session, ts="1700000000.000200")
    _, posted = _alert(session, ts="1700000000.000300")
    deleted_message, _ = _alert(session, ts="1700000000.000400")
    assert alerts.unposted_count(session=session) == 4

    assert alerts.claim_alert(session=session, alert_id=claimed.id, ttl=CLAIM)
    assert alerts.claim_alert(session=session, alert_id=posted.id, ttl=CLAIM)
    alerts.mark_alert_posted(session=session, alert_id=posted.id, slack_ts="1.000001")
    messages.mark_message_deleted(session=session, message_id=deleted_message)
    # Claimed but not posted still waits; posted and about a deleted message do not.
    assert alerts.unposted_count(session=session) == 2
