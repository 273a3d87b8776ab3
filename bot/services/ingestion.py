"""Channel messages: stored and classified once per event, edits re-classified, deletions marked.

The events listener turns each message event into a :class:`SlackMessage` and calls
:class:`IngestionService`; the :class:`MessageOutcome` carries the alerts to post (queued in
the :mod:`bot.services.alert_outbox` in the same unit of work as the message).
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.services.alert_outbox import Alert, AlertOutbox
from bot.services.policy import EffectivePolicy, PolicyService
from bot.services.predictor import Predictor, TaskResult
from storage import inbox as inbox_store
from storage import messages
from storage.db import Database
from storage.errors import DuplicateError
from storage.records import MessageRecord, PredictionRecord
from trainer.serving import Prediction
from trainer.tasks import TaskSpec

if TYPE_CHECKING:
    from bot.services.inbox import InboxClaim

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlackMessage:
    """The fields of a channel message the bot keeps."""

    team_id: str
    channel_id: str
    ts: str
    user_id: str | None
    text: str
    thread_ts: str | None = None


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


class IngestionService:
    """Stores channel messages and their predictions, and queues the alerts they raise.

    Thread-safe: it keeps no per-request state; each call runs its own unit of work.
    """

    def __init__(
        self,
        database: Database,
        predictor: Predictor,
        alerts: AlertOutbox,
        policies: PolicyService | None = None,
    ) -> None:
        """Wire the service.

        Args:
            database: Where messages, predictions and delivered event ids go.
            predictor: The tasks and their production models.
            alerts: The outbox the alerts are queued in.
            policies: Each channel's policy per task (watch, exemptions, threshold,
                action); without it every task is watched everywhere with the outbox's
                threshold.
        """
        self._database = database
        self._predictor = predictor
        self._alerts = alerts
        self._policies = policies

    def record_message(
        self, *, event_id: str, message: SlackMessage, claim: InboxClaim | None = None
    ) -> MessageOutcome:
        """Store a new channel message and one prediction per task, once per event.

        The models are called first, outside any unit of work (so no lock is held while
        they run). The event id is recorded before anything else in the unit of work that
        stores the message, its predictions and its alerts (queued in the outbox, posted by
        the caller after the commit): a repeated delivery stores nothing. It returns the
        message's alerts that are still unposted (the first delivery died before posting
        them), for the caller to post; claiming each one first makes sure it is posted once.

        Args:
            event_id: Slack's ``event_id`` (the same across retries).
            message: The message.
            claim: The inbox delivery being handled: marked done in this unit of work.

        Returns:
            ``STORED`` with predictions and alerts, or ``DUPLICATE`` with the pending alerts.
        """
        resolved, predicted = self._predict(message)  # before the unit of work: no lock held
        with self._database.begin() as session:
            _mark_handled(session, claim)
            if not self._first_delivery(session, event_id, "message", message.team_id):
                return self._duplicate(session, message)
            try:
                stored = self._add_message(session, message)
            except DuplicateError:
                # The same message under another event id: keep the first.
                return self._duplicate(session, message)
            results = self._store_predictions(session, stored, predicted)
            alerts = self._alerts.queue(session, results, stored, {}, resolved)
        return MessageOutcome(MessageStatus.STORED, stored, results, alerts)

    def record_edit(
        self, *, event_id: str, message: SlackMessage, claim: InboxClaim | None = None
    ) -> MessageOutcome:
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
        resolved, predicted = self._predict(message)  # before the unit of work: no lock held
        with self._database.begin() as session:
            _mark_handled(session, claim)
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
            results = self._store_predictions(session, stored, predicted)
            alerts = self._alerts.queue(session, results, stored, previous, resolved)
        return MessageOutcome(status, stored, results, alerts)

    def record_deletion(
        self,
        *,
        event_id: str,
        team_id: str,
        channel_id: str,
        ts: str,
        claim: InboxClaim | None = None,
    ) -> MessageOutcome:
        """Mark a message deleted; its predictions and labels are kept.

        Returns:
            ``DELETED``, ``UNKNOWN`` (never stored) or ``DUPLICATE``.
        """
        with self._database.begin() as session:
            _mark_handled(session, claim)
            if not self._first_delivery(session, event_id, "message_deleted", team_id):
                return MessageOutcome(MessageStatus.DUPLICATE)
            existing = messages.find_message(
                session=session, team_id=team_id, channel_id=channel_id, ts=ts
            )
            if existing is None:
                return MessageOutcome(MessageStatus.UNKNOWN)
            deleted = messages.mark_message_deleted(session=session, message_id=existing.id)
        return MessageOutcome(MessageStatus.DELETED, deleted)

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

    def _predict(
        self, message: SlackMessage
    ) -> tuple[dict[str, EffectivePolicy] | None, list[tuple[TaskSpec, Prediction | None]]]:
        """The channel's policies, and a prediction for each task they leave watched.

        An unwatched channel or an exempt author gets no prediction (and so no alert) for
        that task. Outside any unit of work: a model call takes milliseconds to tens of
        milliseconds, and on SQLite a unit of work holds the one write lock (event acks
        wait for it).
        """
        if self._policies is None:
            return None, self._predictor.predict(message.text, self._predictor.task_names)
        resolved = self._policies.for_channel(message.channel_id)
        tasks = self._policies.tasks_to_classify(resolved, message.user_id)
        tasks = tuple(task for task in self._predictor.task_names if task in tasks)
        return resolved, self._predictor.predict(message.text, tasks)

    def _store_predictions(
        self,
        session: Any,
        message: MessageRecord,
        predicted: list[tuple[TaskSpec, Prediction | None]],
    ) -> tuple[TaskResult, ...]:
        return tuple(
            self._predictor.store(session, spec, prediction, message_id=message.id)
            for spec, prediction in predicted
        )

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
        alerts = self._alerts.pending(session, stored)
        if alerts:
            logger.info("message %s has %d unposted alert(s)", stored.id, len(alerts))
        return MessageOutcome(MessageStatus.DUPLICATE, stored, alerts=alerts)


def _mark_handled(session: Any, claim: InboxClaim | None) -> None:
    """The inbox row is done exactly when this unit of work's effects commit."""
    if claim is not None:
        inbox_store.mark_done(session=session, item_id=claim.id)
