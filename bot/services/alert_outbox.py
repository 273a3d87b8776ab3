"""Moderators' alerts: when a prediction raises one, the outbox that stores it, and posting it.

An alert is queued in the outbox (:meth:`AlertOutbox.queue`) in the same unit of work as the
message and prediction that raise it, before anything is posted. Whoever posts it first
claims it (:meth:`AlertOutbox.claim_alert`), so the listener that stored it, a retried
delivery of the same event and the sweepers of any number of processes post each alert
once (:func:`deliver_alert`). The :class:`AlertSweeper` posts what a crash or a Slack error
left pending. A claim is renewed on a background thread while its poster looks the alert up
in Slack (up to twenty paged calls, far longer than a claim), and checked once more before
the post: a poster whose claim was taken meanwhile never posts.

Slack has no idempotency key for ``chat.postMessage``, so a poster that dies after Slack
took the alert but before marking it posted leaves the row pending. Every alert therefore
carries its outbox id in the message's metadata (``event_type`` :data:`ALERT_EVENT`), and
whoever takes an alert that was tried before first looks for it in the moderators'
channel (``conversations.history``); if it is there, it is marked posted instead of
posted again. Only when Slack cannot be asked (a missing scope, an error) is it posted
without looking, so an alert may then appear twice but is never lost.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.services.predictor import Predictor, TaskResult
from bot.ui import blocks
from storage import alerts as outbox
from storage import messages
from storage.db import Database
from storage.enums import utcnow
from storage.errors import StorageError
from storage.records import AlertRecord, MessageRecord, PredictionRecord
from trainer.tasks import TaskError, TaskSpec

logger = logging.getLogger(__name__)

# How long a claim on an alert holds: far longer than a post to Slack takes (the client
# times out after 10 s), short enough that an alert whose poster died is posted soon. A
# look-up for an earlier try's post can take longer: the claim is renewed while it runs.
ALERT_CLAIM = timedelta(seconds=60)
MAX_ALERT_BACKOFF = timedelta(hours=1)
# The metadata event type of an alert message; its payload names the outbox row.
ALERT_EVENT = "bertbot_alert"
# How far back a retried alert is looked for: pages of conversations.history (and of
# conversations.list to find a channel given by name).
MAX_LOOKUP_PAGES = 10
_HISTORY_PAGE = 200
# Channel ids are upper case (C0123ABCD, G...); channel names never are.
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,}")


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
    ) -> tuple[Alert, ...]:
        """The alerts the new predictions raise, queued in the caller's unit of work.

        Args:
            session: The unit of work that stores the message and its predictions.
            results: The message's new predictions.
            message: The message.
            previous: Its predictions before an edit, by task (empty for a new message):
                moderators were alerted already when one of them crossed the threshold.
        """
        alerts = []
        for result in results:
            alert_label = result.task.alert_label
            if alert_label is None or result.prediction is None or result.prediction_id is None:
                continue
            probability = result.prediction.probabilities.get(alert_label, 0.0)
            if probability < self.policy.threshold:
                continue
            before = previous.get(result.task.name)
            if before is not None and before.scores.get(alert_label, 0.0) >= self.policy.threshold:
                continue  # moderators were alerted about this message already
            queued = outbox.add_alert(
                session=session,
                prediction_id=result.prediction_id,
                label=alert_label,
                channel=self.policy.channel,
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
        )


# Posting ----------------------------------------------------------------------------------


def deliver_alert(
    client: WebClient, alerts: AlertOutbox, alert: Alert, log: logging.Logger = logger
) -> bool:
    """Claim an alert, post it to the moderators' channel, mark it posted, then react.

    Args:
        client: The Web API client.
        alerts: Claims and marks the alert in the outbox.
        alert: The alert (an unstored one, ``alert_id=None``, is posted without a claim).
        log: Where to log.

    Returns:
        True if this call posted it; False if it was posted already or is claimed.

    Raises:
        SlackClientError, OSError: The post failed; the alert stays pending (with a
            back-off) and the error is the caller's to report.
        StorageError: The outbox cannot be reached.
    """
    policy = alerts.policy
    message = alert.message
    channel = alert.channel or policy.channel
    attempt = 1 if alert.alert_id is None else alerts.claim_alert(alert.alert_id)
    if attempt is None:
        log.info("alert %s is posted or being posted elsewhere; skipped", alert.alert_id)
        return False
    if alert.alert_id is not None and attempt > 1:
        # An earlier try may have reached Slack and died before marking it posted. The
        # look-up may outlast the claim: it is renewed meanwhile, and checked after.
        with alerts.holding(alert.alert_id, attempt):
            posted_ts = find_posted_alert(client, alert, channel, log)
        if posted_ts is not None:
            alerts.alert_posted(alert.alert_id, slack_ts=posted_ts)
            log.info(
                "alert %s was posted by an earlier try (ts %s); marked posted, not posted again",
                alert.alert_id,
                posted_ts,
            )
            _react(client, policy.reaction, message.channel_id, message.ts, log)
            return False
        if not alerts.renew_claim(alert.alert_id, attempt):
            log.warning(
                "alert %s was taken by another poster during its look-up; left to it",
                alert.alert_id,
            )
            return False
    try:
        permalink = _permalink(client, message.channel_id, message.ts, log)
        response = client.chat_postMessage(
            channel=channel,
            text=blocks.alert_text(alert),
            blocks=blocks.alert_blocks(alert, permalink=permalink),
            metadata=alert_metadata(alert),
            unfurl_links=False,
            unfurl_media=False,
        )
    except (SlackClientError, OSError) as exc:
        if alert.alert_id is not None:
            retry_at = alerts.alert_failed(alert.alert_id, error=_describe(exc))
            log.warning("alert %s not posted (%s); retry after %s", alert.alert_id, exc, retry_at)
        raise
    if alert.alert_id is not None:
        ts = response.get("ts")
        alerts.alert_posted(alert.alert_id, slack_ts=str(ts) if ts else None)
    log.info(
        "alerted moderators: %s %.2f for %s/%s (prediction %s)",
        alert.label,
        alert.probability,
        message.channel_id,
        message.ts,
        alert.prediction_id,
    )
    _react(client, policy.reaction, message.channel_id, message.ts, log)
    return True


def find_posted_alert(
    client: WebClient, alert: Alert, channel: str, log: logging.Logger = logger
) -> str | None:
    """Look for a stored alert in its channel, posted by a try that did not record it.

    Searches the channel's messages since the alerted message (an alert is always posted
    after it), newest first, at most :data:`MAX_LOOKUP_PAGES` pages, for the metadata
    :func:`deliver_alert` attaches.

    Args:
        client: The Web API client (``channels:history``/``groups:history``, and
            ``channels:read``/``groups:read`` if the channel is given by name).
        alert: A stored alert (``alert_id`` set).
        channel: The channel it goes to, by id or name.
        log: Where to log.

    Returns:
        The alert message's ``ts``, or None if it is not there or Slack cannot tell
        (then it is logged, and posting it again may show it twice).
    """
    try:
        channel_id = _channel_id(client, channel)
        if channel_id is None:
            log.warning("cannot find channel %s to look for alert %s", channel, alert.alert_id)
            return None
        cursor: str | None = None
        for _ in range(MAX_LOOKUP_PAGES):
            response = client.conversations_history(
                channel=channel_id,
                oldest=alert.message.ts,
                limit=_HISTORY_PAGE,
                include_all_metadata=True,
                cursor=cursor,
            )
            for item in response.get("messages") or []:
                if _is_alert_message(item, alert):
                    return str(item["ts"])
            cursor = _next_cursor(response)
            if cursor is None:
                return None
        log.warning(
            "alert %s not found in the last %d messages of %s; posting it",
            alert.alert_id,
            MAX_LOOKUP_PAGES * _HISTORY_PAGE,
            channel,
        )
        return None
    except (SlackClientError, OSError) as exc:
        log.warning(
            "cannot check whether alert %s is in %s already (%s); posting it, it may show twice",
            alert.alert_id,
            channel,
            _describe(exc),
        )
        return None


def alert_metadata(alert: Alert) -> dict[str, Any] | None:
    """The metadata an alert's message carries (None for an alert that was never stored)."""
    if alert.alert_id is None:
        return None
    return {
        "event_type": ALERT_EVENT,
        "event_payload": {
            "alert_id": alert.alert_id,
            "channel": alert.message.channel_id,
            "ts": alert.message.ts,
        },
    }


