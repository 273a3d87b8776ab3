"""Read-only queries behind the Slack status, the App Home tab and its review queue.

Each answers one screen's question in a bounded number of statements: effective labels
counted by label and source, recent training runs with their candidate's version, and
the review queue: messages flagged for review (by drift watch), then the recent
channel-message predictions the model was least sure about.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, aliased

from storage._convert import to_record
from storage.annotations import HUMAN_SOURCES, visible_to
from storage.enums import AnnotationSource
from storage.models import (
    Annotation,
    Message,
    ModelVersion,
    Prediction,
    ReviewFlag,
    TrainingRun,
)
from storage.records import MessageRecord, PredictionRecord, TrainingRunRecord

DEFAULT_SCAN_LIMIT = 500


@dataclass(frozen=True)
class LabelSourceCount:
    """How many texts of a task have ``label`` as their effective label, from ``source``."""

    label: str
    source: AnnotationSource
    count: int


@dataclass(frozen=True)
class RunOverview:
    """A training run and the version name of the candidate it trained, if any."""

    run: TrainingRunRecord
    candidate_version: str | None


@dataclass(frozen=True)
class ReviewCandidate:
    """A channel message's latest prediction for a task, with how unsure the model was.

    Attributes:
        prediction: The prediction.
        message: The message it is about.
        top_probability: The probability of the predicted (most probable) label.
        margin: The top probability minus the second highest (0 = a coin toss).
        reason: Why it was flagged for review (``drift``); None: the model was unsure.
    """

    prediction: PredictionRecord
    message: MessageRecord
    top_probability: float
    margin: float
    reason: str | None = None


def label_source_counts(
    *, session: Session, task: str, team_id: str | None = None
) -> list[LabelSourceCount]:
    """A task's effective labels counted by label and by where the label came from.

    The effective label is the one training uses (see
    :func:`storage.annotations.effective_labels`): per text, the latest correction/admin
    label, else the latest seed/import label. A seed text a moderator corrected counts once,
    as a correction.

    Args:
        session: The caller's unit of work.
        task: The task.
        team_id: Count as this workspace sees it: the shared seed and imported labels and
            its own moderators' labels, not other workspaces' (None: every label).

    Returns:
        One row per (label, source) that has texts, ordered by label then source.
    """
    visible = (
        Annotation.task == task
        if team_id is None
        else and_(Annotation.task == task, visible_to(team_id))
    )
    is_human = Annotation.source.in_([source.value for source in HUMAN_SOURCES])
    ranked = (
        select(
            Annotation.label,
            Annotation.source,
            func.row_number()
            .over(
                partition_by=Annotation.text_hash,
                order_by=(is_human.desc(), Annotation.created_at.desc(), Annotation.id.desc()),
            )
            .label("rank"),
        )
        .where(visible)
        .subquery()
    )
    rows = session.execute(
        select(ranked.c.label, ranked.c.source, func.count())
        .where(ranked.c.rank == 1)
        .group_by(ranked.c.label, ranked.c.source)
        .order_by(ranked.c.label, ranked.c.source)
    )
    return [
        LabelSourceCount(label=label, source=AnnotationSource(source), count=int(count))
        for label, source, count in rows
    ]


def recent_runs(*, session: Session, limit: int = 10, task: str | None = None) -> list[RunOverview]:
    """The newest training runs first, with their candidate's version name.

    Args:
        session: The caller's unit of work.
        limit: How many runs.
        task: Only this task's runs (all tasks when None).
    """
    query = (
        select(TrainingRun, ModelVersion.version)
        .outerjoin(ModelVersion, ModelVersion.id == TrainingRun.candidate_version_id)
        .order_by(TrainingRun.created_at.desc(), TrainingRun.id.desc())
        .limit(limit)
    )
    if task is not None:
        query = query.where(TrainingRun.task == task)
    return [
        RunOverview(run=to_record(TrainingRunRecord, run), candidate_version=version)
        for run, version in session.execute(query)
    ]


def least_sure_predictions(
    *,
    session: Session,
    since: datetime,
    tasks: Sequence[str] | None = None,
    limit: int = 10,
    scan_limit: int = DEFAULT_SCAN_LIMIT,
    team_id: str | None = None,
) -> list[ReviewCandidate]:
    """Recent channel-message predictions that need a moderator most, least sure first.

    Only each message's latest prediction per task counts (an edit's re-prediction replaces
    the old one), and only while the message is not deleted and no moderator or admin has
    labelled that message for that task. Of the newest ``scan_limit`` such predictions, the
    ones with the smallest margin between the two most probable labels come first (ties:
    lower top probability, then newer).

    Args:
        session: The caller's unit of work.
        since: Only predictions made at or after this time.
        tasks: Only these tasks (all when None).
        limit: How many to return.
        scan_limit: How many of the newest eligible predictions to rank; bounds the work.

    Returns:
        At most ``limit`` candidates, least sure first.
    """
    if limit <= 0 or (tasks is not None and not tasks):
        return []
    latest = (
        select(func.max(Prediction.id))
        .where(Prediction.message_id.is_not(None), Prediction.created_at >= since)
        .group_by(Prediction.message_id, Prediction.task)
    )
    if tasks is not None:
        latest = latest.where(Prediction.task.in_(list(tasks)))
    labelled = (
        select(Annotation.id)
        .where(
            Annotation.message_id == Prediction.message_id,
            Annotation.task == Prediction.task,
            Annotation.source.in_([source.value for source in HUMAN_SOURCES]),
        )
        .exists()
    )
    query = (
        select(Prediction, Message)
        .join(Message, Message.id == Prediction.message_id)
        .where(Prediction.id.in_(latest), Message.deleted_at.is_(None), ~labelled)
        .order_by(Prediction.id.desc())
        .limit(scan_limit)
    )
    if team_id is not None:
        query = query.where(Message.team_id == team_id)
    rows = session.execute(query)
    candidates = []
    for prediction, message in rows:
        top, margin = _top_and_margin(prediction.scores)
        candidates.append(
            ReviewCandidate(
                prediction=to_record(PredictionRecord, prediction),
                message=to_record(MessageRecord, message),
                top_probability=top,
                margin=margin,
            )
        )
    candidates.sort(key=lambda c: (c.margin, c.top_probability, -c.prediction.id))
    return candidates[:limit]


def flagged_predictions(
    *,
    session: Session,
    since: datetime,
    tasks: Sequence[str] | None = None,
    limit: int = 10,
    team_id: str | None = None,
) -> list[ReviewCandidate]:
    """Messages flagged for review since a time (see :func:`storage.drift.flag_for_review`),
    with their latest prediction for the flagged task: newest flag first, then highest score.

    As in :func:`least_sure_predictions`, a deleted message, one a moderator or admin has
    labelled for the task, and one without a prediction for the task are left out.
    """
    if limit <= 0 or (tasks is not None and not tasks):
        return []
    earlier = aliased(Prediction)
    latest = (
        select(func.max(earlier.id))
        .where(earlier.message_id == ReviewFlag.message_id, earlier.task == ReviewFlag.task)
        .correlate(ReviewFlag)
        .scalar_subquery()
    )
    labelled = (
        select(Annotation.id)
        .where(
            Annotation.message_id == ReviewFlag.message_id,
            Annotation.task == ReviewFlag.task,
            Annotation.source.in_([source.value for source in HUMAN_SOURCES]),
        )
        .exists()
    )
    query = (
        select(ReviewFlag, Prediction, Message)
        .select_from(ReviewFlag)
        .join(Prediction, Prediction.id == latest)
        .join(Message, Message.id == ReviewFlag.message_id)
        .where(ReviewFlag.flagged_at >= since, Message.deleted_at.is_(None), ~labelled)
        .order_by(ReviewFlag.flagged_at.desc(), ReviewFlag.score.desc(), ReviewFlag.id.desc())
        .limit(limit)
    )
    if tasks is not None:
        query = query.where(ReviewFlag.task.in_(list(tasks)))
    if team_id is not None:
        query = query.where(Message.team_id == team_id)
    candidates = []
    for flag, prediction, message in session.execute(query):
        top, margin = _top_and_margin(prediction.scores)
        candidates.append(
            ReviewCandidate(
                prediction=to_record(PredictionRecord, prediction),
                message=to_record(MessageRecord, message),
                top_probability=top,
                margin=margin,
                reason=flag.reason,
            )
        )
    return candidates


def review_queue(
    *,
    session: Session,
    since: datetime,
    tasks: Sequence[str] | None = None,
    limit: int = 10,
    scan_limit: int = DEFAULT_SCAN_LIMIT,
    team_id: str | None = None,
) -> list[ReviewCandidate]:
    """The "Needs review" queue: flagged messages first (:func:`flagged_predictions`), then
    the least sure recent predictions (:func:`least_sure_predictions`), each message and
    task at most once.

    Args:
        session: The caller's unit of work.
        since: Only flags and predictions made at or after this time.
        tasks: Only these tasks (all when None).
        limit: How many to return.
        scan_limit: Bounds the least-sure ranking's work.
        team_id: Only this workspace's messages (every workspace's when None).
    """
    flagged = flagged_predictions(
        session=session, since=since, tasks=tasks, limit=limit, team_id=team_id
    )
    shown = {(c.prediction.message_id, c.prediction.task) for c in flagged}
    unsure = least_sure_predictions(
        session=session,
        since=since,
        tasks=tasks,
        limit=limit + len(flagged),
        scan_limit=scan_limit,
        team_id=team_id,
    )
    rest = [c for c in unsure if (c.prediction.message_id, c.prediction.task) not in shown]
    return (flagged + rest)[:limit]


def _top_and_margin(scores: dict[str, float]) -> tuple[float, float]:
    ranked = sorted((float(value) for value in scores.values()), reverse=True)
    if not ranked:
        return 0.0, 0.0
    second = ranked[1] if len(ranked) > 1 else 0.0
    return ranked[0], ranked[0] - second
