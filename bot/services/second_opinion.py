"""Second opinions: a share of moderators' corrections, and every correction that
contradicts a confident prediction, go to a second moderator; disagreements to an admin.

Routing (:func:`route_correction`) runs in the unit of work that stores a moderator's
correction (:class:`bot.services.corrections.CorrectionService`); admins' labels and appeal
decisions are not routed. A second moderator answers blind (the text and the model's
prediction, not the first label); the answer is a correction annotation like any other. The
same label closes the request (``agreed``); a different one makes it ``disputed``, and the
text is held out of training until an admin's label (an annotation of source ``admin``,
the latest human label, so the effective one) decides it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.second_opinion_policy import SecondOpinionPolicy, routing_reason
from bot.services.errors import BotError, NotAllowedError, UnavailableError
from bot.services.roles import Roles
from storage import audit
from storage import second_opinion as opinions
from storage.annotations import add_annotation
from storage.db import Database
from storage.enums import AnnotationSource, SecondOpinionStatus
from storage.errors import DuplicateError, NotFoundError, StorageError
from storage.records import AnnotationRecord, PredictionRecord
from storage.second_opinion import SecondOpinionView
from trainer.tasks import TaskSpec

ANSWER_ACTION = "second_opinion.answer"
DECIDE_ACTION = "second_opinion.decide"


def route_correction(
    *,
    session: Any,
    annotation: AnnotationRecord,
    prediction: PredictionRecord | None,
    policy: SecondOpinionPolicy,
) -> opinions.SecondOpinionRecord | None:
    """Open a request for a moderator's new correction if it needs one (in the caller's unit
    of work). None when it does not, or its text has an open or disputed request already."""
    reason = routing_reason(annotation, prediction, policy)
    if reason is None:
        return None
    return opinions.open_request(session=session, annotation=annotation, reason=reason)


@dataclass(frozen=True)
class OpinionItem:
    """A request as a second moderator sees it: blind to the first label."""

    request_id: int
    task: TaskSpec
    text: str
    predicted_label: str | None
    probability: float | None
    model_version: str | None
    created_at: datetime


@dataclass(frozen=True)
class DisputeItem:
    """A disputed request as admins see it: both labels and who gave them."""

    request_id: int
    task: TaskSpec
    text: str
    text_hash: str
    message_id: int | None
    predicted_label: str | None
    probability: float | None
    model_version: str | None
    reason: str
    first_label: str
    first_annotator: str
    opened_at: datetime
    second_label: str
    second_annotator: str
    answered_at: datetime

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``bertbot review disputes --json``."""
        return {
            "id": self.request_id,
            "task": self.task.name,
            "text": self.text,
            "text_hash": self.text_hash,
            "message_id": self.message_id,
            "predicted_label": self.predicted_label,
            "probability": self.probability,
            "model_version": self.model_version,
            "reason": self.reason,
            "labels": [
                {"label": self.first_label, "by": self.first_annotator, "at": _iso(self.opened_at)},
                {
                    "label": self.second_label,
                    "by": self.second_annotator,
                    "at": _iso(self.answered_at),
                },
            ],
        }


@dataclass(frozen=True)
class OpinionBoard:
    """What one user's Home tab shows of second opinions (empty for those who may not act)."""

    wanted: tuple[OpinionItem, ...] = ()
    disputes: tuple[DisputeItem, ...] = ()


