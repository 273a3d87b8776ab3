"""Posting moderators' alerts from the outbox: after a message is stored, and by a sweeper.

Every alert is stored (pending) with its prediction before anything is posted. Whoever
posts it first claims it (:meth:`BotServices.claim_alert`), so the listener that stored
it, a retried delivery of the same event and the sweepers of any number of processes
post each alert once. The sweeper posts what a crash or a Slack error left pending.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot import blocks
from bot.services import Alert, BotServices
from storage.errors import StorageError

logger = logging.getLogger(__name__)


def deliver_alert(
    client: WebClient, services: BotServices, alert: Alert, log: logging.Logger = logger
) -> bool:
    """Claim an alert, post it to the moderators' channel, mark it posted, then react.

    Args:
        client: The Web API client.
        services: Claims and marks the alert in the outbox.
        alert: The alert (an unstored one, ``alert_id=None``, is posted without a claim).
        log: Where to log.

    Returns:
        True if this call posted it; False if it was posted already or is claimed.

    Raises:
        SlackClientError, OSError: The post failed; the alert stays pending (with a
            back-off) and the error is the caller's to report.
        StorageError: The outbox cannot be reached.
    """
    policy = services.alerts
    message = alert.message
    if alert.alert_id is not None and not services.claim_alert(alert.alert_id):
        log.info("alert %s is posted or being posted elsewhere; skipped", alert.alert_id)
        return False
    try:
        permalink = _permalink(client, message.channel_id, message.ts, log)
        response = client.chat_postMessage(
            channel=alert.channel or policy.channel,
            text=blocks.alert_text(alert),
            blocks=blocks.alert_blocks(alert, permalink=permalink),
            unfurl_links=False,
            unfurl_media=False,
        )
    except (SlackClientError, OSError) as exc:
        if alert.alert_id is not None:
            retry_at = services.alert_failed(alert.alert_id, error=_describe(exc))
            log.warning("alert %s not posted (%s); retry after %s", alert.alert_id, exc, retry_at)
        raise
    if alert.alert_id is not None:
        ts = response.get("ts")
        services.alert_posted(alert.alert_id, slack_ts=str(ts) if ts else None)
    log.info(
        "alerted moderators: %s %.2f for %s/%s (prediction %s)",
        alert.label,
        alert.probability,
        message.channel_id,
        message.ts,
        alert.prediction_id,
    )
    if policy.reaction:
        try:
            client.reactions_add(
                channel=message.channel_id, timestamp=message.ts, name=policy.reaction
            )
        except SlackApiError as exc:  # a decoration: the alert is what matters
            if exc.response.get("error") != "already_reacted":
                log.warning("could not add :%s: to %s: %s", policy.reaction, message.ts, exc)
    return True


class AlertSweeper:
    """Posts alerts left pending for a while, on a background thread of the bot process.

    A process that died between storing a message and posting its alert leaves the alert
    pending; if Slack never retries the event, the sweeper of any running process posts
    it. It sweeps once when started, then every ``interval_s``.
    """

    def __init__(
        self,
        services: BotServices,
        client: WebClient,
        *,
        interval_s: float = 30.0,
        min_age_s: float | None = None,
        batch: int = 50,
    ) -> None:
        """Configure the sweeper.

        Args:
            services: The outbox.
            client: The Web API client.
            interval_s: Seconds between sweeps.
            min_age_s: Only alerts pending at least this long (default: ``interval_s``),
                leaving fresh ones to the request that stored them.
            batch: At most this many alerts per sweep.
        """
        if interval_s <= 0:
            raise ValueError(f"the sweep interval must be positive, got {interval_s!r}")
        self._services = services
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
        for alert in self._services.due_alerts(older_than=self._min_age, limit=self._batch):
            try:
                posted += deliver_alert(self._client, self._services, alert)
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
