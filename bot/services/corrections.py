"""Moderators' corrections: a label for a prediction, stored once per change of mind.

Every labelling control (alert buttons, ``/classify`` results, the Home tab, the "Label
with bertbot" modal) stores through :meth:`CorrectionService.correct`, which checks the
user's role server-side before anything is read.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from bot.services.errors import BotError, NotAllowedError, UnavailableError
from bot.services.predictor import Predictor, check_workspace, load_prediction
from bot.services.roles import Roles
from bot.services.second_opinion import SecondOpinionPolicy, route_correction
from storage import audit
from storage.annotations import add_annotation
from storage.db import Database
from storage.enums import AnnotationSource
from storage.errors import DuplicateError, NotFoundError, StorageError
from storage.records import AnnotationRecord
from trainer.tasks import TaskSpec

LABEL_ACTION = "label"


@dataclass(frozen=True)
class Correction:
    """A stored (or repeated) label from a moderator.

    Attributes:
        annotation: The annotation; for a repeat, the one stored the first time.
        created: False when the same user gave the same label again (nothing new stored).
        task: The task labelled.
        predicted_label: What the model had said.
        model_version: The model version that said it.
    """

    annotation: AnnotationRecord
    created: bool
    task: TaskSpec
    predicted_label: str
    model_version: str


class CorrectionService:
    """Stores moderators' labels. Thread-safe: each call runs its own unit of work."""

    def __init__(
        self,
        database: Database,
        predictor: Predictor,
        roles: Roles,
        second_opinion: SecondOpinionPolicy | None = None,
    ) -> None:
        """Wire the service.

        Args:
            database: Where annotations and audit entries go.
            predictor: The active tasks (a label must be one of its task's).
            roles: Who may label.
            second_opinion: Which moderators' corrections go to a second moderator.
        """
        self._database = database
        self._predictor = predictor
        self.roles = roles
        self._second_opinion = second_opinion or SecondOpinionPolicy()

    def can_label(self, user_id: str | None, team_id: str | None = None) -> bool:
        """Whether the user may label (moderators and admins of the workspace); listeners
        show controls by it."""
        return self.roles.can_label(user_id, team_id)

    def correct(
        self, *, user_id: str, prediction_id: int, label: str, team_id: str | None = None
    ) -> Correction:
        """Store a moderator's label for a prediction, once per change of mind.

        The same user giving the same label again stores nothing (``created=False``); a
        different label is stored as a new annotation, so the history is kept and the
        latest label is the effective one. The role is checked before anything is read.

        Args:
            user_id: The Slack user who clicked.
            prediction_id: The prediction the label corrects (or confirms).
            label: The label given.
            team_id: The workspace the click came from: the user's roles there decide, the
                label is stored as that workspace's, and another workspace's message is
                refused. None: the message's workspace and the environment's roles.

        Returns:
            The correction.

        Raises:
            NotAllowedError: The user is neither a moderator nor an admin.
            UnavailableError: The database cannot be reached (nothing was stored).
            BotError: The prediction is gone, its task is inactive, or the label is unknown.
        """
        # Read before the unit of work: stored roles are read in a unit of work of their own.
        role = self.roles.role_of(user_id, team_id)
        if role == "member":
            raise NotAllowedError(
                "Only moderators and admins can label messages. Nothing was stored."
            )
        with self._unit_of_work("Your label could not be stored") as session:
            try:
                prediction, text = load_prediction(session, prediction_id)
            except NotFoundError as exc:
                raise BotError(
                    "That prediction is no longer stored, so it cannot be labelled."
                ) from exc
            check_workspace(session, prediction, team_id)
            spec = self._predictor.task(prediction.task)
            if spec is None:
                raise BotError(f"The {prediction.task} task is no longer active.")
            if label not in spec.labels:
                raise BotError(f"{label!r} is not a {spec.name} label ({', '.join(spec.labels)}).")
            earlier = self._labels_given(session, prediction_id, user_id)
            # Repeating one's latest label reuses its key, so the annotation is not stored twice.
            turn = len(earlier) - 1 if earlier and earlier[0] == label else len(earlier)
            annotation, created = add_annotation(
                session=session,
                task=spec.name,
                text=text,
                label=label,
                annotator=user_id,
                source=AnnotationSource.CORRECTION,
                message_id=prediction.message_id,
                prediction_id=prediction.id,
                idempotency_key=f"slack:{prediction.id}:{user_id}:{turn}:{label}",
                team_id=team_id,
            )
            if created:
                audit.record_audit(
                    session=session,
                    actor=user_id,
                    action=LABEL_ACTION,
                    subject=_prediction_subject(prediction.id),
                    details={
                        "task": spec.name,
                        "label": label,
                        "predicted_label": prediction.label,
                        "model_version": prediction.model_version,
                        "annotation_id": annotation.id,
                        "message_id": prediction.message_id,
                        "role": role,
                        "team": annotation.team_id,
                    },
                )
                if role != "admin":  # an admin's label is not second-guessed
                    route_correction(
                        session=session,
                        annotation=annotation,
                        prediction=prediction,
                        policy=self._second_opinion,
                    )
        return Correction(annotation, created, spec, prediction.label, prediction.model_version)

    @contextmanager
    def _unit_of_work(self, failed: str) -> Iterator[Any]:
        """``database.begin()``, with a lost database turned into an error for the user."""
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

    @staticmethod
    def _labels_given(session: Any, prediction_id: int, user_id: str) -> list[str]:
        """The labels a user gave a prediction, newest first (from the audit log)."""
        subject = _prediction_subject(prediction_id)
        return [
            str(entry.details.get("label"))
            for entry in audit.list_audit(session=session, subject_prefix=subject, limit=1000)
            if entry.subject == subject and entry.actor == user_id and entry.action == LABEL_ACTION
        ]


def _prediction_subject(prediction_id: int) -> str:
    return f"prediction/{prediction_id}"
