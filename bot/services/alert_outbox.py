"""Moderators' alerts: when a prediction raises one, and the outbox that stores it.

An alert is queued in the outbox (:meth:`AlertOutbox.queue`) in the same unit of work as the
message and prediction that raise it, before anything is posted. Whoever posts it first
claims it (:meth:`AlertOutbox.claim_alert`); a claim is renewed while its poster looks the
alert up in Slack and checked once more before the post, so a poster whose claim was taken
meanwhile never posts. Posting, and finding an alert a dead poster left behind, is
:mod:`bot.services.alert_posting`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.services.policy import EffectivePolicy
from bot.services.predictor import Predictor, TaskResult
from storage import alerts as outbox
from storage import messages
from storage.db import Database
from storage.enums import PolicyAction, utcnow
from storage.errors import StorageError
from storage.records import AlertRecord, MessageRecord, PredictionRecord
from trainer.tasks import TaskError, TaskSpec

logger = logging.getLogger(__name__)

# How long a claim on an alert holds: far longer than a post to Slack takes (the client
# times out after 10 s), short enough that an alert whose poster died is posted soon. A
# look-up for an earlier try's post can take longer: the claim is renewed while it runs.
ALERT_CLAIM = timedelta(seconds=60)
MAX_ALERT_BACKOFF = timedelta(hours=1)
# The emoji of the ``react`` action when BERTBOT_ALERT_REACTION names none.
DEFAULT_REACTION = "warning"


@dataclass(frozen=True)
class AlertPolicy:
    """When and where moderators are alerted about a message.

    Attributes:
        channel: The moderators' channel (an id such as ``C0123ABCD`` or a name).
        threshold: Alert when P(the task's alert label) is at least this.
        reaction: An emoji name to add to an alerted message, if any (the ``react``
            action uses it too, else :data:`DEFAULT_REACTION`).
        retry_seconds: After a failed post, no one tries that alert again for this long;
            the wait doubles with each failed attempt (up to an hour).
        admin_token: An admin's user token (``xoxp-``, user scope ``chat:write``): the
            ``remove`` action deletes other people's messages with it.
    """

    channel: str = "moderators"
    threshold: float = 0.8
    reaction: str | None = None
    retry_seconds: float = 30.0
    admin_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"alert threshold must be in (0, 1], got {self.threshold!r}")
        if self.retry_seconds < 0:
            raise ValueError(f"alert retry_seconds must be >= 0, got {self.retry_seconds!r}")


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
    action: PolicyAction = PolicyAction.ALERT
    removed: bool = False


class AlertOutbox:
    """The alerts waiting to be posted: queued with their message, claimed, marked posted.

    Thread-safe: it keeps no per-request state; each call runs its own unit of work, except
    :meth:`queue` and :meth:`pending`, which join the caller's.
    """

    def __init__(
        self,
        database: Database,
        predictor: Predictor,
        policy: AlertPolicy,
        *,
        claim: timedelta = ALERT_CLAIM,
    ) -> None:
        """Wire the outbox.

        Args:
            database: Where the outbox rows are.
            predictor: The active tasks (an alert names its task).
            policy: When and where to alert moderators.
            claim: How long a claim holds unless renewed (:data:`ALERT_CLAIM`).
        """
        if claim <= timedelta(0):
            raise ValueError(f"an alert claim must last, got {claim!r}")
        self._database = database
        self._predictor = predictor
        self.policy = policy
        self.claim = claim

    def queue(
        self,
        session: Any,
        results: Sequence[TaskResult],
        message: MessageRecord,
        previous: Mapping[str, PredictionRecord],
        policies: Mapping[str, EffectivePolicy] | None = None,
    ) -> tuple[Alert, ...]:
        """The alerts the new predictions raise, queued in the caller's unit of work.

        Args:
            session: The unit of work that stores the message and its predictions.
            results: The message's new predictions.
            message: The message.
            previous: Its predictions before an edit, by task (empty for a new message):
                moderators were alerted already when one of them crossed the threshold.
            policies: The channel's policy per task (threshold and action); a task not in
                it uses :attr:`policy`'s threshold and the ``alert`` action.
        """
        alerts = []
        for result in results:
            alert_label = result.task.alert_label
            if alert_label is None or result.prediction is None or result.prediction_id is None:
                continue
            channel_policy = (policies or {}).get(result.task.name)
            threshold = (
                self.policy.threshold if channel_policy is None else channel_policy.threshold
            )
            action = PolicyAction.ALERT if channel_policy is None else channel_policy.action
            if action is PolicyAction.LOG:
                continue  # stored, never posted
            probability = result.prediction.probabilities.get(alert_label, 0.0)
            if probability < threshold:
                continue
            before = previous.get(result.task.name)
            if before is not None and before.scores.get(alert_label, 0.0) >= threshold:
                continue  # moderators were alerted about this message already
            queued = outbox.add_alert(
                session=session,
                prediction_id=result.prediction_id,
                label=alert_label,
                channel=self.policy.channel,
                action=action,
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
                    action=queued.action,
                )
            )
        return tuple(alerts)

    def pending(self, session: Any, message: MessageRecord) -> tuple[Alert, ...]:
        """A stored message's alerts not posted yet, in the caller's unit of work."""
        records = outbox.pending_alerts(session=session, message_id=message.id)
        return tuple(
            alert
            for alert in (self._stored_alert(session, record, message) for record in records)
            if alert is not None
        )

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

    def depth(self) -> int:
        """How many alerts wait to be posted (claimed or not; not those about deleted
        messages, which are never posted)."""
        with self._database.begin() as session:
            return outbox.unposted_count(session=session)

    def claim_alert(self, alert_id: int) -> int | None:
        """Take an alert for posting (committed at once).

        The claim lapses after :attr:`claim` if the claimer dies before posting.

        Returns:
            Which attempt this is (1: no one tried to post it before), or None: it is
            posted already or someone else holds it. The attempt is the claim's token
            for :meth:`renew_claim`.
        """
        with self._database.begin() as session:
            if not outbox.claim_alert(session=session, alert_id=alert_id, ttl=self.claim):
                return None
            return outbox.get_alert(session=session, alert_id=alert_id).attempts

    def renew_claim(self, alert_id: int, attempt: int) -> bool:
        """Hold a claimed alert for another :attr:`claim` (committed at once).

        Returns:
            False if the alert is posted or someone claimed it since ``attempt``: the
            caller must not post it.
        """
        with self._database.begin() as session:
            return outbox.renew_alert_claim(
                session=session, alert_id=alert_id, attempt=attempt, ttl=self.claim
            )

    @contextmanager
    def holding(self, alert_id: int, attempt: int) -> Iterator[None]:
        """Keep a claim from lapsing while the block runs (a slow look-up in Slack).

        A background thread renews it every third of :attr:`claim`, until the block ends
        or the claim turns out to be someone else's. A renewal that cannot reach the
        database is tried again at the next beat; whatever happens, the poster checks the
        claim again (:meth:`renew_claim`) before it posts.
        """
        stop = threading.Event()
        beat = self.claim.total_seconds() / 3

        def renew() -> None:
            while not stop.wait(beat):
                try:
                    if not self.renew_claim(alert_id, attempt):
                        logger.warning("alert %s: the claim was taken by another poster", alert_id)
                        return
                except StorageError as exc:
                    logger.warning("alert %s: cannot renew the claim (%s)", alert_id, exc)

        thread = threading.Thread(target=renew, name=f"bertbot-alert-claim-{alert_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def alert_posted(self, alert_id: int, *, slack_ts: str | None) -> None:
        """Record that a claimed alert is in Slack: it is never posted again."""
        with self._database.begin() as session:
            outbox.mark_alert_posted(session=session, alert_id=alert_id, slack_ts=slack_ts)

    def message_removed(self, alert_id: int) -> None:
        """Record that the alerted message was deleted by the ``remove`` action."""
        with self._database.begin() as session:
            outbox.mark_message_removed(session=session, alert_id=alert_id)

    def alert_failed(self, alert_id: int, *, error: str) -> datetime | None:
        """Give a claimed alert back after a failed post; it is tried again after a back-off.

        Returns:
            When it may be tried again.
        """
        with self._database.begin() as session:
            attempts = outbox.get_alert(session=session, alert_id=alert_id).attempts
            backoff = timedelta(seconds=self.policy.retry_seconds * 2 ** max(attempts - 1, 0))
            retry_at = utcnow() + min(backoff, MAX_ALERT_BACKOFF)
            outbox.release_alert(session=session, alert_id=alert_id, error=error, retry_at=retry_at)
        return retry_at

    def _stored_alert(
        self, session: Any, record: AlertRecord, message: MessageRecord | None = None
    ) -> Alert | None:
        """An outbox row as the alert to post (with its prediction and message)."""
        prediction = messages.get_prediction(session=session, prediction_id=record.prediction_id)
        if prediction.message_id is None:  # pragma: no cover - alerts are about messages
            return None
        if message is None or message.id != prediction.message_id:
            message = messages.get_message(session=session, message_id=prediction.message_id)
        spec = self._predictor.task(prediction.task)
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
            action=record.action,
            removed=record.removed_at is not None,
        )


# Posting ----------------------------------------------------------------------------------
