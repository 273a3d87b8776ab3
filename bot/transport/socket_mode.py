"""Serving the Bolt app over Socket Mode: an outbound WebSocket instead of a public URL.

The same app that :mod:`bot.transport.http` serves over HTTP runs here unchanged: the bot asks
Slack for a WebSocket URL (``apps.connections.open`` with the app-level ``xapp-`` token),
Slack pushes each command, event and interaction as an envelope, and the bot acks the
envelope over the socket. Replies still go out through ``response_url`` and the Web API.

slack_sdk's built-in client is used (no extra dependency); it pings, notices a stale
socket and reconnects on its own. Envelopes are not signed (the socket is authenticated
by the app token), so Bolt skips request verification for them.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from slack_bolt import App

# The helpers every Bolt Socket Mode adapter shares: envelope -> BoltRequest -> ack frame.
from slack_bolt.adapter.socket_mode.internals import run_bolt_app, send_response
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.observability import BotMetrics
from bot.transport.request_checks import envelope_problem, missing_field, request_kind

logger = logging.getLogger(__name__)

APP_TOKEN_PREFIX = "xapp-"

ClientFactory = Callable[[str, WebClient], BaseSocketModeClient]
"""Builds the Socket Mode client from the app token and the Web API client."""


class SocketModeError(Exception):
    """Socket Mode cannot start; the message says what to fix."""


def builtin_client_factory(*, concurrency: int = 8, ping_interval: float = 10.0) -> ClientFactory:
    """slack_sdk's dependency-free client, as Bolt's own ``SocketModeHandler`` builds it.

    Args:
        concurrency: Threads dispatching envelopes to the app (each acks, then hands the
            rest of the listener to the app's executor).
        ping_interval: Seconds between pings; no pong for 4 intervals means a stale socket.
    """

    def factory(app_token: str, web_client: WebClient) -> BaseSocketModeClient:
        return SocketModeClient(
            app_token=app_token,
            web_client=web_client,
            logger=logging.getLogger("bot.transport.socket_mode.client"),
            auto_reconnect_enabled=True,
            ping_interval=ping_interval,
            concurrency=concurrency,
            proxy=web_client.proxy,
        )

    return factory


class SocketModeRunner:
    """Connects a Bolt app to Slack over Socket Mode.

    ``start()`` connects and returns (tests); ``serve_forever()`` connects if needed and
    blocks until :meth:`close` or KeyboardInterrupt (the ``bertbot serve --socket``
    process); ``close()`` disconnects and lets envelopes being dispatched finish.
    """

    def __init__(
        self,
        app: App,
        app_token: str,
        *,
        client_factory: ClientFactory | None = None,
        api_url: str | None = None,
        concurrency: int = 8,
        metrics: BotMetrics | None = None,
    ) -> None:
        """Prepare the connection (nothing is opened until :meth:`start`).

        Args:
            app: The Bolt app (see :func:`bot.app.create_app`).
            app_token: The app-level token (``xapp-...``) with ``connections:write``.
            client_factory: Builds the Socket Mode client; default: slack_sdk's built-in one.
            api_url: Web API base URL for ``apps.connections.open``; default: the app's client's.
            concurrency: Envelope dispatch threads of the default client.
            metrics: Times each envelope's ack (``bertbot_ack_seconds``), from its dispatch
                to its ack sent over the socket.

        Raises:
            SocketModeError: The app token is not an app-level token.
        """
        check_app_token(app_token)
        self.app = app
        self.metrics = metrics
        web_client = app.client if api_url is None else WebClient(base_url=api_url)
        factory = client_factory or builtin_client_factory(concurrency=concurrency)
        self.client = factory(app_token, web_client)
        self.client.socket_mode_request_listeners.append(self._dispatch)
        self._stopped = threading.Event()
        # start() and close() may race (SIGTERM while connecting): a connection made after
        # close() was called is closed at once instead of leaking.
        self._lock = threading.RLock()
        self._started = False
        self._closed = False

    @property
    def session_id(self) -> str | None:
        """The current WebSocket session's id (the built-in client's), if connected."""
        session_id = getattr(self.client, "session_id", None)
        return session_id() if callable(session_id) else None

    def _dispatch(self, client: BaseSocketModeClient, request: SocketModeRequest) -> None:
        # The same shape checks as over HTTP: a payload Slack could never send would raise
        # inside Bolt. It is acked (so it is not redelivered), logged and dropped.
        payload = request.payload
        problem = envelope_problem(payload)
        if problem is None and isinstance(payload, dict):
            problem = missing_field(payload)
        if problem is not None:
            logger.warning("dropping a malformed %s envelope: %s", request.type, problem)
            client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))
            return
        # Bolt acks as soon as the listener calls ack(); the rest of the listener runs on
        # the app's executor, so this thread is free again within milliseconds.
        started = time.time()
        timer = time.perf_counter()
        response = run_bolt_app(self.app, request)
        send_response(client, request, response, started)
        if self.metrics is not None and isinstance(payload, dict):
            self.metrics.observe_ack(request_kind(payload), time.perf_counter() - timer)

    def start(self) -> SocketModeRunner:
        """Open the WebSocket (``apps.connections.open``, then the handshake).

        Raises:
            SocketModeError: Slack refused the token, or no connection could be made.
        """
        with self._lock:
            if self._started or self._stopped.is_set():
                return self
            self._connect()
        logger.info("connected to Slack over Socket Mode (session %s)", self.session_id)
        return self

    def _connect(self) -> None:
        try:
            self.client.connect()
        except SlackApiError as exc:
            self.close()
            error = exc.response.get("error") if exc.response is not None else exc
            raise SocketModeError(
                f"Slack refused the app-level token (SLACK_APP_TOKEN) in apps.connections.open: "
                f"{error}; it needs the connections:write scope and Socket Mode enabled"
            ) from exc
        except (SlackClientError, OSError) as exc:
            self.close()
            raise SocketModeError(f"cannot open a Socket Mode connection: {exc}") from exc
        except BaseException:  # KeyboardInterrupt while connecting: leave no threads behind
            self.close()
            raise
        if not self.client.is_connected():
            # The built-in client logs a failed handshake instead of raising.
            self.close()
            raise SocketModeError(
                "the Socket Mode WebSocket did not connect (see the log above for the reason)"
            )
        self._started = True

    def serve_forever(self) -> None:
        """Serve until :meth:`close` is called or KeyboardInterrupt (SIGINT/SIGTERM) arrives."""
        self.start()
        # A timed wait keeps the main thread responsive to signals.
        while not self._stopped.wait(0.5):
            pass

    def close(self) -> None:
        """Disconnect; envelopes being dispatched finish first. Safe to call twice."""
        self._stopped.set()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._close_client()
        if self._started:
            logger.info("disconnected from Slack's Socket Mode")

    def _close_client(self) -> None:
        client: Any = self.client
        # The built-in client would otherwise take seconds to close: it waits out a 3 s
        # receive timeout and a 1 s queue poll. So: no reconnect, wake the blocked receive,
        # and let the queue poll see `closed` at once. Envelopes not yet dispatched are
        # dropped either way (Slack redelivers unacknowledged events).
        if hasattr(client, "auto_reconnect_enabled"):
            client.auto_reconnect_enabled = False
        _shutdown_socket(getattr(getattr(client, "current_session", None), "sock", None))
        client.closed = True
        queue = getattr(client, "message_queue", None)
        if queue is not None:
            queue.put(None)
        client.close()

    def __enter__(self) -> SocketModeRunner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_socket_mode(
    app: App,
    app_token: str,
    *,
    client_factory: ClientFactory | None = None,
    api_url: str | None = None,
    concurrency: int = 8,
    metrics: BotMetrics | None = None,
) -> None:
    """Serve ``app`` over Socket Mode until KeyboardInterrupt; then disconnect cleanly.

    Arguments as for :class:`SocketModeRunner`.

    Raises:
        SocketModeError: Bad app token, or no connection could be made.
    """
    runner = SocketModeRunner(
        app,
        app_token,
        client_factory=client_factory,
        api_url=api_url,
        concurrency=concurrency,
        metrics=metrics,
    )
    try:
        runner.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        runner.close()


def check_app_token(app_token: str) -> None:
    """Refuse anything but an app-level token (a bot token is the usual mix-up).

    Raises:
        SocketModeError: Empty, or not starting with ``xapp-``.
    """
    if not app_token:
        raise SocketModeError("Socket Mode needs an app-level token (SLACK_APP_TOKEN, xapp-...)")
    if not app_token.startswith(APP_TOKEN_PREFIX):
        kind = "a bot token (xoxb-)" if app_token.startswith("xoxb-") else "not an app-level token"
        raise SocketModeError(
            f"SLACK_APP_TOKEN must be an app-level token starting with xapp-; this is {kind}"
        )


def _shutdown_socket(sock: Any) -> None:
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed: nothing to wake
