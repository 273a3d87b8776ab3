from __future__ import annotations

from collections import Counter
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from storage import annotations, messages, overview, registry, runs
from storage.annotations import NewAnnotation
from storage.enums import AnnotationSource, RunStatus, RunTrigger, VersionStatus, utcnow
from storage.models import Prediction, TrainingRun
from storage.records import MessageRecord, PredictionRecord

SEED = AnnotationSource.SEED
CORRECTION = AnnotationSource.CORRECTION


def _message(session: Session, ts: str, text: str) -> MessageRecord:
    return messages.add_message(
        session=session, team_id="T", channel_id="C1", ts=ts, text=text, user_id="U9"
    )


def _predict(
    session: Session, message: MessageRecord, spam: float, task: str = "spam"
) -> PredictionRecord:
    labels = ("ham", "spam") if task == "spam" else ("negative", "positive")
    return messages.add_prediction(
        session=session,
        task=task,
        model_version="3",
        label=labels[1] if spam >= 0.5 else labels[0],
        scores={labels[0]: 1.0 - spam, labels[1]: spam},
        latency_ms=1.0,
        message_id=message.id,
    )


def _age_prediction(session: Session, prediction_id: int, days: int) -> None:
    session.execute(
        update(Prediction)
        .where(Prediction.id == prediction_id)
        .values(created_at=utcnow() - timedelta(days=days))
    )


def test_label_counts_by_source_count_each_texts_effective_label_once(session: Session) -> None:
    annotations.add_annotations(
        session=session,
        task="spam",
        items=[NewAnnotation("a", "ham"), NewAnnotation("b", "ham"), NewAnnotation("c", "spam")],
        annotator="seed",
        source=SEED,
    )
    # A moderator turns seed "b" into spam and labels a new text; another task is separate.
    for text, label in (("b", "spam"), ("d", "spam")):
        annotations.add_annotation(
            session=session,
            task="spam",
            text=text,
            label=label,
            annotator="U1",
            source=CORRECTION,
        )
    annotations.add_annotations(
        session=session,
        task="sentiment",
        items=[NewAnnotation("a", "positive")],
        annotator="seed",
        source=SEED,
    )

    counts = overview.label_source_counts(session=session, task="spam")

    assert [(c.label, c.source, c.count) for c in counts] == [
        ("ham", SEED, 1),
        ("spam", CORRECTION, 2),
        ("spam", SEED, 1),
    ]
    # The same numbers as counting the effective labels training uses, one by one.
    effective = annotations.effective_labels(session=session, task="spam")
    assert Counter((e.label, e.source) for e in effective) == {
        (c.label, c.source): c.count for c in counts
    }
    assert overview.label_source_counts(session=session, task="toxicity") == []


def test_recent_runs_come_newest_first_with_the_candidates_version(session: Session) -> None:
    version = registry.add_model_version(
        session=session,
        task="spam",
        version="4",
        status=VersionStatus.REJECTED,
        artifact_uri="models/spam/4",
        sha256="0" * 64,
        base_encoder="enc",
        hyperparameters={},
        data_snapshot={},
        metrics={},
        created_by="U1",
    )
    first = runs.create_run(
        session=session, task="spam", trigger=RunTrigger.SCHEDULE, requested_by="scheduler"
    )
    runs.finish_run(
        session=session,
        run_id=first.id,
        status=RunStatus.REJECTED,
        candidate_version_id=version.id,
        gate_decision={"promote": False, "reason": "delta too small"},
    )
    second = runs.create_run(
        session=session, task="sentiment", trigger=RunTrigger.ADMIN, requested_by="U1"
    )
    session.execute(
        update(TrainingRun)
        .where(TrainingRun.id == first.id)
        .values(created_at=utcnow() - timedelta(hours=1))
    )

    listed = overview.recent_runs(session=session, limit=10)
    assert [(r.run.id, r.candidate_version) for r in listed] == [(second.id, None), (first.id, "4")]
    assert listed[1].run.gate_decision == {"promote": False, "reason": "delta too small"}
    assert [r.run.id for r in overview.recent_runs(session=session, limit=1)] == [second.id]
    assert [r.run.id for r in overview.recent_runs(session=session, task="spam")] == [first.id]