def _is_alert_message(item: Any, alert: Alert) -> bool:
    # The payload names the alerted message too: another workspace's or deployment's
    # outbox row with the same id is not this alert.
    metadata = item.get("metadata") if isinstance(item, dict) else None
    if not isinstance(metadata, dict) or metadata.get("event_type") != ALERT_EVENT:
        return False
    payload = metadata.get("event_payload")
    return (
        isinstance(payload, dict)
        and payload.get("alert_id") == alert.alert_id
        and payload.get("channel") == alert.message.channel_id
        and payload.get("ts") == alert.message.ts
        and bool(item.get("ts"))
    )


def _channel_id(client: WebClient, channel: str) -> str | None:
    name = channel.lstrip("#")
    if _CHANNEL_ID.fullmatch(name):
        return name
    cursor: str | None = None
    for _ in range(MAX_LOOKUP_PAGES):
        response = client.conversations_list(
            types="public_channel,private_channel",
            exclude_archived=True,
            limit=1000,
            cursor=cursor,
        )
        for item in response.get("channels") or []:
            if isinstance(item, dict) and item.get("name") == name and item.get("id"):
                return str(item["id"])
        cursor = _next_cursor(response)
        if cursor is None:
            break
    return None


def _next_cursor(response: Any) -> str | None:
    cursor = (response.get("response_metadata") or {}).get("next_cursor")
    return str(cursor) if cursor else None


