"""The bot's business logic, free of Slack payloads and Block Kit.

Listeners parse a payload, call one method here and render the result with
:mod:`bot.ui.blocks`. Every method owns its unit of work (``with database.begin()``). Errors
meant for the user are :class:`BotError`; storage errors pass through to the app's one
error handler.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot.services.roles import Roles
from storage import alerts as outbox
from storage import audit, messages
from storage.annotations import add_annotation
from storage.db import Database
from storage.enums import AnnotationSource, utcnow
from storage.errors import DuplicateError, NotFoundError, StorageError
from storage.records import AlertRecord, AnnotationRecord, MessageRecord, PredictionRecord
from trainer.serving import Classifier, Prediction
from trainer.tasks import TaskError, TaskSpec

logger = logging.getLogger(__name__)

LABEL_ACTION = "label"
# How long a claim on an alert holds: far longer than a post to Slack takes (the client
# times out after 10 s), short enough that an alert whose poster died is posted soon.
ALERT_CLAIM = timedelta(seconds=60)
MAX_ALERT_BACKOFF = timedelta(hours=1)
_TASK_PREFIX = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)\s*:\s*(.*)$", re.DOTALL)


class BotError(Exception):
    """A request cannot be served; the message is short and meant for the Slack user."""


class NotAllowedError(BotError):
    """The user's role does not allow the action."""


class UnavailableError(BotError):
    """The database cannot be reached: nothing was stored, and trying again is safe."""


class ModelSource(Protocol):
    """Where the production classifier of a task comes from (``ProductionModels``)."""

    def get(self, task: str) -> Classifier | None: ...


@dataclass(frozen=True)
class AlertPolicy:
    """When and where moderators are alerted about a message.

    Attributes:
        channel: The moderators' channel (an id such as ``C0123ABCD`` or a name).
        threshold: Alert when P(the task's alert label) is at least this.
        reaction: An emoji name to add to an alerted message, if any.
        retry_seconds: After a failed post, no one tries that alert again for this long;
            the wait doubles with each failed attempt (up to an hour).
    """

    channel: str = "moderators"
    threshold: float = 0.8
    reaction: str | None = None
    retry_seconds: float = 30.0

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"alert threshold must be in (0, 1], got {self.threshold!r}")
        if self.retry_seconds < 0:
            raise ValueError(f"alert retry_seconds must be >= 0, got {self.retry_seconds!r}")


@dataclass(frozen=True)
class ClassifyRequest:
    """What ``/classify`` was asked: a text and the tasks to run."""

    text: str
    tasks: tuple[str, ...]


@dataclass(frozen=True)
class TaskResult:
    """One task's answer for a text.

    Attributes:
        task: The task.
        prediction: The production model's prediction; None when the task has no model yet.
        prediction_id: The stored prediction (what a correction links to).
    """

    task: TaskSpec
    prediction: Prediction | None
    prediction_id: int | None


@dataclass(frozen=True)
class ClassifyOutcome:
    """A ``/classify`` answer; ``stored`` is False when the database could not record it
    (the predictions are still shown, without label controls)."""

    text: str
    results: tuple[TaskResult, ...]
    stored: bool = True

    @property
    def truncated(self) -> bool:
        """True when any model read only the beginning of the text."""
        return any(r.prediction is not None and r.prediction.truncated for r in self.results)

    @property
    def num_tokens(self) -> int:
        return max((r.prediction.num_tokens for r in self.results if r.prediction), default=0)


@dataclass(frozen=True)
class SlackMessage:
    """The fields of a channel message the bot keeps."""

    team_id: str
    channel_id: str
    ts: str
    user_id: str | None
    text: str
    thread_ts: str | None = None


@dataclass(frozen=True)
class Alert:
    """A prediction moderators should look at (e.g. P(spam) above the threshold).

    Attributes:
        alert_id: Its row in the outbox: claim it before posting, mark it posted after
            (None for an alert that was never stored).
        channel: Where it goes; None: the policy's channel.
    """

    task: TaskSpec
    label: str
    probability: float
    prediction_id: int
    model_version: str
    message: MessageRecord
    alert_id: int | None = None
    channel: str | None = None


