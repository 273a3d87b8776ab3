"""Posting moderators' alerts from the outbox: once each, even when a poster dies.

Whoever posts an alert first claims it in the :class:`~bot.services.alert_outbox.AlertOutbox`
(:func:`deliver_alert`), so the handler that stored it and the sweepers of any number of
processes post each alert once; :class:`AlertSweeper` posts what a crash or a Slack error
left pending. Slack has no idempotency key for ``chat.postMessage``: every alert carries its
outbox id in the message's metadata (``event_type`` :data:`ALERT_EVENT`), and an alert that
was tried before is first looked for in the moderators' channel (:func:`find_posted_alert`)
while its claim is renewed; only when Slack cannot be asked is it posted without looking, so
an alert may then appear twice but is never lost.
"""

from __future__ import annotations

import logging
import re
import threading
from datetime import timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.services.alert_outbox import DEFAULT_REACTION, Alert, AlertOutbox, AlertPolicy
from bot.slack_clients import SlackClients, clients_of
from bot.ui import appeal as appeal_ui
from bot.ui import blocks
from bot.ui import policy as policy_ui
from storage.enums import PolicyAction
from storage.errors import StorageError

logger = logging.getLogger(__name__)

# The metadata event type of an alert message; its payload names the outbox row.
ALERT_EVENT = "bertbot_alert"
# How far back a retried alert is looked for: pages of conversations.history (and of
# conversations.list to find a channel given by name).
MAX_LOOKUP_PAGES = 10
_HISTORY_PAGE = 200
# Channel ids are upper case (C0123ABCD, G...); channel names never are.
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,}")


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
            _react(client, _reaction(policy, alert), message.channel_id, message.ts, log)
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
            blocks=[
                *blocks.alert_blocks(alert, permalink=permalink),
                *policy_ui.alert_action_blocks(alert.action),
            ],
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
    take_action(client, alerts, alert, log)
    return True


def take_action(
    client: WebClient, alerts: AlertOutbox, alert: Alert, log: logging.Logger = logger
) -> None:
    """What the channel's policy does beyond the moderators' post, once it is posted.

    ``react`` (and ``alert`` with BERTBOT_ALERT_REACTION) adds an emoji; ``remove`` deletes
    the message with the admin's user token (``alert`` without it); ``notify`` and
    ``remove`` tell the author privately, with an Appeal button. Each step is best effort:
    the alert is posted, and a failed step is logged. They run once, in the call that posted
    the alert: a process that dies between the post and these steps leaves them undone.
    """
    policy = alerts.policy
    message = alert.message
    removed = False
    if alert.action is PolicyAction.REMOVE:
        removed = _remove(client, alerts, alert, log)
    else:
        _react(client, _reaction(policy, alert), message.channel_id, message.ts, log)
    if alert.action in (PolicyAction.NOTIFY, PolicyAction.REMOVE):
        notify_author(client, alert, removed=removed, log=log)


def notify_author(
    client: WebClient, alert: Alert, *, removed: bool, log: logging.Logger = logger
) -> bool:
    """Tell a flagged message's author privately (the app's DM), with an Appeal button.

    Returns:
        True if the notice was posted.
    """
    author = alert.message.user_id
    if not author or alert.alert_id is None:
        return False
    try:
        client.chat_postMessage(
            channel=author,
            text=appeal_ui.notice_text(alert, removed=removed),
            blocks=appeal_ui.notice_blocks(alert, removed=removed),
            unfurl_links=False,
            unfurl_media=False,
        )
    except (SlackClientError, OSError) as exc:
        log.warning("could not notify %s about alert %s: %s", author, alert.alert_id, exc)
        return False
    return True


def admin_client(client: WebClient, token: str) -> WebClient:
    """A Web API client with an admin's user token, at the bot client's address."""
    return WebClient(token=token, base_url=client.base_url, timeout=client.timeout)


def _remove(client: WebClient, alerts: AlertOutbox, alert: Alert, log: logging.Logger) -> bool:
    """Delete the alerted message with the admin's user token (a bot token cannot delete
    other people's messages: ``cant_delete_message``)."""
    token = alerts.policy.admin_token
    message = alert.message
    if not token:
        log.warning(
            "alert %s asks to remove the message, but no admin token is set", alert.alert_id
        )
        return False
    try:
        admin_client(client, token).chat_delete(channel=message.channel_id, ts=message.ts)
    except (SlackClientError, OSError) as exc:
        log.warning("could not remove %s/%s: %s", message.channel_id, message.ts, exc)
        return False
    if alert.alert_id is not None:
        alerts.message_removed(alert.alert_id)
    log.info("removed %s/%s (alert %s)", message.channel_id, message.ts, alert.alert_id)
    return True


def _reaction(policy: AlertPolicy, alert: Alert) -> str | None:
    if alert.action is PolicyAction.REACT:
        return policy.reaction or DEFAULT_REACTION
    if alert.action is PolicyAction.REMOVE:
        return None
    return policy.reaction


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
    it. It sweeps once when started, then every ``interval_s``. Each alert is posted with
    the client of its message's workspace (a rotating token refreshed first).
    """

    def __init__(
        self,
        alerts: AlertOutbox,
        client: WebClient | SlackClients,
        *,
        interval_s: float = 30.0,
        min_age_s: float | None = None,
        batch: int = 50,
    ) -> None:
        """Configure the sweeper.

        Args:
            alerts: The outbox.
            client: The Web API client, or each workspace's (multi-workspace mode).
            interval_s: Seconds between sweeps.
            min_age_s: Only alerts pending at least this long (default: ``interval_s``),
                leaving fresh ones to the request that stored them.
            batch: At most this many alerts per sweep.
        """
        if interval_s <= 0:
            raise ValueError(f"the sweep interval must be positive, got {interval_s!r}")
        self._alerts = alerts
        self._clients = clients_of(client)
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
                client = self._clients.for_team(alert.message.team_id)
                posted += deliver_alert(client, self._alerts, alert)
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
