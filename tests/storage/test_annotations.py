from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from storage import annotations, messages
from storage.annotations import NewAnnotation
from storage.enums import AnnotationSource, Split, utcnow
from storage.models import Annotation
from storage.texts import split_of, text_hash


def _age(session: Session, annotation_id: int, minutes: int) -> None:
    """Move an annotation back in time (clocks are too coarse to order rows by)."""
    session.execute(
        update(Annotation)
        .where(Annotation.id == annotation_id)
        .values(created_at=utcnow() - timedelta(minutes=minutes))
    )


def test_a_correction_records_the_prediction_it_corrects(session: Session) -> None:
    message = messages.add_message(
        session=session, team_id="T", channel_id="C", ts="1.1", text="WIN CASH", user_id="U9"
    )
    prediction = messages.add_prediction(
        session=session,
        task="spam",
        model_version="7",
        label="ham",
        scores={"ham": 0.6, "spam": 0.4},
        latency_ms=3.0,
        message_id=message.id,
    )
    record, created = annotations.add_annotation(
        session=session,
        task="spam",
        text=message.text,
        label="spam",
        annotator="U1",
        source=AnnotationSource.CORRECTION,
        message_id=message.id,
        prediction_id=prediction.id,
        idempotency_key="click-1",
    )
    assert created
    assert (record.predicted_label, record.predicted_model_version) == ("ham", "7")
    assert record.annotator == "U1" and record.created_at.tzinfo is not None
    assert record.text_hash == text_hash("WIN CASH")


def test_the_same_idempotency_key_stores_one_annotation(session: Session) -> None:
    kwargs = dict(
        session=session,
        task="spam",
        text="hi",
        label="ham",
        annotator="U1",
        source=AnnotationSource.CORRECTION,
        idempotency_key="click-2",
    )
    first, created = annotations.add_annotation(**kwargs)  # type: ignore[arg-type]
    again, created_again = annotations.add_annotation(**kwargs)  # type: ignore[arg-type]
    assert created and not created_again and again.id == first.id
    assert len(annotations.list_annotations(session=session, task="spam")) == 1


def test_split_is_stable_and_shared_by_duplicates(session: Session) -> None:
    texts = [f"message number {i}" for i in range(60)]
    annotations.add_annotations(
        session=session,
        task="sentiment",
        items=[NewAnnotation(text, "neutral") for text in texts],
        annotator="seed",
        source=AnnotationSource.SEED,
    )
    # A duplicate differing only in case and spacing lands on the same side.
    annotations.add_annotation(
        session=session,
        task="sentiment",
        text="  MESSAGE   number 7 ",
        label="positive",
        annotator="U1",
        source=AnnotationSource.CORRECTION,
    )
    examples = {
        e.text_hash: e for e in annotations.effective_labels(session=session, task="sentiment")
    }
    assert len(examples) == 60
    sides = {e.split for e in examples.values()}
    assert sides == {Split.TRAIN, Split.EVAL}
    for text in texts:
        assert examples[text_hash(text)].split == Split(split_of(text))
    corrected = examples[text_hash("message number 7")]
    assert corrected.label == "positive" and corrected.source == AnnotationSource.CORRECTION


def test_effective_label_latest_human_label_wins_over_seed(session: Session) -> None:
    def add(label: str, source: AnnotationSource, annotator: str, minutes_ago: int) -> None:
        record, _ = annotations.add_annotation(
            session=session,
            task="spam",
            text="free tickets",
            label=label,
            annotator=annotator,
            source=source,
        )
        _age(session, record.id, minutes_ago)

    add("spam", AnnotationSource.SEED, "seed", 50)
    add("ham", AnnotationSource.CORRECTION, "U1", 40)
    add("spam", AnnotationSource.CORRECTION, "U2", 30)  # changed mind: latest human wins
    add("ham", AnnotationSource.SEED, "seed", 10)  # a newer seed never overrides a human
    (example,) = annotations.effective_labels(session=session, task="spam")
    assert (example.label, example.annotator) == ("spam", "U2")
    assert len(annotations.list_annotations(session=session, task="spam")) == 4  # history kept
    assert annotations.label_counts(session=session, task="spam") == {
        "label": {"spam": 1},
        "source": {"correction": 1},
    }


def test_seed_only_latest_seed_wins_and_tasks_are_separate(session: Session) -> None:
    first, _ = annotations.add_annotation(
        session=session,
        task="spam",
        text="x",
        label="spam",
        annotator="seed",
        source=AnnotationSource.SEED,
    )
    _age(session, first.id, 5)
    annotations.add_annotation(
        session=session,
        task="spam",
        text="x",
        label="ham",
        annotator="cli:import",
        source=AnnotationSource.IMPORT,
    )
    annotations.add_annotation(
        session=session,
        task="sentiment",
        text="x",
        label="neutral",
        annotator="seed",
        source=AnnotationSource.SEED,
    )
    (spam,) = annotations.effective_labels(session=session, task="spam")
    (sentiment,) = annotations.effective_labels(session=session, task="sentiment")
    assert spam.label == "ham" and sentiment.label == "neutral"


def test_corrections_since_counts_only_human_labels(session: Session) -> None:
    start = utcnow() - timedelta(seconds=1)
    annotations.add_annotations(
        session=session,
        task="spam",
        items=[NewAnnotation("a", "ham")],
        annotator="seed",
        source=AnnotationSource.SEED,
    )
    for i, source in enumerate([AnnotationSource.CORRECTION, AnnotationSource.ADMIN]):
        annotations.add_annotation(
            session=session,
            task="spam",
            text=f"t{i}",
            label="spam",
            annotator="U1",
            source=source,
        )
    assert annotations.count_corrections_since(session=session, task="spam", since=start) == 2
    assert annotations.count_corrections_since(session=session, task="spam", since=None) == 2
    later = utcnow() + timedelta(seconds=1)
    assert annotations.count_corrections_since(session=session, task="spam", since=later) == 0
