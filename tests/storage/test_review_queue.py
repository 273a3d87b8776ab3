"""The review queue's candidates, skips, label counts and digest claims, on both backends."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from storage import annotations, drift, messages, review_queue
from storage.enums import AnnotationSource, SkipKind, utcnow
from storage.models import Message
from storage.records import MessageRecord

A, B, C = "U0MODA", "U0MODB", "U0MODC"


def _message(session: Session, n: int, spam: float, text: str | None = None) -> MessageRecord:
    message = messages.add_message(
        session=session,
        team_id="T",
        channel_id="C1",
        ts=f"1.{n}",
        text=text or f"m{n}",
        user_id="U9",
    )
    messages.add_prediction(
        session=session,
        task="spam",
        model_version="3",
        label="spam" if spam >= 0.5 else "ham",
        scores={"ham": 1.0 - spam, "spam": spam},
        latency_ms=1.0,
        message_id=message.id,
    )
    return message


def _ids(session: Session, user_id: str | None = None, **kwargs: object) -> list[int]:
    since = kwargs.pop("since", utcnow() - timedelta(days=14))
    return [
        c.message.id
        for c in review_queue.queue_candidates(
            session=session,
            task="spam",
            since=since,
            user_id=user_id,
            **kwargs,  # type: ignore[arg-type]
        )
    ]


def test_candidates_are_least_sure_first_and_the_pool_is_bounded(session: Session) -> None:
    sure, coin, leaning = (_message(session, n, s) for n, s in ((1, 0.99), (2, 0.5), (3, 0.3)))
    candidates = review_queue.queue_candidates(
        session=session, task="spam", since=utcnow() - timedelta(days=1)
    )
    assert [c.message.id for c in candidates] == [coin.id, leaning.id, sure.id]
    assert candidates[0].margin == 0.0 and candidates[0].prediction.label == "spam"
    assert _ids(session, pool_size=2) == [coin.id, leaning.id]
    assert review_queue.queue_candidates(session=session, task="sentiment", since=utcnow()) == []


def test_only_the_latest_prediction_counts_and_labelled_or_deleted_messages_leave(
    session: Session,
) -> None:
    first, second, third = (_message(session, n, 0.5) for n in (1, 2, 3))
    messages.add_prediction(
        session=session,
        task="spam",
        model_version="4",
        label="spam",
        scores={"ham": 0.01, "spam": 0.99},
        latency_ms=1.0,
        message_id=first.id,
    )
    annotations.add_annotation(
        session=session,
        task="spam",
        text=second.text,
        label="ham",
        annotator=A,
        source=AnnotationSource.CORRECTION,
        message_id=second.id,
    )
    session.execute(update(Message).where(Message.id == third.id).values(deleted_at=utcnow()))
    candidates = review_queue.queue_candidates(
        session=session, task="spam", since=utcnow() - timedelta(days=1)
    )
    assert [(c.message.id, c.prediction.model_version) for c in candidates] == [(first.id, "4")]


def test_the_age_limit(session: Session) -> None:
    old, new = _message(session, 1, 0.5), _message(session, 2, 0.5)
    session.execute(
        update(Message)
        .where(Message.id == old.id)
        .values(received_at=utcnow() - timedelta(days=15))
    )
    assert _ids(session) == [new.id]
    assert _ids(session, since=utcnow() - timedelta(days=16)) == [new.id, old.id]  # newer first


def test_a_skip_hides_it_from_that_moderator_only_and_two_remove_it(session: Session) -> None:
    item, other = _message(session, 1, 0.5), _message(session, 2, 0.4)
    review_queue.record_skip(
        session=session, task="spam", message_id=item.id, user_id=A, kind=SkipKind.SKIP
    )
    assert _ids(session, A) == [other.id]
    assert _ids(session, B) == [item.id, other.id]
    assert _ids(session) == [item.id, other.id]
    # A repeat by the same moderator is one skip (its kind updated), not two.
    again = review_queue.record_skip(
        session=session, task="spam", message_id=item.id, user_id=A, kind=SkipKind.NOT_SURE
    )
    assert again.kind is SkipKind.NOT_SURE
    assert _ids(session, B) == [item.id, other.id]
    review_queue.record_skip(
        session=session, task="spam", message_id=item.id, user_id=B, kind=SkipKind.NOT_SURE
    )
    assert _ids(session, C) == [other.id] and _ids(session) == [other.id]
    skips = review_queue.skips_for(session=session, task="spam", message_id=item.id)
    assert [(s.user_id, s.kind) for s in skips] == [(A, SkipKind.NOT_SURE), (B, SkipKind.NOT_SURE)]


def test_drift_flagged_candidates_lead_whatever_their_margin(session: Session) -> None:
    coin, sure = _message(session, 1, 0.5), _message(session, 2, 0.99)
    drift.flag_for_review(session=session, task="spam", scores=[(sure.id, 3.0)])
    candidates = review_queue.queue_candidates(
        session=session, task="spam", since=utcnow() - timedelta(days=1), pool_size=0
    )
    assert [(c.message.id, c.flagged) for c in candidates] == [(sure.id, "drift")]
    assert _ids(session) == [sure.id, coin.id]


def test_labels_since_counts_one_moderators_human_labels(session: Session) -> None:
    message = _message(session, 1, 0.5)
    for annotator, source in (
        (A, AnnotationSource.CORRECTION),
        (A, AnnotationSource.ADMIN),
        (A, AnnotationSource.SEED),
        (B, AnnotationSource.CORRECTION),
    ):
        annotations.add_annotation(
            session=session,
            task="spam",
            text=f"{annotator} {source}",
            label="ham",
            annotator=annotator,
            source=source,
            message_id=message.id,
        )
    assert (
        review_queue.labels_since(session=session, annotator=A, since=utcnow() - timedelta(hours=1))
        == 2
    )
    assert (
        review_queue.labels_since(session=session, annotator=A, since=utcnow() + timedelta(hours=1))
        == 0
    )


def test_a_digest_is_claimed_once_per_period_and_given_back_after_a_failure(
    session: Session,
) -> None:
    now, day = utcnow(), timedelta(hours=24)
    assert review_queue.digest_sent_at(session=session, user_id=A) is None
    claimed, previous = review_queue.claim_digest(
        session=session, user_id=A, every=day, items=5, now=now
    )
    assert claimed and previous is None
    assert review_queue.digest_sent_at(session=session, user_id=A) == now
    later = now + timedelta(hours=23)
    assert review_queue.claim_digest(session=session, user_id=A, every=day, items=5, now=later) == (
        False,
        now,
    )
    after = now + timedelta(hours=25)
    claimed, previous = review_queue.claim_digest(
        session=session, user_id=A, every=day, items=7, now=after
    )
    assert claimed and previous == now
    review_queue.release_digest(session=session, user_id=A, previous=previous)
    assert review_queue.digest_sent_at(session=session, user_id=A) == now
    review_queue.claim_digest(session=session, user_id=B, every=day, items=5, now=now)
    review_queue.release_digest(session=session, user_id=B, previous=None)
    assert review_queue.digest_sent_at(session=session, user_id=B) is None