@dataclass(frozen=True)
class OpinionOutcome:
    """An answer or a decision, stored now or earlier (``created`` False: a repeat).

    Attributes:
        status: ``agreed``, ``disputed`` (answers) or ``decided``.
        first_label: The first moderator's label (shown once the answer is in).
    """

    request_id: int
    task: TaskSpec
    label: str
    status: SecondOpinionStatus
    first_label: str
    annotation_id: int
    by: str
    at: datetime
    created: bool

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``bertbot review decide --json``."""
        return {
            "id": self.request_id,
            "task": self.task.name,
            "status": str(self.status),
            "label": self.label,
            "decided_by": self.by,
            "decided_at": _iso(self.at),
            "annotation_id": self.annotation_id,
            "created": self.created,
        }


class SecondOpinionService:
    """Second moderators' answers and admins' decisions. Thread-safe: each call runs its own
    unit of work; roles are checked before anything is read."""

    def __init__(
        self,
        database: Database,
        tasks: Mapping[str, TaskSpec],
        roles: Roles,
        *,
        shown: int = 5,
    ) -> None:
        """Wire the service.

        Args:
            database: Requests, annotations and audit entries.
            tasks: The active tasks (requests of other tasks are not shown or answered).
            roles: Moderators answer, admins decide.
            shown: How many requests (and disputes) the Home tab shows.
        """
        self._database = database
        self._tasks = dict(tasks)
        self.roles = roles
        self._shown = shown

    def board(self, user_id: str, team_id: str | None = None) -> OpinionBoard:
        """What ``user_id`` may act on in a workspace: its open requests they did not label
        first (moderators) and its disputes (admins), oldest first. ``team_id`` None: every
        workspace's, with the environment's roles."""
        moderator = self.roles.is_moderator(user_id, team_id)
        admin = self.roles.is_admin(user_id, team_id)
        if not (moderator or admin):
            return OpinionBoard()
        with self._database.begin() as session:
            wanted = []
            if moderator:
                wanted = opinions.wanted(
                    session=session,
                    tasks=list(self._tasks),
                    excluding=user_id,
                    limit=self._shown,
                    team_id=team_id,
                )
            disputed = opinions.disputes(session=session, team_id=team_id) if admin else []
        return OpinionBoard(
            tuple(self._opinion_item(view) for view in wanted),
            tuple(self._dispute_item(v) for v in disputed if v.request.task in self._tasks)[
                : self._shown
            ],
        )

    def disputes(self, task: str, team_id: str | None = None) -> list[DisputeItem]:
        """Every dispute of an active task, oldest first (``bertbot review disputes``), of
        one workspace when ``team_id`` is given.

        Raises:
            BotError: The task is not active.
        """
        self._spec(task)
        with self._database.begin() as session:
            return [
                self._dispute_item(v)
                for v in opinions.disputes(session=session, task=task, team_id=team_id)
            ]

    def answer(
        self, *, user_id: str, request_id: int, label: str, team_id: str | None = None
    ) -> OpinionOutcome:
        """A second moderator's label: agreed (same label) or disputed (another).

        Stored as a correction annotation (who, when, the prediction) and audited. The same
        click again returns the stored answer (``created`` False).

        Raises:
            NotAllowedError: The user is not a moderator, or gave the first label.
            BotError: The request is gone, answered already, or the label is unknown.
        """
        if not self.roles.is_moderator(user_id, team_id):
            raise NotAllowedError("Only moderators give second opinions. Nothing was stored.")
        role = self.roles.role_of(user_id, team_id)  # before the unit of work (see Roles)
        with self._unit_of_work("Your label could not be stored") as session:
            view = self._view(session, request_id, team_id=team_id)
            request = view.request
            if request.first_annotator == user_id:
                raise NotAllowedError(
                    "You gave the first label; another moderator gives the second opinion."
                )
            spec = self._spec(request.task)
            _check_label(spec, label)
            if request.second_annotator == user_id:
                return self._repeat(view, label, view.second_label, "answered")
            if request.status is not SecondOpinionStatus.OPEN:
                raise BotError("Another moderator answered this one already. Thank you!")
            annotation = _store_label(
                session, view, label, user_id, AnnotationSource.CORRECTION, "answer"
            )
            answered = opinions.answer(
                session=session,
                request_id=request_id,
                annotation_id=annotation.id,
                annotator=user_id,
                agreed=label == view.first_label,
            )
            if answered is None:  # a concurrent click won the update: a retry, or another answer
                view = self._view(session, request_id)
                if view.request.second_annotator == user_id:
                    return self._repeat(view, label, view.second_label, "answered")
                raise BotError("Another moderator answered this one already. Thank you!")
            self._audit(
                session, user_id, ANSWER_ACTION, view, label, annotation, answered.status, role
            )
        return _outcome(spec, view.first_label, answered, label, decision=False, created=True)

    def decide(
        self, *, user_id: str, request_id: int, label: str, team_id: str | None = None
    ) -> OpinionOutcome:
        """An admin's decision on a dispute: a label of source ``admin`` (so the effective
        label), the dispute closed and the text no longer held out. Audited; the same
        decision again returns the stored one (``created`` False).

        Raises:
            NotAllowedError: The user is not an admin.
            BotError: No such dispute, decided already, or the label is unknown.
        """
        if not self.roles.is_admin(user_id, team_id):
            raise NotAllowedError("Only admins decide disputes. Nothing was stored.")
        role = "admin"
        with self._unit_of_work("The decision could not be stored") as session:
            view = self._view(session, request_id, what="dispute", team_id=team_id)
            request = view.request
            spec = self._spec(request.task)
            _check_label(spec, label)
            if request.status is SecondOpinionStatus.DECIDED and request.decided_by == user_id:
                return self._repeat(view, label, view.decided_label, "decided")
            if request.status is not SecondOpinionStatus.DISPUTED:
                done = "decided already" if request.decided_by else "not disputed"
                raise BotError(f"Second opinion {request_id} is {done}.")
            annotation = _store_label(
                session, view, label, user_id, AnnotationSource.ADMIN, "decision"
            )
            decided = opinions.decide(
                session=session,
                request_id=request_id,
                annotation_id=annotation.id,
                decided_by=user_id,
            )
            if decided is None:  # a concurrent click won the update: a retry, or another admin
                view = self._view(session, request_id, what="dispute")
                if view.request.decided_by == user_id:
                    return self._repeat(view, label, view.decided_label, "decided")
                raise BotError(f"Second opinion {request_id} is decided already.")
            self._audit(
                session, user_id, DECIDE_ACTION, view, label, annotation, decided.status, role
            )
        return _outcome(spec, view.first_label, decided, label, decision=True, created=True)

    # Helpers -------------------------------------------------------------------------

    def _spec(self, task: str) -> TaskSpec:
        spec = self._tasks.get(task)
        if spec is None:
            raise BotError(f"The {task} task is not active (active: {', '.join(self._tasks)}).")
        return spec

    @staticmethod
    def _view(
        session: Any, request_id: int, what: str = "request", team_id: str | None = None
    ) -> opinions.SecondOpinionView:
        """The request; another workspace's is refused as if it did not exist."""
        try:
            view = opinions.get_request(session=session, request_id=request_id)
        except NotFoundError as exc:
            raise BotError(f"There is no second opinion {what} {request_id}.") from exc
        if team_id is not None and view.team_id is not None and view.team_id != team_id:
            raise BotError(f"There is no second opinion {what} {request_id}.")
        return view

    def _repeat(
        self, view: opinions.SecondOpinionView, label: str, given: str | None, done: str
    ) -> OpinionOutcome:
        """The stored answer (or decision) when the same user clicks again."""
        if given != label:
            raise BotError(f"You {done} this already ({given}); that label stands.")
        spec = self._spec(view.request.task)
        decision = done == "decided"
        return _outcome(
            spec, view.first_label, view.request, label, decision=decision, created=False
        )

    def _audit(
        self,
        session: Any,
        user_id: str,
        action: str,
        view: opinions.SecondOpinionView,
        label: str,
        annotation: AnnotationRecord,
        status: SecondOpinionStatus,
        role: str,
    ) -> None:
        request = view.request
        audit.record_audit(
            session=session,
            actor=user_id,
            action=action,
            subject=opinion_subject(request.id),
            details={
                "task": request.task,
                "label": label,
                "status": str(status),
                "first_label": view.first_label,
                "first_annotator": request.first_annotator,
                "second_label": view.second_label if action == DECIDE_ACTION else label,
                "predicted_label": view.predicted_label,
                "model_version": view.model_version,
                "annotation_id": annotation.id,
                "prediction_id": request.prediction_id,
                "message_id": request.message_id,
                "role": role,
            },
        )

    def _opinion_item(self, view: opinions.SecondOpinionView) -> OpinionItem:
        request = view.request
        return OpinionItem(
            request.id,
            self._tasks[request.task],
            view.text,
            view.predicted_label,
            view.predicted_probability,
            view.model_version,
            request.created_at,
        )

    def _dispute_item(self, view: opinions.SecondOpinionView) -> DisputeItem:
        request = view.request
        assert view.second_label is not None and request.second_annotator is not None
        assert request.answered_at is not None
        return DisputeItem(
            request.id,
            self._tasks[request.task],
            view.text,
            request.text_hash,
            request.message_id,
            view.predicted_label,
            view.predicted_probability,
            view.model_version,
            request.reason,
            view.first_label,
            request.first_annotator,
            request.created_at,
            view.second_label,
            request.second_annotator,
            request.answered_at,
        )

    @contextmanager
    def _unit_of_work(self, failed: str) -> Iterator[Any]:
        try:
            with self._database.begin() as session:
                yield session
        except (DuplicateError, NotFoundError):
            raise
        except StorageError as exc:
            raise UnavailableError(
                f"{failed}: the database is unavailable right now. Nothing was stored; "
                "please try again in a moment."
            ) from exc


