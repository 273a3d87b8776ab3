"""Label checks, suspect corrections and flagged annotators: what is held out of a retrain.

A *suspect* is one annotation a label check (or the gate) doubts; while ``held`` its text is
held out of training and of the gate's eval. An admin clears it (the label stands) or
replaces the label (``confirmed``). A *flag* on an annotator holds out all their corrections
of the task until an admin clears it. Nothing here deletes a label.

What holds a text out (:func:`held_out_reasons`):
- a held suspect, unless an admin labelled the text after the suspect's annotation;
- a human, non-admin annotation by an annotator with an uncleared flag, unless an admin
  labelled the text after it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session, aliased

from storage._convert import to_record
from storage.annotations import HUMAN_SOURCES, visible_to
from storage.enums import AnnotationSource, SuspectStatus, utcnow
from storage.errors import NotFoundError, StorageError
from storage.models import Annotation, AnnotatorFlag, LabelCheck, LabelSuspect

# Labels a check may doubt: moderators' corrections and appeal decisions. An admin's label
# (``admin``) decides a doubt; seed and import rows are the reference, never suspects.
CHECKED_SOURCES = (AnnotationSource.CORRECTION, AnnotationSource.APPEAL)
SUSPECT_REASON = "suspect"
FLAGGED_REASON = "flagged annotator"


class DecisionError(StorageError):
    """A suspect or a flag cannot be decided as asked (already decided, ...)."""


@dataclass(frozen=True)
class LabelCheckRecord:
    id: int
    task: str
    run_id: int | None
    checked_at: datetime
    ran: bool
    reason: str
    details: dict[str, Any]


@dataclass(frozen=True)
class SuspectRecord:
    """A doubted annotation (see the module docstring)."""

    id: int
    task: str
    annotation_id: int
    text_hash: str
    annotator: str
    run_id: int | None
    reason: str
    given_label: str
    suggested_label: str | None
    given_probability: float | None
    status: SuspectStatus
    created_at: datetime
    decided_by: str | None
    decided_at: datetime | None


@dataclass(frozen=True)
class SuspectWithText:
    suspect: SuspectRecord
    text: str


@dataclass(frozen=True)
class NewSuspect:
    """One annotation to doubt (see :func:`add_suspects`)."""

    annotation_id: int
    reason: str
    suggested_label: str | None = None
    given_probability: float | None = None


@dataclass(frozen=True)
class AnnotatorFlagRecord:
    id: int
    task: str
    annotator: str
    run_id: int | None
    flagged_at: datetime
    corrections: int
    suspects: int
    peer_rate: float
    p_value: float
    cleared_by: str | None
    cleared_at: datetime | None


@dataclass(frozen=True)
class AnnotatorCounts:
    """An annotator's checked labels of a task and how many are suspect (held or confirmed)."""

    annotator: str
    corrections: int
    suspects: int
    held: int


def record_check(
    *,
    session: Session,
    task: str,
    run_id: int | None,
    ran: bool,
    reason: str,
    details: dict[str, Any],
) -> LabelCheckRecord:
    """Store one label check (ran, or skipped with ``reason``)."""
    row = LabelCheck(task=task, run_id=run_id, ran=ran, reason=reason, details=details)
    session.add(row)
    session.flush()
    return to_record(LabelCheckRecord, row)


def latest_check(
    *, session: Session, task: str, ran: bool | None = None
) -> LabelCheckRecord | None:
    """The newest label check of a task (only those that ran, with ``ran=True``)."""
    query = select(LabelCheck).where(LabelCheck.task == task)
    if ran is not None:
        query = query.where(LabelCheck.ran == ran)
    row = session.scalars(
        query.order_by(LabelCheck.checked_at.desc(), LabelCheck.id.desc())
    ).first()
    return None if row is None else to_record(LabelCheckRecord, row)


