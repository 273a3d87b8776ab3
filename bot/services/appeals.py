"""Authors' appeals: the author of a flagged message contests it, a moderator decides.

An appeal is about one alert (one task's flag on one message), made by that message's
author only, once, and at most :attr:`AppealPolicy.per_day` times a day per author. Open
appeals lead the moderators' review queue. The decision is a label of source ``appeal``
(an annotation for the next retrain, like any correction) and closes the appeal once:
two moderators clicking at once store one decision.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.services.errors import BotError, NotAllowedError, UnavailableError
from bot.services.predictor import Predictor, check_workspace
from bot.services.roles import Roles
from storage import alerts as outbox
from storage import appeals, audit, messages
from storage.annotations import add_annotation
from storage.db import Database
from storage.enums import AnnotationSource, AppealStatus, utcnow
from storage.errors import DuplicateError, NotFoundError, StorageError
from storage.records import AlertRecord, AnnotationRecord, AppealRecord
from trainer.tasks import TaskSpec

NOTE_MAX_CHARS = 1000


@dataclass(frozen=True)
class AppealPolicy:
    """How often an author may appeal.

    Attributes:
        per_day: Appeals per author in any 24 hours (``BERTBOT_APPEALS__PER_DAY``).
    """

    per_day: int = 3

    def __post_init__(self) -> None:
        if self.per_day < 1:
            raise ValueError(f"appeals per day must be at least 1, got {self.per_day!r}")


@dataclass(frozen=True)
class AppealItem:
    """A flagged message as the author and the moderators see it in an appeal.

    Attributes:
        appeal_id: The stored appeal (None before the author sends it).
        alert_id: The alert contested.
        removed: The bot deleted the message (``remove``): an upheld appeal re-posts it.
    """

    appeal_id: int | None
    alert_id: int
    author_id: str
    channel_id: str
    ts: str
    text: str
    task: TaskSpec
    label: str
    probability: float
    prediction_id: int
    note: str
    removed: bool
    created_at: datetime | None = None


@dataclass(frozen=True)
class AppealDecision:
    """A moderator's decision on an appeal.

    Attributes:
        item: The appeal.
        label: The label given (stored as an annotation of source ``appeal``).
        upheld: The author was right: the label is not the alert label.
        annotation: The stored label.
        restored_ts: Where the removed message was re-posted (set by the caller that
            re-posts it).
    """

    item: AppealItem
    label: str
    upheld: bool
    annotation: AnnotationRecord
    restored_ts: str | None = None


class AppealService:
    """Appeals from authors, decisions from moderators. Thread-safe: each call runs its
    own unit of work."""

    def __init__(
        self,
        database: Database,
        predictor: Predictor,
        roles: Roles,
        policy: AppealPolicy | None = None,
    ) -> None:
        """Wire the service.

        Args:
            database: Where appeals, annotations and audit entries go.
            predictor: The active tasks.
            roles: Only moderators (and admins) decide.
            policy: The rate limit.
        """
        self._database = database
        self._predictor = predictor
        self.roles = roles
        self.policy = policy or AppealPolicy()

    def check(self, *, user_id: str, alert_id: int) -> AppealItem:
        """What the author is about to appeal, if they may (before the appeal modal opens).

        Raises:
            NotAllowedError: The user did not write the message.
            BotError: It was appealed already, or the author's appeals for today are used up.
        """
        with self._unit_of_work("Your appeal could not be checked") as session:
            return self._check(session, user_id, alert_id)

    def submit(self, *, user_id: str, alert_id: int, note: str) -> AppealItem:
        """Store the author's appeal (audited); it goes to the top of the review queue.

        Args:
            user_id: The Slack user appealing (must be the message's author).
            alert_id: The alert contested.
            note: The author's note for the moderators (cut to 1,000 characters).

        Raises:
            NotAllowedError, BotError: As :meth:`check`.
        """
        with self._unit_of_work("Your appeal could not be stored") as session:
            item = self._check(session, user_id, alert_id)
            try:
                appeal = appeals.add_appeal(
                    session=session,
                    alert_id=alert_id,
                    author_id=user_id,
                    note=note.strip()[:NOTE_MAX_CHARS],
                )
            except DuplicateError as exc:
                raise BotError("You have appealed this already; a moderator will answer.") from exc
            audit.record_audit(
                session=session,
                actor=user_id,
                action="appeal.open",
                subject=appeal_subject(appeal.id),
                details={"alert_id": alert_id, "task": item.task.name, "label": item.label},
            )
            return self._item(session, appeal)

    def open_items(self, team_id: str | None = None, limit: int = 10) -> list[AppealItem]:
        """A workspace's open appeals, oldest first (they lead its moderators' review
        queue); every workspace's when ``team_id`` is None."""
        with self._database.begin() as session:
            return [
                self._item(session, appeal)
                for appeal in appeals.open_appeals(session=session, limit=limit, team_id=team_id)
            ]

    def decide(
        self, *, user_id: str, appeal_id: int, label: str, team_id: str | None = None
    ) -> AppealDecision:
        """A moderator's decision: the label is stored (source ``appeal``) and the appeal closed.

        Args:
            team_id: The workspace of the click: the user's roles there decide, and an
                appeal about another workspace's message is refused.

        Raises:
            NotAllowedError: The user is neither a moderator nor an admin.
            BotError: The appeal is gone or decided already, or the label is unknown.
        """
        role = self.roles.role_of(user_id, team_id)  # before the unit of work (see Roles)
        if role == "member":
            raise NotAllowedError("Only moderators and admins decide appeals. Nothing was stored.")
        with self._unit_of_work("The decision could not be stored") as session:
            try:
                appeal = appeals.get_appeal(session=session, appeal_id=appeal_id)
            except NotFoundError as exc:
                raise BotError("That appeal is no longer stored.") from exc
            item = self._item(session, appeal)
            check_workspace(
                session,
                messages.get_prediction(session=session, prediction_id=item.prediction_id),
                team_id,
            )
            if label not in item.task.labels:
                raise BotError(f"{label!r} is not a {item.task.name} label.")
            upheld = label != item.label
            decided = appeals.decide_appeal(
                session=session,
                appeal_id=appeal_id,
                status=AppealStatus.UPHELD if upheld else AppealStatus.DENIED,
                decided_by=user_id,
                label=label,
            )
            if decided is None:
                raise BotError("That appeal was decided already.")
            annotation, _ = add_annotation(
                session=session,
                task=item.task.name,
                text=item.text,
                label=label,
                annotator=user_id,
                source=AnnotationSource.APPEAL,
                message_id=_message_id(session, item),
                prediction_id=item.prediction_id,
                idempotency_key=f"appeal:{appeal_id}",
            )
            audit.record_audit(
                session=session,
                actor=user_id,
                action="appeal.decide",
                subject=appeal_subject(appeal_id),
                details={
                    "label": label,
                    "upheld": upheld,
                    "annotation_id": annotation.id,
                    "author": item.author_id,
                    "role": role,
                },
            )
        return AppealDecision(item, label, upheld, annotation)

    # Helpers -------------------------------------------------------------------------

    def _check(self, session: Any, user_id: str, alert_id: int) -> AppealItem:
        try:
            alert = outbox.get_alert(session=session, alert_id=alert_id)
        except NotFoundError as exc:
            raise BotError("That flag is no longer stored, so it cannot be appealed.") from exc
        item = self._alert_item(session, alert)
        if item.author_id != user_id:
            raise NotAllowedError("Only the author of a message can appeal its flag.")
        if appeals.appeal_for_alert(session=session, alert_id=alert_id) is not None:
            raise BotError("You have appealed this already; a moderator will answer.")
        since = utcnow() - timedelta(days=1)
        used = appeals.appeals_since(session=session, author_id=user_id, since=since)
        if used >= self.policy.per_day:
            raise BotError(
                f"You can appeal {self.policy.per_day} time(s) a day; please try again tomorrow."
            )
        return item

    def _item(self, session: Any, appeal: AppealRecord) -> AppealItem:
        alert = outbox.get_alert(session=session, alert_id=appeal.alert_id)
        item = self._alert_item(session, alert)
        return AppealItem(
            appeal.id,
            item.alert_id,
            appeal.author_id,
            item.channel_id,
            item.ts,
            item.text,
            item.task,
            item.label,
            item.probability,
            item.prediction_id,
            appeal.note,
            item.removed,
            appeal.created_at,
        )

    def _alert_item(self, session: Any, alert: AlertRecord) -> AppealItem:
        prediction = messages.get_prediction(session=session, prediction_id=alert.prediction_id)
        if prediction.message_id is None:  # pragma: no cover - alerts are about messages
            raise BotError("That flag is not about a channel message.")
        message = messages.get_message(session=session, message_id=prediction.message_id)
        spec = self._predictor.task(prediction.task)
        if spec is None:
            raise BotError(f"The {prediction.task} task is no longer active.")
        return AppealItem(
            None,
            alert.id,
            message.user_id or "",
            message.channel_id,
            message.ts,
            message.text,
            spec,
            alert.label,
            prediction.scores.get(alert.label, 0.0),
            prediction.id,
            "",
            alert.removed_at is not None,
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
                f"{failed}: the database is unavailable right now. Please try again."
            ) from exc


def appeal_subject(appeal_id: int) -> str:
    return f"appeal/{appeal_id}"


def _message_id(session: Any, item: AppealItem) -> int | None:
    return messages.get_prediction(session=session, prediction_id=item.prediction_id).message_id