def _outcome(
    spec: TaskSpec,
    first_label: str,
    request: opinions.SecondOpinionRecord,
    label: str,
    *,
    decision: bool,
    created: bool,
) -> OpinionOutcome:
    if decision:
        found = (request.decision_annotation_id, request.decided_by, request.decided_at)
    else:
        found = (request.second_annotation_id, request.second_annotator, request.answered_at)
    annotation_id, by, at = found
    assert annotation_id is not None and by is not None and at is not None
    status = request.status
    if not decision and status is SecondOpinionStatus.DECIDED:
        status = SecondOpinionStatus.DISPUTED  # what the answer made it
    return OpinionOutcome(
        request.id, spec, label, status, first_label, annotation_id, by, at, created
    )


def opinion_subject(request_id: int) -> str:
    return f"second_opinion/{request_id}"


def _check_label(spec: TaskSpec, label: str) -> None:
    if label not in spec.labels:
        raise BotError(f"{label!r} is not a {spec.name} label ({', '.join(spec.labels)}).")


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _store_label(
    session: Any,
    view: SecondOpinionView,
    label: str,
    user_id: str,
    source: AnnotationSource,
    step: str,
) -> AnnotationRecord:
    """The second moderator's answer or the admin's decision, as an annotation of the
    request's text and prediction (idempotent per request and step)."""
    request = view.request
    annotation, _ = add_annotation(
        session=session,
        task=request.task,
        text=view.text,
        label=label,
        annotator=user_id,
        source=source,
        message_id=request.message_id,
        prediction_id=request.prediction_id,
        idempotency_key=f"opinion:{request.id}:{step}",
        team_id=view.team_id,
    )
    return annotation