def add_suspects(
    *, session: Session, task: str, run_id: int | None, items: Iterable[NewSuspect]
) -> list[SuspectRecord]:
    """Hold out annotations; one already doubted (in any status) is left as it is.

    Returns:
        The suspects stored now.
    """
    wanted = {item.annotation_id: item for item in items}
    if not wanted:
        return []
    known = set(
        session.scalars(
            select(LabelSuspect.annotation_id).where(LabelSuspect.annotation_id.in_(wanted))
        )
    )
    annotations = session.scalars(
        select(Annotation).where(Annotation.id.in_(set(wanted) - known), Annotation.task == task)
    )
    rows = [
        LabelSuspect(
            task=task,
            annotation_id=annotation.id,
            text_hash=annotation.text_hash,
            annotator=annotation.annotator,
            run_id=run_id,
            reason=wanted[annotation.id].reason[:200],
            given_label=annotation.label,
            suggested_label=wanted[annotation.id].suggested_label,
            given_probability=wanted[annotation.id].given_probability,
            status=SuspectStatus.HELD,
        )
        for annotation in annotations
    ]
    session.add_all(rows)
    session.flush()
    return [to_record(SuspectRecord, row) for row in sorted(rows, key=lambda r: r.id)]


def list_suspects(
    *,
    session: Session,
    task: str,
    status: SuspectStatus | None = SuspectStatus.HELD,
    team_id: str | None = None,
) -> list[SuspectWithText]:
    """A task's suspects, oldest first, with the text labelled (all statuses with None);
    only those of one workspace's corrections when ``team_id`` is given."""
    query = (
        select(LabelSuspect, Annotation.text)
        .join(Annotation, Annotation.id == LabelSuspect.annotation_id)
        .where(LabelSuspect.task == task)
        .order_by(LabelSuspect.created_at, LabelSuspect.id)
    )
    if team_id is not None:
        query = query.where(visible_to(team_id))
    if status is not None:
        query = query.where(LabelSuspect.status == status)
    return [
        SuspectWithText(to_record(SuspectRecord, row), text) for row, text in session.execute(query)
    ]


def get_suspect(*, session: Session, suspect_id: int) -> SuspectWithText:
    """Raises NotFoundError for an unknown id."""
    found = session.execute(
        select(LabelSuspect, Annotation.text)
        .join(Annotation, Annotation.id == LabelSuspect.annotation_id)
        .where(LabelSuspect.id == suspect_id)
    ).first()
    if found is None:
        raise NotFoundError(f"no suspect {suspect_id}")
    return SuspectWithText(to_record(SuspectRecord, found[0]), found[1])


def decide_suspect(
    *, session: Session, suspect_id: int, status: SuspectStatus, by: str
) -> SuspectRecord:
    """Clear a held suspect (the label stands) or confirm it (an admin's label replaced it).

    Raises:
        NotFoundError: No such suspect.
        DecisionError: It was decided already, or ``status`` is ``held``.
    """
    if status == SuspectStatus.HELD:
        raise DecisionError("a decision clears or confirms a suspect")
    row = session.get(LabelSuspect, suspect_id, with_for_update=True)
    if row is None:
        raise NotFoundError(f"no suspect {suspect_id}")
    if row.status != SuspectStatus.HELD:
        raise DecisionError(f"suspect {suspect_id} was {row.status} by {row.decided_by} already")
    row.status, row.decided_by, row.decided_at = status, by, utcnow()
    session.flush()
    return to_record(SuspectRecord, row)


def confirm_superseded(*, session: Session, task: str) -> int:
    """Mark held suspects whose text an admin labelled since as confirmed (by that admin).

    Returns:
        How many were confirmed.
    """
    later = aliased(Annotation)
    rows = session.execute(
        select(LabelSuspect, later.annotator, later.created_at)
        .join(Annotation, Annotation.id == LabelSuspect.annotation_id)
        .join(
            later,
            and_(
                later.task == LabelSuspect.task,
                later.text_hash == LabelSuspect.text_hash,
                later.source == AnnotationSource.ADMIN,
                later.id > Annotation.id,
            ),
        )
        .where(LabelSuspect.task == task, LabelSuspect.status == SuspectStatus.HELD)
        .order_by(later.id)
    ).all()
    decided: dict[int, LabelSuspect] = {}
    for row, admin, when in rows:
        if row.id not in decided:
            row.status, row.decided_by, row.decided_at = SuspectStatus.CONFIRMED, admin, when
            decided[row.id] = row
    session.flush()
    return len(decided)