class MessageStatus(enum.StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    EDITED = "edited"
    UNCHANGED = "unchanged"
    DELETED = "deleted"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class MessageOutcome:
    """What handling a message event did."""

    status: MessageStatus
    message: MessageRecord | None = None
    results: tuple[TaskResult, ...] = ()
    alerts: tuple[Alert, ...] = ()


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


def parse_classify(text: str, task_names: Sequence[str]) -> ClassifyRequest | None:
    """Read ``/classify [task:] <text>``; None when there is nothing to classify.

    A leading ``<task>:`` limits the request to that task when it names an active task;
    otherwise the whole text is classified for every task.
    """
    text = text.strip()
    if not text:
        return None
    match = _TASK_PREFIX.match(text)
    if match and match.group(1).lower() in task_names:
        rest = match.group(2).strip()
        return ClassifyRequest(rest, (match.group(1).lower(),)) if rest else None
    return ClassifyRequest(text, tuple(task_names))


class BotServices:
    """Classification, message storage and moderator corrections for the Slack surface.

    Thread-safe: it keeps no per-request state; each call runs its own unit of work.
    """

    def __init__(
        self,
        database: Database,
        models: ModelSource,
        tasks: Mapping[str, TaskSpec],
        roles: Roles,
        *,
        alerts: AlertPolicy | None = None,
    ) -> None:
        """Wire the services.

        Args:
            database: Where messages, predictions, annotations and audit entries go.
            models: The production classifier per task (``ProductionModels`` or a fake).
            tasks: The active tasks by name, in display order.
            roles: Admins and moderators.
            alerts: When and where to alert moderators.
        """
        if not tasks:
            raise ValueError("BotServices needs at least one task")
        self._database = database
        self._models = models
        self._tasks = dict(tasks)
        self.roles = roles
        self.alerts = alerts or AlertPolicy()

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(self._tasks)

    def task(self, name: str) -> TaskSpec | None:
        return self._tasks.get(name)

    def can_label(self, user_id: str | None) -> bool:
        return self.roles.can_label(user_id)

    # /classify -----------------------------------------------------------------------

    def classify(self, request: ClassifyRequest, *, requested_by: str) -> ClassifyOutcome:
        """Predict a free text with each requested task's production model and store it.

        Args:
            request: The text and the tasks (see :func:`parse_classify`).
            requested_by: The Slack user who asked (logged).

        Returns:
            One result per task, in the request's order; tasks without a production model
            have ``prediction=None``.
        """
        predicted = self._predict(request.text, request.tasks)
        results: tuple[TaskResult, ...] = tuple(
            TaskResult(spec, None, None) for spec, _ in predicted
        )
        if any(prediction is not None for _, prediction in predicted):
            try:
                with self._database.begin() as session:
                    results = tuple(
                        self._store(session, spec, prediction, text=request.text)
                        for spec, prediction in predicted
                    )
            except StorageError:
                # The answer needs no database; only its record and label controls are lost.
                logger.exception("could not store the /classify predictions for %s", requested_by)
                results = tuple(TaskResult(spec, p, None) for spec, p in predicted)
                return ClassifyOutcome(request.text, results, stored=False)
        logger.debug("classified a text for %s: %s", requested_by, [r.task.name for r in results])
        return ClassifyOutcome(request.text, results)

    # Channel messages ----------------------------------------------------------------

    def record_message(self, *, event_id: str, message: SlackMessage) -> MessageOutcome:
        """Store a new channel message and one prediction per task, once per event.

        The event id is recorded before anything else, in the same unit of work as the
        message, its predictions and its alerts (queued in the outbox, posted by the
        caller after the commit): a retried delivery (or a second process) costs one
        insert, calls no model and stores nothing. It returns the message's alerts that
        are still unposted (the first delivery died before posting them), for the caller
        to post; claiming each one first makes sure it is posted once.

        Args:
            event_id: Slack's ``event_id`` (the same across retries).
            message: The message.

        Returns:
            ``STORED`` with predictions and alerts, or ``DUPLICATE`` with the pending alerts.
        """
        with self._database.begin() as session:
            if not self._first_delivery(session, event_id, "message", message.team_id):
                return self._duplicate(session, message)
            try:
                stored = self._add_message(session, message)
            except DuplicateError:
                # The same message under another event id: keep the first.
                return self._duplicate(session, message)
            results = self._classify_message(session, stored)
            alerts = self._alerts(session, results, stored, previous={})
        return MessageOutcome(MessageStatus.STORED, stored, results, alerts)

    def record_edit(self, *, event_id: str, message: SlackMessage) -> MessageOutcome:
        """Re-classify an edited message (stored as new if the bot had not seen it).

        An edit that leaves the text as it was (an unfurl, a pin) stores nothing new. An
        alert is raised only when the edit crosses the threshold.

        Args:
            event_id: Slack's ``event_id`` of the ``message_changed`` event.
            message: The message as it is now.

        Returns:
            ``EDITED``, ``STORED`` (first seen now), ``UNCHANGED`` or ``DUPLICATE`` (with
            the message's alerts still unposted).
        """
        with self._database.begin() as session:
            if not self._first_delivery(session, event_id, "message_changed", message.team_id):
                return self._duplicate(session, message)
            existing = messages.find_message(
                session=session,
                team_id=message.team_id,
                channel_id=message.channel_id,
                ts=message.ts,
            )
            previous: dict[str, PredictionRecord] = {}
            if existing is None:
                stored = self._add_message(session, message)
                status = MessageStatus.STORED
            elif existing.text == message.text:
                return MessageOutcome(MessageStatus.UNCHANGED, existing)
            else:
                for record in messages.predictions_for_message(
                    session=session, message_id=existing.id
                ):
                    previous[record.task] = record  # oldest first: the last one wins
                stored = messages.edit_message(
                    session=session, message_id=existing.id, text=message.text
                )
                status = MessageStatus.EDITED
            results = self._classify_message(session, stored)
            alerts = self._alerts(session, results, stored, previous)
        return MessageOutcome(status, stored, results, alerts)

    def record_deletion(
        self, *, event_id: str, team_id: str, channel_id: str, ts: str
    ) -> MessageOutcome:
        """Mark a message deleted; its predictions and labels are kept.

        Returns:
            ``DELETED``, ``UNKNOWN`` (never stored) or ``DUPLICATE``.
        """
        with self._database.begin() as session:
            if not self._first_delivery(session, event_id, "message_deleted", team_id):
                return MessageOutcome(MessageStatus.DUPLICATE)
            existing = messages.find_message(
                session=session, team_id=team_id, channel_id=channel_id, ts=ts
            )
            if existing is None:
                return MessageOutcome(MessageStatus.UNKNOWN)
            deleted = messages.mark_message_deleted(session=session, message_id=existing.id)
        return MessageOutcome(MessageStatus.DELETED, deleted)

    # The alert outbox ----------------------------------------------------------------

    def due_alerts(self, *, older_than: timedelta, limit: int = 50) -> tuple[Alert, ...]:
        """Alerts stored at least ``older_than`` ago and still unposted, oldest first.

        The sweeper posts these: their request died (or Slack failed) before posting.
        Alerts claimed right now, or waiting out a back-off, are left out.
        """
        now = utcnow()
        with self._database.begin() as session:
            records = outbox.pending_alerts(
                session=session, created_before=now - older_than, now=now, limit=limit
            )
            return tuple(
                alert
                for alert in (self._stored_alert(session, record) for record in records)
                if alert is not None
            )

    def claim_alert(self, alert_id: int) -> int | None:
        """Take an alert for posting (committed at once).

        The claim lapses after :data:`ALERT_CLAIM` if the claimer dies before posting.

        Returns:
            Which attempt this is (1: no one tried to post it before), or None: it is
            posted already or someone else holds it.
        """
        with self._database.begin() as session:
            if not outbox.claim_alert(session=session, alert_id=alert_id, ttl=ALERT_CLAIM):
                return None
            return outbox.get_alert(session=session, alert_id=alert_id).attempts

    def alert_posted(self, alert_id: int, *, slack_ts: str | None) -> None:
        """Record that a claimed alert is in Slack: it is never posted again."""
        with self._database.begin() as session:
            outbox.mark_alert_posted(session=session, alert_id=alert_id, slack_ts=slack_ts)

    def alert_failed(self, alert_id: int, *, error: str) -> datetime | None:
        """Give a claimed alert back after a failed post; it is tried again after a back-off.

        Returns:
            When it may be tried again.
        """
        with self._database.begin() as session:
            attempts = outbox.get_alert(session=session, alert_id=alert_id).attempts
            backoff = timedelta(seconds=self.alerts.retry_seconds * 2 ** max(attempts - 1, 0))
            retry_at = utcnow() + min(backoff, MAX_ALERT_BACKOFF)
            outbox.release_alert(session=session, alert_id=alert_id, error=error, retry_at=retry_at)
        return retry_at

    # Corrections ---------------------------------------------------------------------

    def correct(self, *, user_id: str, prediction_id: int, label: str) -> Correction:
        """Store a moderator's label for a prediction, once per change of mind.

        The same user giving the same label again stores nothing (``created=False``); a
        different label is stored as a new annotation, so the history is kept and the
        latest label is the effective one. The role is checked before anything is read.

        Args:
            user_id: The Slack user who clicked.
            prediction_id: The prediction the label corrects (or confirms).
            label: The label given.

        Returns:
            The correction.

        Raises:
            NotAllowedError: The user is neither a moderator nor an admin.
            UnavailableError: The database cannot be reached (nothing was stored).
            BotError: The prediction is gone, its task is inactive, or the label is unknown.
        """
        if not self.roles.can_label(user_id):
            raise NotAllowedError(
                "Only moderators and admins can label messages. Nothing was stored."
            )
        with self._unit_of_work("Your label could not be stored") as session:
            try:
                prediction = messages.get_prediction(session=session, prediction_id=prediction_id)
            except NotFoundError as exc:
                raise BotError(
                    "That prediction is no longer stored, so it cannot be labelled."
                ) from exc
            spec = self._tasks.get(prediction.task)
            if spec is None:
                raise BotError(f"The {prediction.task} task is no longer active.")
            if label not in spec.labels:
                raise BotError(f"{label!r} is not a {spec.name} label ({', '.join(spec.labels)}).")
            text = prediction.text
            if text is None and prediction.message_id is not None:
                text = messages.get_message(session=session, message_id=prediction.message_id).text
            if text is None:  # pragma: no cover - storage requires a text or a message
                raise BotError("That prediction has no text to label.")
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
                        "role": self.roles.role_of(user_id),
                    },
                )
        return Correction(annotation, created, spec, prediction.label, prediction.model_version)

    # Internals -----------------------------------------------------------------------

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

    def _predict(
        self, text: str, task_names: Sequence[str]
    ) -> list[tuple[TaskSpec, Prediction | None]]:
        predicted: list[tuple[TaskSpec, Prediction | None]] = []
        for name in task_names:
            spec = self._tasks[name]
            model = self._models.get(name)
            predicted.append((spec, model.predict([text])[0] if model is not None else None))
        return predicted

    @staticmethod
    def _add_message(session: Any, message: SlackMessage) -> MessageRecord:
        return messages.add_message(
            session=session,
            team_id=message.team_id,
            channel_id=message.channel_id,
            ts=message.ts,
            text=message.text,
            user_id=message.user_id,
            thread_ts=message.thread_ts,
        )

    def _classify_message(self, session: Any, message: MessageRecord) -> tuple[TaskResult, ...]:
        # Inside the unit of work, after the event was found new. On SQLite this holds the
        # write lock for one model call per task (milliseconds to tens of milliseconds).
        return tuple(
            self._store(session, spec, prediction, message_id=message.id)
            for spec, prediction in self._predict(message.text, self.task_names)
        )

    @staticmethod
    def _store(
        session: Any,
        spec: TaskSpec,
        prediction: Prediction | None,
        *,
        message_id: int | None = None,
        text: str | None = None,
    ) -> TaskResult:
        if prediction is None:
            return TaskResult(spec, None, None)
        record = messages.add_prediction(
            session=session,
            task=spec.name,
            model_version=prediction.model_version,
            label=prediction.label,
            scores=prediction.probabilities,
            latency_ms=prediction.latency_ms,
            message_id=message_id,
            text=text,
        )
        return TaskResult(spec, prediction, record.id)

    @staticmethod
    def _first_delivery(session: Any, event_id: str, event_type: str, team_id: str) -> bool:
        first = messages.record_event(
            session=session, event_id=event_id, event_type=event_type, team_id=team_id
        )
        if not first:
            logger.info("event %s (%s) delivered again; ignored", event_id, event_type)
        return first

    def _duplicate(self, session: Any, message: SlackMessage) -> MessageOutcome:
        """A repeated delivery: the stored message and its alerts not posted yet."""
        stored = messages.find_message(
            session=session, team_id=message.team_id, channel_id=message.channel_id, ts=message.ts
        )
        if stored is None:
            return MessageOutcome(MessageStatus.DUPLICATE)
        pending = outbox.pending_alerts(session=session, message_id=stored.id)
        alerts = tuple(
            alert
            for alert in (self._stored_alert(session, record, stored) for record in pending)
            if alert is not None
        )
        if alerts:
            logger.info("message %s has %d unposted alert(s)", stored.id, len(alerts))
        return MessageOutcome(MessageStatus.DUPLICATE, stored, alerts=alerts)

    def _stored_alert(
        self, session: Any, record: AlertRecord, message: MessageRecord | None = None
    ) -> Alert | None:
        """An outbox row as the alert to post (with its prediction and message)."""
        prediction = messages.get_prediction(session=session, prediction_id=record.prediction_id)
        if prediction.message_id is None:  # pragma: no cover - alerts are about messages
            return None
        if message is None or message.id != prediction.message_id:
            message = messages.get_message(session=session, message_id=prediction.message_id)
        spec = self._tasks.get(prediction.task)
        if spec is None:  # the task was retired since: its labels are the scores' keys
            try:
                spec = TaskSpec(prediction.task, tuple(prediction.scores), record.label)
            except TaskError:
                logger.warning("alert %s: task %s is unknown", record.id, prediction.task)
                return None
        return Alert(
            spec,
            record.label,
            prediction.scores.get(record.label, 0.0),
            prediction.id,
            prediction.model_version,
            message,
            alert_id=record.id,
            channel=record.channel,
        )

    def _alerts(
        self,
        session: Any,
        results: Sequence[TaskResult],
        message: MessageRecord,
        previous: Mapping[str, PredictionRecord],
    ) -> tuple[Alert, ...]:
        """The alerts the new predictions raise, queued in the outbox of this unit of work."""
        alerts = []
        for result in results:
            alert_label = result.task.alert_label
            if alert_label is None or result.prediction is None or result.prediction_id is None:
                continue
            probability = result.prediction.probabilities.get(alert_label, 0.0)
            if probability < self.alerts.threshold:
                continue
            before = previous.get(result.task.name)
            if before is not None and before.scores.get(alert_label, 0.0) >= self.alerts.threshold:
                continue  # moderators were alerted about this message already
            queued = outbox.add_alert(
                session=session,
                prediction_id=result.prediction_id,
                label=alert_label,
                channel=self.alerts.channel,
            )
            alerts.append(
                Alert(
                    result.task,
                    alert_label,
                    probability,
                    result.prediction_id,
                    result.prediction.model_version,
                    message,
                    alert_id=queued.id,
                    channel=queued.channel,
                )
            )
        return tuple(alerts)

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
