"""Second opinions: corrections sent to a second moderator, disputes and admins' decisions.

A request is opened for a stored correction (one active request per task and text); a
second moderator's answer closes it as ``agreed`` or makes it ``disputed``; an admin's
decision closes a dispute (``decided``). Answers and decisions are annotations like any
label, linked here by id. While a request is disputed its text is held out of training
(:func:`held_out_hashes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from storage._convert import to_record
from storage.annotations import visible_to
from storage.enums import SecondOpinionStatus, utcnow
from storage.errors import NotFoundError
from storage.models import Annotation, Prediction, SecondOpinion
from storage.records import AnnotationRecord

ACTIVE = (SecondOpinionStatus.OPEN, SecondOpinionStatus.DISPUTED)


@dataclass(frozen=True)
class SecondOpinionRecord:
    """A request row. ``second_*``: the second moderator's answer; ``decided_*``: the admin's."""

    id: int
    task: str
    annotation_id: int
    prediction_id: int | None
    message_id: int | None
    text_hash: str
    first_annotator: str
    reason: str
    status: SecondOpinionStatus
    created_at: datetime
    second_annotation_id: int | None
    second_annotator: str | None
    answered_at: datetime | None
    decision_annotation_id: int | None
    decided_by: str | None
    decided_at: datetime | None


@dataclass(frozen=True)
class SecondOpinionView:
    """A request with its labels, text and the prediction the first label corrected.

    Attributes:
        request: The request.
        text: The labelled text (the first annotation's copy).
        first_label: The first moderator's label.
        second_label: The second moderator's (None before the answer).
        decided_label: The admin's (None before the decision).
        predicted_label: What the model said (None if the prediction is gone).
        predicted_scores: Its probabilities per label.
        model_version: The model version that said it.
        team_id: The workspace of the first label (the request's; None: none recorded).
    """

    request: SecondOpinionRecord
    text: str
    first_label: str
    second_label: str | None
    decided_label: str | None
    predicted_label: str | None
    predicted_scores: dict[str, float] | None
    model_version: str | None
    team_id: str | None = None

    @property
    def predicted_probability(self) -> float | None:
        if self.predicted_label is None or self.predicted_scores is None:
            return None
        return float(self.predicted_scores.get(self.predicted_label, 0.0))


def open_request(
    *, session: Session, annotation: AnnotationRecord, reason: str
) -> SecondOpinionRecord | None:
    """Ask for a second opinion on a stored correction.

    Args:
        session: The caller's unit of work (the one that stored the correction).
        annotation: The correction.
        reason: Why it was routed (``sampled``, ``contradicts a 0.97 prediction``).

    Returns:
        The open request, or None when the text has an open or disputed request already
        (or this annotation has one).
    """
    row = SecondOpinion(
        task=annotation.task,
        annotation_id=annotation.id,
        prediction_id=annotation.prediction_id,
        message_id=annotation.message_id,
        text_hash=annotation.text_hash,
        active_hash=annotation.text_hash,
        first_annotator=annotation.annotator,
        reason=reason[:64],
        status=SecondOpinionStatus.OPEN,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return None
    return to_record(SecondOpinionRecord, row)


def get_request(*, session: Session, request_id: int) -> SecondOpinionView:
    """One request with its labels.

    Raises:
        NotFoundError: No such request.
    """
    found = _views(session, _view_query().where(SecondOpinion.id == request_id))
    if not found:
        raise NotFoundError(f"no second opinion request {request_id}")
    return found[0]


def wanted(
    *,
    session: Session,
    tasks: Sequence[str],
    excluding: str,
    limit: int = 10,
    team_id: str | None = None,
) -> list[SecondOpinionView]:
    """Open requests of the given tasks that ``excluding`` did not label first, oldest first
    (of one workspace's corrections when ``team_id`` is given)."""
    query = (
        _view_query()
        .where(
            SecondOpinion.status == SecondOpinionStatus.OPEN,
            SecondOpinion.task.in_(list(tasks)),
            SecondOpinion.first_annotator != excluding,
        )
        .order_by(SecondOpinion.created_at, SecondOpinion.id)
        .limit(limit)
    )
    if team_id is not None:
        query = query.where(visible_to(team_id, _First))
    return _views(session, query)


def disputes(
    *,
    session: Session,
    task: str | None = None,
    limit: int | None = None,
    team_id: str | None = None,
) -> list[SecondOpinionView]:
    """Disputed requests (waiting for an admin), oldest first, of one task or all, of one
    workspace's corrections or every workspace's (``team_id`` None)."""
    query = _view_query().where(SecondOpinion.status == SecondOpinionStatus.DISPUTED)
    if team_id is not None:
        query = query.where(visible_to(team_id, _First))
    if task is not None:
        query = query.where(SecondOpinion.task == task)
    query = query.order_by(SecondOpinion.created_at, SecondOpinion.id)
    if limit is not None:
        query = query.limit(limit)
    return _views(session, query)


def answer(
    *,
    session: Session,
    request_id: int,
    annotation_id: int,
    annotator: str,
    agreed: bool,
    now: datetime | None = None,
) -> SecondOpinionRecord | None:
    """Record the second moderator's answer on an open request, once.

    Returns:
        The answered request (``agreed`` or ``disputed``), or None if it was not open.
    """
    status = SecondOpinionStatus.AGREED if agreed else SecondOpinionStatus.DISPUTED
    values: dict[str, Any] = {
        "status": status,
        "second_annotation_id": annotation_id,
        "second_annotator": annotator,
        "answered_at": now or utcnow(),
    }
    if agreed:
        values["active_hash"] = None
    return _move(session, request_id, SecondOpinionStatus.OPEN, values)


def decide(
    *,
    session: Session,
    request_id: int,
    annotation_id: int,
    decided_by: str,
    now: datetime | None = None,
) -> SecondOpinionRecord | None:
    """Close a disputed request with an admin's decision, once.

    Returns:
        The decided request, or None if it was not disputed.
    """
    values: dict[str, Any] = {
        "status": SecondOpinionStatus.DECIDED,
        "active_hash": None,
        "decision_annotation_id": annotation_id,
        "decided_by": decided_by,
        "decided_at": now or utcnow(),
    }
    return _move(session, request_id, SecondOpinionStatus.DISPUTED, values)


def held_out_hashes(*, session: Session, task: str) -> set[str]:
    """The text hashes of a task to keep out of training: those with a disputed request."""
    query = select(SecondOpinion.text_hash).where(
        SecondOpinion.task == task, SecondOpinion.status == SecondOpinionStatus.DISPUTED
    )
    return set(session.scalars(query))


# Internals ---------------------------------------------------------------------------


def _move(
    session: Session, request_id: int, expected: SecondOpinionStatus, values: dict[str, Any]
) -> SecondOpinionRecord | None:
    result = session.execute(
        update(SecondOpinion)
        .where(SecondOpinion.id == request_id, SecondOpinion.status == expected)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    row = session.get(SecondOpinion, request_id, populate_existing=True)
    assert row is not None
    return to_record(SecondOpinionRecord, row)


_First = aliased(Annotation, name="first_annotation")
_Second = aliased(Annotation, name="second_annotation")
_Decision = aliased(Annotation, name="decision_annotation")


def _view_query() -> Select[Any]:
    return (
        select(
            SecondOpinion,
            _First.text,
            _First.label,
            _Second.label,
            _Decision.label,
            Prediction.label,
            Prediction.scores,
            Prediction.model_version,
            _First.team_id,
        )
        .join(_First, _First.id == SecondOpinion.annotation_id)
        .outerjoin(_Second, _Second.id == SecondOpinion.second_annotation_id)
        .outerjoin(_Decision, _Decision.id == SecondOpinion.decision_annotation_id)
        .outerjoin(Prediction, Prediction.id == SecondOpinion.prediction_id)
    )


def _views(session: Session, query: Select[Any]) -> list[SecondOpinionView]:
    return [
        SecondOpinionView(
            request=to_record(SecondOpinionRecord, row),
            text=text,
            first_label=first,
            second_label=second,
            decided_label=decided,
            predicted_label=predicted,
            predicted_scores=dict(scores) if scores is not None else None,
            model_version=version,
            team_id=team,
        )
        for row, text, first, second, decided, predicted, scores, version, team in session.execute(
            query.execution_options(populate_existing=True)
        )
    ]
