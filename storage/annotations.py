"""Annotations (labels), the stable train/eval assignment, and effective labels.

Annotations are append-only. The effective label of a text for a task is the latest
human annotation (moderator correction or admin), else the latest seed/import label.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage._convert import to_record
from storage.enums import AnnotationSource, Split
from storage.errors import NotFoundError
from storage.models import Annotation, Message, Prediction, SplitAssignment
from storage.records import AnnotationRecord, LabelledExample
from storage.texts import DEFAULT_EVAL_FRACTION, split_for_hash, text_hash

# People's labels: they override the seed label and count as corrections for the retrain.
# An appeal's decision is a moderator's label like any correction.
HUMAN_SOURCES = (AnnotationSource.CORRECTION, AnnotationSource.ADMIN, AnnotationSource.APPEAL)


def visible_to(team_id: str, annotation: Any = Annotation) -> Any:
    """The one rule of which labels a workspace sees: its own and those of no workspace
    (seed, import, and labels given outside Slack), never another workspace's.

    Args:
        team_id: The workspace.
        annotation: The annotations entity (or an alias of it) to filter.
    """
    return or_(annotation.team_id.is_(None), annotation.team_id == team_id)


@dataclass(frozen=True)
class NewAnnotation:
    """One label to store in bulk (see :func:`add_annotations`)."""

    text: str
    label: str


def assign_split(
    *, session: Session, hash_hex: str, eval_fraction: float = DEFAULT_EVAL_FRACTION
) -> Split:
    """The side of a text hash, assigned now if it has none; never changed afterwards."""
    values: dict[str, Any] = {
        "text_hash": hash_hex,
        "split": Split(split_for_hash(hash_hex, eval_fraction)),
    }
    session.execute(_insert_ignoring_duplicates(session).values(**values))
    split = session.scalar(
        select(SplitAssignment.split).where(SplitAssignment.text_hash == hash_hex)
    )
    assert split is not None
    return Split(split)


def add_annotation(
    *,
    session: Session,
    task: str,
    text: str,
    label: str,
    annotator: str,
    source: AnnotationSource,
    message_id: int | None = None,
    prediction_id: int | None = None,
    idempotency_key: str | None = None,
    team_id: str | None = None,
) -> tuple[AnnotationRecord, bool]:
    """Store a label, linked to the prediction it corrects.

    Args:
        session: The caller's unit of work.
        task: The task the label belongs to.
        text: The labelled text (copied, so the label survives an edit or deletion).
        label: The label given.
        annotator: Slack user id, or ``seed``/``cli:<name>`` for bulk labels.
        source: seed, correction, admin or import.
        message_id: The channel message labelled, if any.
        prediction_id: The prediction this label corrects; its label and model version are
            recorded with the annotation.
        idempotency_key: A key unique to the user's action (e.g. the button click); a repeat
            returns the first annotation instead of storing another.
        team_id: The workspace the label was given in; None: the message's workspace (no
            message: none, as for seed and imported labels).

    Returns:
        The annotation and whether it was created now (False for an idempotent repeat).
    """
    predicted_label = predicted_version = None
    if prediction_id is not None:
        prediction = session.get(Prediction, prediction_id)
        if prediction is None:
            raise NotFoundError(f"no prediction {prediction_id}")
        predicted_label, predicted_version = prediction.label, prediction.model_version
    if team_id is None and message_id is not None:
        team_id = session.scalar(select(Message.team_id).where(Message.id == message_id))
    hash_hex = text_hash(text)
    row = Annotation(
        team_id=team_id,
        task=task,
        message_id=message_id,
        text=text,
        text_hash=hash_hex,
        label=label,
        annotator=annotator,
        source=source,
        prediction_id=prediction_id,
        predicted_label=predicted_label,
        predicted_model_version=predicted_version,
        idempotency_key=idempotency_key,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        if idempotency_key is None:
            raise
        existing = session.scalars(
            select(Annotation).where(Annotation.idempotency_key == idempotency_key)
        ).one()
        return to_record(AnnotationRecord, existing), False
    assign_split(session=session, hash_hex=hash_hex)
    return to_record(AnnotationRecord, row), True


def add_annotations(
    *,
    session: Session,
    task: str,
    items: list[NewAnnotation],
    annotator: str,
    source: AnnotationSource,
) -> int:
    """Store many labels at once (seed data, imports); returns how many were stored."""
    hashes = [text_hash(item.text) for item in items]
    session.add_all(
        Annotation(
            task=task,
            text=item.text,
            text_hash=hash_hex,
            label=item.label,
            annotator=annotator,
            source=source,
        )
        for item, hash_hex in zip(items, hashes, strict=True)
    )
    session.flush()
    unique = list(dict.fromkeys(hashes))
    if unique:
        session.execute(
            _insert_ignoring_duplicates(session),
            [{"text_hash": h, "split": Split(split_for_hash(h))} for h in unique],
        )
    return len(items)


def _insert_ignoring_duplicates(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(SplitAssignment).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(SplitAssignment).on_conflict_do_nothing()
    raise NotImplementedError(f"unsupported database {dialect}")  # pragma: no cover


def list_annotations(
    *,
    session: Session,
    task: str | None = None,
    message_id: int | None = None,
    source: AnnotationSource | None = None,
    limit: int | None = None,
    team_id: str | None = None,
) -> list[AnnotationRecord]:
    """Annotations, oldest first, filtered by task, message, source and workspace (what
    the workspace sees: its own labels and those of none, see :func:`visible_to`)."""
    query = select(Annotation).order_by(Annotation.created_at, Annotation.id)
    if team_id is not None:
        query = query.where(visible_to(team_id))
    if task is not None:
        query = query.where(Annotation.task == task)
    if message_id is not None:
        query = query.where(Annotation.message_id == message_id)
    if source is not None:
        query = query.where(Annotation.source == source)
    if limit is not None:
        query = query.limit(limit)
    return [to_record(AnnotationRecord, row) for row in session.scalars(query)]


def effective_labels(*, session: Session, task: str) -> list[LabelledExample]:
    """The effective label of every labelled text of a task, ordered by text hash.

    The latest correction/admin annotation wins; otherwise the latest seed/import one.
    """
    is_human = Annotation.source.in_([source.value for source in HUMAN_SOURCES])
    ranked = (
        select(
            Annotation.id,
            func.row_number()
            .over(
                partition_by=Annotation.text_hash,
                order_by=(
                    is_human.desc(),
                    Annotation.created_at.desc(),
                    Annotation.id.desc(),
                ),
            )
            .label("rank"),
        )
        .where(Annotation.task == task)
        .subquery()
    )
    rows = session.execute(
        select(Annotation, SplitAssignment.split)
        .join(ranked, ranked.c.id == Annotation.id)
        .join(SplitAssignment, SplitAssignment.text_hash == Annotation.text_hash)
        .where(ranked.c.rank == 1)
        .order_by(Annotation.text_hash)
    )
    return [
        LabelledExample(
            text=annotation.text,
            text_hash=annotation.text_hash,
            label=annotation.label,
            source=annotation.source,
            annotator=annotation.annotator,
            annotation_id=annotation.id,
            created_at=annotation.created_at,
            split=Split(split),
        )
        for annotation, split in rows
    ]


def label_counts(*, session: Session, task: str) -> dict[str, dict[str, int]]:
    """Effective labels counted by label and by source: ``{"label": {...}, "source": {...}}``."""
    examples = effective_labels(session=session, task=task)
    return {
        "label": dict(sorted(Counter(example.label for example in examples).items())),
        "source": dict(sorted(Counter(str(example.source) for example in examples).items())),
    }


def count_corrections_since(
    *, session: Session, task: str, since: datetime | None, team_id: str | None = None
) -> int:
    """Human annotations (corrections and admin labels) made after ``since`` (all if None),
    in one workspace's (every workspace's when ``team_id`` is None)."""
    query = select(func.count(Annotation.id)).where(
        Annotation.task == task,
        Annotation.source.in_([source.value for source in HUMAN_SOURCES]),
    )
    if team_id is not None:
        query = query.where(visible_to(team_id))
    if since is not None:
        query = query.where(Annotation.created_at > since)
    return int(session.scalar(query) or 0)


def eval_split(
    *, session: Session, task: str, labelled_before: datetime | None = None
) -> list[LabelledExample]:
    """The eval side of a task's effective labels (what the gate scores models on), as of a
    time: only texts whose effective label was given at or before ``labelled_before``.

    With the time a production model's label snapshot was taken, this is that model's eval
    split: corrections made since (often of the very messages a drift check looks at) are
    left out.
    """
    return [
        example
        for example in effective_labels(session=session, task=task)
        if example.split == Split.EVAL
        and (labelled_before is None or example.created_at <= labelled_before)
    ]
