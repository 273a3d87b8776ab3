"""The Slack side of one retrain job: a progress message that becomes the result card.

Called on the retrain worker thread (never a listener thread), so waiting out Slack's rate
limit here is acceptable. The message is posted with ``chat.postMessage`` in the channel the
command came from and then edited with ``chat.update``, at most every ``min_interval_s``
for progress. When the bot cannot post there (``not_in_channel``, a DM, an archived
channel, ...) it falls back to the command's ``response_url``: private to the admin and
limited by Slack to five messages, so only one progress message goes that way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.webhook import WebhookClient

from bot.services.retrain_requests import JobInfo, RetrainReport
from bot.ui import retrain as admin_blocks
from bot.ui.retrain import Rendered
from trainer.decisions import RetrainProgress

logger = logging.getLogger(__name__)

RESPONSE_URL_LIMIT = 5  # Slack accepts five messages per response_url
_RESPONSE_URL_PROGRESS_LIMIT = 2  # the command's answer and one progress message
_REPOST_ERRORS = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})


class _RateLimited(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited for {retry_after} s")
        self.retry_after = retry_after


class SlackRetrainCard:
    """Reports one job in Slack (a :class:`bot.services.retraining.JobReporter`)."""

    def __init__(
        self,
        client: WebClient | Callable[[], WebClient],
        *,
        channel_id: str | None,
        response_url: str | None,
        min_interval_s: float = 10.0,
        response_url_uses: int = 1,
        max_retries: int = 3,
        max_retry_wait_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Say where to report.

        Args:
            client: The Web API client (its handler already waits out short 429s), or a
                function giving the workspace's client for each call (a rotated token may
                expire while a long retrain runs).
            channel_id: Where the command was typed.
            response_url: The command's response_url (the fallback).
            min_interval_s: Least time between two progress updates.
            response_url_uses: Messages already sent to ``response_url``.
            max_retries: Extra attempts at the final card when Slack still says 429.
            max_retry_wait_s: The longest ``Retry-After`` worth waiting for.
            clock: Monotonic seconds (tests).
            sleep: Waits (tests).
        """
        self._client = client
        self._channel_id = channel_id
        self._response_url = response_url
        self._min_interval_s = min_interval_s
        self._url_uses = response_url_uses
        self._max_retries = max_retries
        self._max_retry_wait_s = max_retry_wait_s
        self._clock = clock
        self._sleep = sleep
        self._channel: str | None = None
        self._ts: str | None = None
        self._via_url = channel_id is None
        self._last_progress: float | None = None

    @property
    def destination(self) -> tuple[str | None, str | None]:
        """(channel_id, response_url): where the card goes, for a worker elsewhere."""
        return self._channel_id, self._response_url

    @property
    def location(self) -> tuple[str | None, str | None]:
        """(channel, ts) of the posted message; (None, None) if it went to response_url."""
        return self._channel, self._ts

    # JobReporter -----------------------------------------------------------------------

    def started(self, job: JobInfo) -> None:
        self._last_progress = self._clock()
        self._show(admin_blocks.progress_message(job, None), final=False)

    def progress(self, job: JobInfo, update: RetrainProgress) -> None:
        now = self._clock()
        if self._last_progress is not None and now - self._last_progress < self._min_interval_s:
            return
        self._last_progress = now
        self._show(admin_blocks.progress_message(job, update), final=False)

    def finished(self, job: JobInfo, report: RetrainReport) -> None:
        self._show(admin_blocks.result_card(report), final=True)

    def failed(self, job: JobInfo, message: str) -> None:
        self._show(admin_blocks.failure_card(job, message), final=True)

    # Delivery ------------------------------------------------------------------------

    def _show(self, content: Rendered, *, final: bool) -> None:
        """Deliver; a progress update is best effort, the final card is retried on 429."""
        attempts = self._max_retries + 1 if final else 1
        for attempt in range(attempts):
            try:
                self._deliver(content, final=final)
                return
            except _RateLimited as exc:
                if attempt + 1 >= attempts or exc.retry_after > self._max_retry_wait_s:
                    logger.warning(
                        "Slack kept rate-limiting the retrain %s; giving up",
                        "card" if final else "progress update",
                    )
                    return
                logger.info("rate limited; retrying the retrain card in %s s", exc.retry_after)
                self._sleep(exc.retry_after)
            except (SlackClientError, OSError):
                logger.warning("could not deliver the retrain message", exc_info=True)
                return

    def _deliver(self, content: Rendered, *, final: bool) -> None:
        if self._ts is not None:
            try:
                self._call("chat_update", channel=self._channel, ts=self._ts, content=content)
                return
            except SlackApiError as exc:
                if _error(exc) not in _REPOST_ERRORS:
                    raise
                logger.info("the retrain message is gone (%s); posting a new one", _error(exc))
                self._ts = None
        if not self._via_url:
            try:
                answer = self._call("chat_postMessage", channel=self._channel_id, content=content)
            except SlackApiError as exc:
                logger.info(
                    "cannot post the retrain message in %s (%s); using the response_url",
                    self._channel_id,
                    _error(exc),
                )
                self._via_url = True
            else:
                self._channel, self._ts = answer.get("channel"), answer.get("ts")
                return
        self._send_to_response_url(content, final=final)

    def _call(self, method: str, *, content: Rendered, **params: Any) -> Any:
        try:
            client = self._client() if callable(self._client) else self._client
            return getattr(client, method)(text=content.text, blocks=content.blocks, **params)
        except SlackApiError as exc:
            if exc.response.status_code == 429:
                raise _RateLimited(_retry_after(exc.response.headers)) from exc
            raise

    def _send_to_response_url(self, content: Rendered, *, final: bool) -> None:
        if not self._response_url:
            logger.warning("the retrain message has nowhere to go (no channel, no response_url)")
            return
        limit = RESPONSE_URL_LIMIT if final else _RESPONSE_URL_PROGRESS_LIMIT
        if self._url_uses >= limit:
            return
        webhook = WebhookClient(
            self._response_url, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)]
        )
        response = webhook.send(
            text=content.text,
            blocks=content.blocks,
            response_type="ephemeral",
            replace_original=False,
        )
        self._url_uses += 1
        if response.status_code == 429:
            raise _RateLimited(_retry_after(response.headers))
        if response.status_code != 200:
            logger.warning(
                "the response_url refused the retrain message: %s %s",
                response.status_code,
                str(response.body)[:200],
            )


def _error(exc: SlackApiError) -> str:
    data = exc.response.data if isinstance(exc.response.data, dict) else {}
    return str(data.get("error") or exc.response.status_code)


def _retry_after(headers: Mapping[str, Any]) -> float:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, list | tuple) else value
            try:
                return max(0.0, float(raw))
            except (TypeError, ValueError):
                break
    return 1.0