def test_least_sure_predictions_come_first(session: Session) -> None:
    sure = _predict(session, _message(session, "1.1", "sure"), 0.98)
    coin = _predict(session, _message(session, "1.2", "coin"), 0.51)
    leaning = _predict(session, _message(session, "1.3", "leaning"), 0.30)

    found = overview.least_sure_predictions(session=session, since=utcnow() - timedelta(days=1))

    assert [c.prediction.id for c in found] == [coin.id, leaning.id, sure.id]
    assert found[0].message.text == "coin"
    assert round(found[0].margin, 2) == 0.02 and round(found[0].top_probability, 2) == 0.51
    assert round(found[1].margin, 2) == 0.40
    limited = overview.least_sure_predictions(
        session=session, since=utcnow() - timedelta(days=1), limit=2
    )
    assert [c.prediction.id for c in limited] == [coin.id, leaning.id]


def test_the_queue_skips_labelled_deleted_old_and_superseded_predictions(
    session: Session,
) -> None:
    since = utcnow() - timedelta(days=7)
    labelled = _message(session, "2.1", "labelled")
    labelled_prediction = _predict(session, labelled, 0.5)
    annotations.add_annotation(
        session=session,
        task="spam",
        text=labelled.text,
        label="spam",
        annotator="U1",
        source=CORRECTION,
        message_id=labelled.id,
        prediction_id=labelled_prediction.id,
    )
    # Labelled for spam only: its sentiment prediction still needs review.
    sentiment = _predict(session, labelled, 0.5, task="sentiment")
    deleted = _message(session, "2.2", "deleted")
    _predict(session, deleted, 0.5)
    messages.mark_message_deleted(session=session, message_id=deleted.id)
    old = _message(session, "2.3", "old")
    _age_prediction(session, _predict(session, old, 0.5).id, days=30)
    edited = _message(session, "2.4", "edited")
    _predict(session, edited, 0.5)  # the text before the edit: superseded
    after_edit = _predict(session, edited, 0.9)
    # A seed label for the same text is not a moderator's review.
    seeded = _message(session, "2.5", "seeded")
    seeded_prediction = _predict(session, seeded, 0.6)
    annotations.add_annotation(
        session=session,
        task="spam",
        text="seeded",
        label="ham",
        annotator="seed",
        source=SEED,
        message_id=seeded.id,
    )
    # A /classify prediction (no message) is never queued.
    messages.add_prediction(
        session=session,
        task="spam",
        model_version="3",
        label="spam",
        scores={"ham": 0.5, "spam": 0.5},
        latency_ms=1.0,
        text="free text",
    )

    found = overview.least_sure_predictions(session=session, since=since)

    assert [c.prediction.id for c in found] == [sentiment.id, seeded_prediction.id, after_edit.id]
    only_spam = overview.least_sure_predictions(session=session, since=since, tasks=["spam"])
    assert [c.prediction.id for c in only_spam] == [seeded_prediction.id, after_edit.id]
    assert overview.least_sure_predictions(session=session, since=since, tasks=[]) == []


def test_the_scan_limit_bounds_the_work_to_the_newest_predictions(session: Session) -> None:
    older_coin = _predict(session, _message(session, "3.1", "older"), 0.5)
    newer_sure = _predict(session, _message(session, "3.2", "newer"), 0.99)
    since = utcnow() - timedelta(days=1)
    found = overview.least_sure_predictions(session=session, since=since, scan_limit=1)
    assert [c.prediction.id for c in found] == [newer_sure.id]
    found = overview.least_sure_predictions(session=session, since=since)
    assert [c.prediction.id for c in found] == [older_coin.id, newer_sure.id]
