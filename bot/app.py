"""The Bolt app factory: an injected Web API client and services, no globals.

``bertbot serve --http`` and the tests build the app the same way::

    client = make_client(token, base_url=settings.slack.api_url)
    app = create_app(BotConfig(signing_secret=secret), services, client)

Multi-workspace mode passes ``oauth`` (Bolt's OAuth settings, see :mod:`bot.oauth`), a client
without a token, and ``clients`` (:class:`bot.slack_clients.InstallationClients`).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_bolt.context.respond import Respond
from slack_bolt.oauth.oauth_settings import OAuthSettings
from slack_bolt.response import BoltResponse
from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from bot import listeners
from bot.listeners.describe import describe_request
from bot.services import BotServices
from bot.services.retraining import RetrainService
from bot.services.status import StatusService
from bot.slack_clients import CLIENTS_CONTEXT_KEY, SingleTokenClients, SlackClients
from bot.ui import blocks

logger = logging.getLogger(__name__)

# How long the error handler waits for Bolt to send an ack given before an error.
ACK_SETTLE_S = 0.2


@dataclass(frozen=True)
class BotConfig:
    """How the Bolt app runs.

    Attributes:
        signing_secret: Verifies that requests come from Slack (v0 HMAC-SHA256).
        listener_threads: Threads running listeners after their ack (when no executor is given).
        verify_token: Call ``auth.test`` when the app is built, failing fast on a bad token.
    """

    signing_secret: str
    listener_threads: int = 8
    verify_token: bool = True

    def __post_init__(self) -> None:
        if not self.signing_secret:
            raise ValueError("a signing secret is required to verify Slack's requests")
        if self.listener_threads < 1:
            raise ValueError("listener_threads must be at least 1")


class ShortRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """Waits out a 429 only when Slack's ``Retry-After`` is short.

    Calls run on listener threads: sleeping there for a minute would starve the pool, so
    a long ``Retry-After`` fails the call at once (and the error is logged) instead.
    """

    def __init__(self, max_retry_count: int = 2, max_wait_s: int = 5) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait_s = max_wait_s

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if not super()._can_retry(state=state, request=request, response=response, error=error):
            return False
        assert response is not None  # a 429 has a response
        for name, values in response.headers.items():
            if name.lower() == "retry-after":
                try:
                    return int(values[0]) <= self.max_wait_s
                except (ValueError, IndexError):
                    return True
        return True


def make_client(
    token: str | None,
    *,
    base_url: str,
    timeout: int = 10,
    rate_limit_retries: int = 2,
    max_rate_limit_wait_s: int = 5,
) -> WebClient:
    """A Web API client that waits out Slack's short rate limits (429 + Retry-After).

    Args:
        token: The bot token (``xoxb-...``); None for a client that names its token per call
            (OAuth mode: Bolt's per-request clients, ``oauth.v2.access``).
        base_url: The Web API base URL (``https://slack.com/api/`` or the fake's).
        timeout: Seconds per HTTP call.
        rate_limit_retries: How many 429 answers to wait out per call.
        max_rate_limit_wait_s: The longest ``Retry-After`` worth waiting for on a listener
            thread; a longer one fails the call.
    """
    client = WebClient(token=token, base_url=base_url, timeout=timeout)
    client.retry_handlers.append(
        ShortRateLimitRetryHandler(rate_limit_retries, max_wait_s=max_rate_limit_wait_s)
    )
    return client


def create_app(
    config: BotConfig,
    services: BotServices,
    client: WebClient,
    *,
    executor: Executor | None = None,
    status: StatusService | None = None,
    retraining: RetrainService | None = None,
    clients: SlackClients | None = None,
    oauth: OAuthSettings | None = None,
) -> App:
    """Build the Bolt app with every listener registered.

    Listeners ack first; Bolt then runs the rest on ``executor`` (``process_before_response``
    is off), so Slack gets its answer in milliseconds whatever the listener does next. Event
    callbacks are stored in ``services.inbox`` before their ack and handled on ``executor``
    after it; run an :class:`bot.services.inbox.InboxSweeper` beside the app to retry them.

    Args:
        config: Signing secret and threading.
        services: The business logic the listeners call.
        client: The Web API client (see :func:`make_client`).
        executor: Runs listeners after their ack; the caller shuts it down. Default: a
            thread pool of ``config.listener_threads``.
        status: Serves ``/bertbot status``, the App Home tab and the "Label with bertbot"
            shortcut; without it those surfaces are not registered.
        retraining: Runs ``/retrain`` jobs and the result card's buttons; listeners find it
            in Bolt's context. Without it ``/retrain`` answers that it is not enabled here.
        clients: Each workspace's client for work after the request (the inbox's handling,
            retrain cards); in Bolt's context as :data:`CLIENTS_CONTEXT_KEY`. Default:
            ``client`` for every workspace.
        oauth: Multi-workspace mode: ``GET /slack/install`` and ``/slack/oauth_redirect``,
            and each request authorised with its workspace's token from the installation
            store (``client`` then carries no token, and ``verify_token`` does not apply).

    Raises:
        slack_bolt.error.BoltError: ``verify_token`` is on and Slack rejects the token.
    """
    listener_executor = executor or ThreadPoolExecutor(
        config.listener_threads, thread_name_prefix="bertbot-listener"
    )
    app = App(
        name="bertbot",
        client=client,
        signing_secret=config.signing_secret,
        process_before_response=False,
        request_verification_enabled=True,
        token_verification_enabled=config.verify_token and oauth is None,
        listener_executor=listener_executor,
        logger=logging.getLogger("bot.listeners"),
        oauth_settings=oauth,
        installation_store_bot_only=True if oauth is not None else None,
    )
    per_team = clients if clients is not None else SingleTokenClients(client)

    def provide_clients(context: BoltContext, next: Callable[[], BoltResponse]) -> BoltResponse:
        context[CLIENTS_CONTEXT_KEY] = per_team
        return next()

    app.middleware(provide_clients)
    if retraining is not None:
        app.middleware(retraining.middleware)
    listeners.register(app, services, executor=listener_executor, status=status, clients=per_team)
    app.error(handle_error)
    return app


def handle_error(
    error: Exception,
    body: dict[str, Any],
    logger: logging.Logger,
    respond: Respond | None,
    ack: Ack | None = None,
) -> None:
    """The one catch-all: log with context and a reference; tell the user only that."""
    reference = uuid.uuid4().hex[:8]
    logger.error(
        "unhandled error %s (ref %s): %s",
        type(error).__name__,
        reference,
        describe_request(body),
        exc_info=error,
    )
    if ack is not None and ack.response is not None:
        # The listener raised after ack(). Bolt (1.2x thread_runner) resets the ack once this
        # handler returns, and its request thread polls for the ack every 10 ms: if it has
        # not seen it yet, Slack gets a 404 after 3 s instead of the 200 already given.
        # Holding this worker thread briefly lets the request thread answer first.
        time.sleep(ACK_SETTLE_S)
    if respond is None or not respond.response_url:
        return
    try:
        respond(
            text=blocks.error_text(reference),
            response_type="ephemeral",
            replace_original=False,
        )
    except (SlackClientError, OSError):
        logger.warning("could not tell the user about error %s", reference, exc_info=True)
