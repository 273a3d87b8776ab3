"""Drift checks, episodes and their one notice, review flags and the queue (both backends)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from storage import annotations, drift, messages, overview
from storage.annotations import NewAnnotation
from storage.drift import EpisodeChange, NewDriftCheck
from storage.enums import AnnotationSource, Split, utcnow
from storage.models import Annotation, Message
from storage.texts import split_of
from tests.storage.test_overview import _message, _predict


def _check(drifted: bool, task: str = "spam", **overrides: Any) -> NewDriftCheck:
    values: dict[str, Any] = {
        "task": task,
        "model_version": "3",
        "days": 7.0,
        "n_recent": 300,
        "n_reference": 400,
        "p_value": 0.002 if drifted else 0.4,
        "p_embeddings": 0.001 if drifted else 0.2,
        "p_labels": 0.3,
        "alpha": 0.01,
        "drifted": drifted,
        "expected_macro_f1": 0.71,
        "details": {"most_drifted": [1, 2]},
    }
    return NewDriftCheck(**(values | overrides))


def test_an_episode_opens_continues_and_ends(session: Session) -> None:
    start = utcnow()
    calm = drift.record_check(session=session, check=_check(False), now=start)
    assert calm.change == EpisodeChange.NONE and calm.episode is None
    assert calm.check.episode_id is None and calm.check.drifted is False

    opened = drift.record_check(session=session, check=_check(True), now=start + timedelta(hours=1))
    assert opened.change == EpisodeChange.OPENED and opened.episode is not None
    assert opened.check.episode_id == opened.episode.id and opened.episode.checks == 1
    other_task = drift.record_check(session=session, check=_check(True, task="sentiment"))
    assert other_task.change == EpisodeChange.OPENED  # tasks have episodes of their own

    again = drift.record_check(session=session, check=_check(True), now=start + timedelta(hours=2))
    assert again.change == EpisodeChange.CONTINUED and again.episode is not None
    assert again.episode.id == opened.episode.id and again.episode.checks == 2

    ended = drift.record_check(session=session, check=_check(False), now=start + timedelta(hours=3))
    assert ended.change == EpisodeChange.ENDED and ended.episode is not None
    assert ended.episode.id == opened.episode.id
    assert ended.episode.ended_at == start + timedelta(hours=3)
    assert ended.check.episode_id is None

    reopened = drift.record_check(
        session=session, check=_check(True), now=start + timedelta(hours=4)
    )
    assert reopened.change == EpisodeChange.OPENED and reopened.episode is not None
    assert reopened.episode.id != opened.episode.id
    checks = drift.list_checks(session=session, task="spam")
    assert [c.drifted for c in checks] == [True, False, True, True, False]  # newest first
    assert checks[0].details == {"most_drifted": [1, 2]} and checks[0].p_value == 0.002
    episodes = drift.list_episodes(session=session, task="spam")
    assert [e.ended_at is None for e in episodes] == [True, False]


def test_one_notice_per_episode_claimed_once(session: Session) -> None:
    now = utcnow()
    episode = drift.record_check(session=session, check=_check(True), now=now).episode
    assert episode is not None
    assert [e.id for e in drift.pending_notices(session=session, now=now)] == [episode.id]
    ttl = timedelta(minutes=1)
    assert drift.claim_notice(session=session, episode_id=episode.id, ttl=ttl, now=now)
    # claimed: nobody else takes it, and it is not pending while the claim holds
    assert not drift.claim_notice(session=session, episode_id=episode.id, ttl=ttl, now=now)
    assert drift.pending_notices(session=session, now=now) == []
    # a failed post releases it for a later run
    drift.notice_failed(session=session, episode_id=episode.id, error="ratelimited")
    assert drift.claim_notice(session=session, episode_id=episode.id, ttl=ttl, now=now)
    told = drift.notice_posted(
        session=session, episode_id=episode.id, channel="C0MOD", ts="1.2", now=now
    )
    assert told.notified_at == now and told.notice_attempts == 2 and told.last_error is None
    # told once: a continuing episode is not pending, and cannot be claimed again
    drift.record_check(session=session, check=_check(True), now=now + timedelta(hours=1))
    assert drift.pending_notices(session=session, now=now + timedelta(hours=2)) == []
    assert not drift.claim_notice(
        session=session, episode_id=episode.id, ttl=ttl, now=now + timedelta(hours=2)
    )


def test_an_episode_that_ended_untold_is_never_told(session: Session) -> None:
    now = utcnow()
    episode = drift.record_check(session=session, check=_check(True), now=now).episode
    assert episode is not None
    drift.record_check(session=session, check=_check(False), now=now)
    assert drift.pending_notices(session=session, now=now) == []
    assert not drift.claim_notice(
        session=session, episode_id=episode.id, ttl=timedelta(minutes=1), now=now
    )


def test_flagged_messages_lead_the_review_queue_until_labelled(session: Session) -> None:
    since = utcnow() - timedelta(days=1)
    sure = _message(session, "1.1", "a very clear message")
    coin = _message(session, "1.2", "coin toss")
    gone = _message(session, "1.3", "deleted later")
    sure_prediction = _predict(session, sure, 0.99)
    coin_prediction = _predict(session, coin, 0.5)
    _predict(session, gone, 0.97)
    newer = _predict(session, sure, 0.98)  # an edit's re-prediction: the newest counts
    unflagged = overview.review_queue(session=session, since=since)
    assert [c.prediction.id for c in unflagged][:1] == [coin_prediction.id]

    flagged = drift.flag_for_review(
        session=session, task="spam", scores=[(sure.id, 0.3), (gone.id, 0.9)]
    )
    assert flagged == 2
    messages.mark_message_deleted(session=session, message_id=gone.id)
    queue = overview.review_queue(session=session, since=since)
    assert [(c.prediction.id, c.reason) for c in queue] == [
        (newer.id, "drift"),
        (coin_prediction.id, None),
    ]
    assert sure_prediction.id not in [c.prediction.id for c in queue]
    assert overview.review_queue(session=session, since=since, limit=1)[0].reason == "drift"
    # flagged for another task only: not in this task's queue
    assert overview.flagged_predictions(session=session, since=since, tasks=["sentiment"]) == []
    # flagging again refreshes the flag instead of adding one
    assert drift.flag_for_review(session=session, task="spam", scores=[(sure.id, 0.5)]) == 1
    assert len(overview.flagged_predictions(session=session, since=since)) == 1
    # an old flag falls out of the window
    assert overview.flagged_predictions(session=session, since=utcnow() + timedelta(hours=1)) == []
    # labelled by a moderator: it leaves the queue
    annotations.add_annotation(
        session=session,
        task="spam",
        text=sure.text,
        label="ham",
        annotator="U0MOD",
        source=AnnotationSource.CORRECTION,
        message_id=sure.id,
        prediction_id=newer.id,
    )
    assert [c.reason for c in overview.review_queue(session=session, since=since)] == [None]


def test_recent_messages_are_sampled_from_the_window(session: Session) -> None:
    rows = [_message(session, f"2.{i}", f"message {i}") for i in range(30)]
    _message(session, "2.99", "   ")  # nothing to compare
    session.execute(
        update(Message)
        .where(Message.id.in_([r.id for r in rows[:10]]))
        .values(received_at=utcnow() - timedelta(days=30))
    )
    messages.mark_message_deleted(session=session, message_id=rows[10].id)
    since = utcnow() - timedelta(days=7)
    everything, total = messages.sample_recent_messages(session=session, since=since, limit=100)
    assert total == 19 and sorted(m.id for m in everything) == [r.id for r in rows[11:]]
    sample, total = messages.sample_recent_messages(session=session, since=since, limit=5, seed=1)
    assert total == 19 and len(sample) == 5 and {m.id for m in sample} <= {r.id for r in rows}
    same, _ = messages.sample_recent_messages(session=session, since=since, limit=5, seed=1)
    assert same == sample


def test_eval_split_as_of_a_time(session: Session) -> None:
    texts = [f"labelled text {i}" for i in range(40)]
    annotations.add_annotations(
        session=session,
        task="spam",
        items=[NewAnnotation(t, "ham") for t in texts],
        annotator="seed",
        source=AnnotationSource.SEED,
    )
    session.execute(update(Annotation).values(created_at=utcnow() - timedelta(days=2)))
    cutoff = utcnow() - timedelta(days=1)
    late = next(t for t in (f"a later text {i}" for i in range(100)) if split_of(t) == "eval")
    annotations.add_annotation(
        session=session,
        task="spam",
        text=late,
        label="spam",
        annotator="U0MOD",
        source=AnnotationSource.CORRECTION,
    )
    as_of = annotations.eval_split(session=session, task="spam", labelled_before=cutoff)
    assert {e.text for e in as_of} == {t for t in texts if split_of(t) == "eval"}
    assert all(e.split == Split.EVAL for e in as_of) and as_of
    now = annotations.eval_split(session=session, task="spam")
    assert late in {e.text for e in now} and len(now) == len(as_of) + 1