def flag_annotator(
    *,
    session: Session,
    task: str,
    annotator: str,
    run_id: int | None,
    corrections: int,
    suspects: int,
    peer_rate: float,
    p_value: float,
) -> AnnotatorFlagRecord:
    """Flag an annotator (their open flag, if any, is returned unchanged)."""
    open_flag = _open_flag(session, task, annotator)
    if open_flag is not None:
        return to_record(AnnotatorFlagRecord, open_flag)
    row = AnnotatorFlag(
        task=task,
        annotator=annotator,
        run_id=run_id,
        corrections=corrections,
        suspects=suspects,
        peer_rate=peer_rate,
        p_value=p_value,
    )
    session.add(row)
    session.flush()
    return to_record(AnnotatorFlagRecord, row)


def list_flags(*, session: Session, task: str, open_only: bool = True) -> list[AnnotatorFlagRecord]:
    """A task's annotator flags, oldest first (only uncleared ones by default)."""
    query = select(AnnotatorFlag).where(AnnotatorFlag.task == task)
    if open_only:
        query = query.where(AnnotatorFlag.cleared_at.is_(None))
    query = query.order_by(AnnotatorFlag.flagged_at, AnnotatorFlag.id)
    return [to_record(AnnotatorFlagRecord, row) for row in session.scalars(query)]


def team_text_hashes(*, session: Session, task: str, team_id: str) -> set[str]:
    """Text hashes of a task with a human label a workspace sees (its own, or of none)."""
    return set(
        session.scalars(
            select(Annotation.text_hash)
            .where(
                Annotation.task == task,
                visible_to(team_id),
                Annotation.source.in_([source.value for source in HUMAN_SOURCES]),
            )
            .distinct()
        )
    )


def team_annotators(*, session: Session, task: str, team_id: str) -> set[str]:
    """Who gave the human labels of a task a workspace sees (its own, or of none)."""
    return set(
        session.scalars(
            select(Annotation.annotator)
            .where(
                Annotation.task == task,
                visible_to(team_id),
                Annotation.source.in_([source.value for source in HUMAN_SOURCES]),
            )
            .distinct()
        )
    )


def last_cleared(*, session: Session, task: str) -> dict[str, datetime]:
    """When each annotator's latest flag of the task was cleared."""
    rows = session.execute(
        select(AnnotatorFlag.annotator, func.max(AnnotatorFlag.cleared_at))
        .where(AnnotatorFlag.task == task, AnnotatorFlag.cleared_at.is_not(None))
        .group_by(AnnotatorFlag.annotator)
    )
    return {annotator: when for annotator, when in rows if when is not None}


def clear_flag(*, session: Session, task: str, annotator: str, by: str) -> AnnotatorFlagRecord:
    """Clear an annotator's open flag: their corrections train again.

    Raises:
        NotFoundError: The annotator has no open flag for the task.
    """
    row = _open_flag(session, task, annotator)
    if row is None:
        raise NotFoundError(f"{annotator} is not flagged for {task}")
    row.cleared_by, row.cleared_at = by, utcnow()
    session.flush()
    return to_record(AnnotatorFlagRecord, row)


def _open_flag(session: Session, task: str, annotator: str) -> AnnotatorFlag | None:
    return session.scalars(
        select(AnnotatorFlag)
        .where(
            AnnotatorFlag.task == task,
            AnnotatorFlag.annotator == annotator,
            AnnotatorFlag.cleared_at.is_(None),
        )
        .with_for_update()
    ).first()


