"""Second opinion requests on SQLite and PostgreSQL: one active per text, answers and
decisions once each, and the texts held out while disputed."""

from __future__ import annotations

from sqlalchemy.orm import Session

from storage import annotations, messages
from storage import second_opinion as opinions
from storage.enums import AnnotationSource, SecondOpinionStatus
from storage.records import AnnotationRecord
from storage.texts import text_hash
from trainer import label_check


def _correction(
    session: Session, text: str, label: str, annotator: str, *, ts: str = "1.1"
) -> AnnotationRecord:
    message = messages.add_message(
        session=session, team_id="T", channel_id="C", ts=ts, text=text, user_id="U9"
    )
    prediction = messages.add_prediction(
        session=session,
        task="spam",
        model_version="7",
        label="spam",
        scores={"ham": 0.03, "spam": 0.97},
        latency_ms=1.0,
        message_id=message.id,
    )
    record, _ = annotations.add_annotation(
        session=session,
        task="spam",
        text=text,
        label=label,
        annotator=annotator,
        source=AnnotationSource.CORRECTION,
        message_id=message.id,
        prediction_id=prediction.id,
    )
    return record


def _label(session: Session, request: opinions.SecondOpinionView, label: str, by: str) -> int:
    record, _ = annotations.add_annotation(
        session=session,
        task="spam",
        text=request.text,
        label=label,
        annotator=by,
        source=AnnotationSource.ADMIN if by.startswith("UADMIN") else AnnotationSource.CORRECTION,
        message_id=request.request.message_id,
        prediction_id=request.request.prediction_id,
    )
    return record.id


def test_a_request_shows_the_text_and_prediction_and_one_is_active_per_text(
    session: Session,
) -> None:
    first = _correction(session, "lunch at noon", "ham", "UMOD1")
    opened = opinions.open_request(session=session, annotation=first, reason="sampled")
    assert opened is not None and opened.status is SecondOpinionStatus.OPEN
    view = opinions.get_request(session=session, request_id=opened.id)
    assert (view.text, view.first_label, view.predicted_label) == ("lunch at noon", "ham", "spam")
    assert view.predicted_probability == 0.97 and view.model_version == "7"
    again = _correction(session, "Lunch  at noon", "ham", "UMOD2", ts="1.2")  # same text hash
    assert opinions.open_request(session=session, annotation=again, reason="sampled") is None
    assert [
        v.request.id for v in opinions.wanted(session=session, tasks=["spam"], excluding="UX")
    ] == [opened.id]
    assert opinions.wanted(session=session, tasks=["spam"], excluding="UMOD1") == []
    assert opinions.wanted(session=session, tasks=["sentiment"], excluding="UX") == []


def test_agreement_closes_a_request_and_frees_its_text(session: Session) -> None:
    first = _correction(session, "see you at 3", "ham", "UMOD1")
    opened = opinions.open_request(session=session, annotation=first, reason="sampled")
    assert opened is not None
    view = opinions.get_request(session=session, request_id=opened.id)
    second = _label(session, view, "ham", "UMOD2")
    answered = opinions.answer(
        session=session, request_id=opened.id, annotation_id=second, annotator="UMOD2", agreed=True
    )
    assert answered is not None and answered.status is SecondOpinionStatus.AGREED
    assert answered.second_annotator == "UMOD2" and answered.answered_at is not None
    assert opinions.held_out_hashes(session=session, task="spam") == set()
    # answered once: a second answer finds it closed
    assert (
        opinions.answer(
            session=session,
            request_id=opened.id,
            annotation_id=second,
            annotator="UMOD3",
            agreed=False,
        )
        is None
    )
    later = _correction(session, "see you at 3", "spam", "UMOD3", ts="1.3")
    assert opinions.open_request(session=session, annotation=later, reason="sampled") is not None


def test_a_dispute_holds_the_text_out_until_an_admin_decides(session: Session) -> None:
    first = _correction(session, "free pizza in the kitchen", "ham", "UMOD1")
    opened = opinions.open_request(
        session=session, annotation=first, reason="contradicts a 0.97 prediction"
    )
    assert opened is not None
    view = opinions.get_request(session=session, request_id=opened.id)
    second = _label(session, view, "spam", "UMOD2")
    disputed = opinions.answer(
        session=session, request_id=opened.id, annotation_id=second, annotator="UMOD2", agreed=False
    )
    assert disputed is not None and disputed.status is SecondOpinionStatus.DISPUTED
    assert opinions.held_out_hashes(session=session, task="spam") == {
        text_hash("free pizza in the kitchen")
    }
    assert opinions.held_out_hashes(session=session, task="sentiment") == set()
    # The retrain's one owner of held-out texts holds the disputed text out of its snapshot.
    assert label_check.held_out(session, "spam") == {
        text_hash("free pizza in the kitchen"): label_check.DISPUTED_REASON
    }
    (dispute,) = opinions.disputes(session=session, task="spam")
    assert (dispute.first_label, dispute.second_label) == ("ham", "spam")
    assert dispute.request.reason == "contradicts a 0.97 prediction"
    assert opinions.disputes(session=session, task="sentiment") == []

    decision = _label(session, view, "ham", "UADMIN1")
    decided = opinions.decide(
        session=session, request_id=opened.id, annotation_id=decision, decided_by="UADMIN1"
    )
    assert decided is not None and decided.status is SecondOpinionStatus.DECIDED
    assert decided.decided_by == "UADMIN1" and decided.decided_at is not None
    assert (
        opinions.decide(
            session=session, request_id=opened.id, annotation_id=decision, decided_by="UADMIN2"
        )
        is None
    )
    assert opinions.held_out_hashes(session=session, task="spam") == set()
    assert label_check.held_out(session, "spam") == {}
    assert opinions.disputes(session=session) == []
    assert opinions.get_request(session=session, request_id=opened.id).decided_label == "ham"
    (effective,) = [
        e
        for e in annotations.effective_labels(session=session, task="spam")
        if e.text_hash == text_hash("free pizza in the kitchen")
    ]
    assert (effective.label, effective.source) == ("ham", AnnotationSource.ADMIN)