def _react(
    client: WebClient, reaction: str | None, channel_id: str, ts: str, log: logging.Logger
) -> None:
    if not reaction:
        return
    try:
        client.reactions_add(channel=channel_id, timestamp=ts, name=reaction)
    except SlackApiError as exc:  # a decoration: the alert is what matters
        if exc.response.get("error") != "already_reacted":
            log.warning("could not add :%s: to %s: %s", reaction, ts, exc)


class AlertSweeper:
    """Posts alerts left pending for a while, on a background thread of the bot process.

    A process that died between storing a message and posting its alert leaves the alert
    pending; if Slack never retries the event, the sweeper of any running process posts
    it. It sweeps once when started, then every ``interval_s``.
    """

    def __init__(
        self,
        alerts: AlertOutbox,
        client: WebClient,
        *,
        interval_s: float = 30.0,
        min_age_s: float | None = None,
        batch: int = 50,
    ) -> None:
        """Configure the sweeper.

        Args:
            alerts: The outbox.
            client: The Web API client.
            interval_s: Seconds between sweeps.
            min_age_s: Only alerts pending at least this long (default: ``interval_s``),
                leaving fresh ones to the request that stored them.
            batch: At most this many alerts per sweep.
        """
        if interval_s <= 0:
            raise ValueError(f"the sweep interval must be positive, got {interval_s!r}")
        self._alerts = alerts
        self._client = client
        self.interval_s = interval_s
        self._min_age = timedelta(seconds=interval_s if min_age_s is None else min_age_s)
        self._batch = batch
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep(self) -> int:
        """Post the alerts due now, once each.

        Returns:
            How many alerts this call posted.

        Raises:
            StorageError: The outbox cannot be reached (nothing more is tried this sweep).
        """
        posted = 0
        for alert in self._alerts.due_alerts(older_than=self._min_age, limit=self._batch):
            try:
                posted += deliver_alert(self._client, self._alerts, alert)
            except (SlackClientError, OSError):
                # Recorded on the alert with a back-off; the next alerts may still go out.
                logger.exception("the sweeper could not post alert %s", alert.alert_id)
        if posted:
            logger.info("the sweeper posted %d pending alert(s)", posted)
        return posted

    def start(self) -> AlertSweeper:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="bertbot-alert-sweeper", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.sweep()
            except StorageError as exc:  # the database may be back by the next sweep
                logger.warning("the alert sweeper cannot reach the database: %s", exc)
            self._stopping.wait(self.interval_s)


def _permalink(client: WebClient, channel_id: str, ts: str, log: logging.Logger) -> str | None:
    try:
        response = client.chat_getPermalink(channel=channel_id, message_ts=ts)
    except SlackApiError as exc:  # the alert still names the channel and ts
        log.warning("no permalink for %s/%s: %s", channel_id, ts, exc.response.get("error"))
        return None
    permalink = response.get("permalink")
    return str(permalink) if permalink else None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        return f"{exc.response.status_code} {exc.response.get('error')}"
    return f"{type(exc).__name__}: {exc}"