def _no_later_admin_label(annotation: Any) -> Any:
    later = aliased(Annotation)
    return ~exists().where(
        later.task == annotation.task,
        later.text_hash == annotation.text_hash,
        later.source == AnnotationSource.ADMIN,
        later.id > annotation.id,
    )


def held_out_reasons(*, session: Session, task: str) -> dict[str, str]:
    """Text hash -> why it is held out of training and the gate's eval (module docstring).

    Reasons: ``suspect`` or ``flagged annotator`` (a text held for both says ``suspect``).
    """
    held: dict[str, str] = {}
    flagged = select(AnnotatorFlag.annotator).where(
        AnnotatorFlag.task == task, AnnotatorFlag.cleared_at.is_(None)
    )
    by_flagged = session.scalars(
        select(Annotation.text_hash).where(
            Annotation.task == task,
            Annotation.source.in_([s.value for s in CHECKED_SOURCES]),
            Annotation.annotator.in_(flagged),
            _no_later_admin_label(Annotation),
        )
    )
    held.update(dict.fromkeys(by_flagged, FLAGGED_REASON))
    suspects = session.scalars(
        select(LabelSuspect.text_hash)
        .join(Annotation, Annotation.id == LabelSuspect.annotation_id)
        .where(
            LabelSuspect.task == task,
            LabelSuspect.status == SuspectStatus.HELD,
            _no_later_admin_label(Annotation),
        )
    )
    held.update(dict.fromkeys(suspects, SUSPECT_REASON))
    return held


def held_out_hashes(*, session: Session, task: str) -> set[str]:
    """The texts of a task held out by suspects and flagged annotators."""
    return set(held_out_reasons(session=session, task=task))


def annotator_counts(*, session: Session, task: str) -> list[AnnotatorCounts]:
    """Per annotator: checked labels (corrections, appeals) and suspects not cleared."""
    corrections = Counter(
        dict(
            session.execute(
                select(Annotation.annotator, func.count(Annotation.id))
                .where(
                    Annotation.task == task,
                    Annotation.source.in_([s.value for s in CHECKED_SOURCES]),
                )
                .group_by(Annotation.annotator)
            ).all()
        )
    )
    suspects: Counter[str] = Counter()
    held: Counter[str] = Counter()
    for annotator, status, count in session.execute(
        select(LabelSuspect.annotator, LabelSuspect.status, func.count(LabelSuspect.id))
        .where(LabelSuspect.task == task)
        .group_by(LabelSuspect.annotator, LabelSuspect.status)
    ):
        if status != SuspectStatus.CLEARED:
            suspects[annotator] += count
        if status == SuspectStatus.HELD:
            held[annotator] += count
    return [
        AnnotatorCounts(name, corrections[name], suspects[name], held[name])
        for name in sorted(set(corrections) | set(suspects))
    ]


def human_labels_by_text(*, session: Session, task: str) -> dict[str, dict[str, str]]:
    """Text hash -> {annotator: their latest label} over checked labels (for agreement)."""
    result: dict[str, dict[str, str]] = {}
    rows = session.execute(
        select(Annotation.text_hash, Annotation.annotator, Annotation.label)
        .where(
            Annotation.task == task,
            Annotation.source.in_([s.value for s in CHECKED_SOURCES]),
        )
        .order_by(Annotation.created_at, Annotation.id)
    )
    for text_hash, annotator, label in rows:
        result.setdefault(text_hash, {})[annotator] = label
    return result


def latest_labelled(*, session: Session, task: str) -> dict[str, datetime]:
    """When each annotator last gave a checked label (correction, appeal) for the task."""
    rows = session.execute(
        select(Annotation.annotator, func.max(Annotation.created_at))
        .where(
            Annotation.task == task,
            Annotation.source.in_([s.value for s in CHECKED_SOURCES]),
        )
        .group_by(Annotation.annotator)
    )
    return {annotator: when for annotator, when in rows if when is not None}
