"""Serving the Bolt app over HTTP with waitress (threads), for production and tests alike.

Slack posts commands, events and interactions to ``/slack/events``; ``GET /healthz``
answers ``ok`` for load balancers; with metrics, ``GET /metrics`` answers in the Prometheus
format and every request is timed. Bolt's development server is never used.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt import App
from waitress import wasyncore
from waitress.server import create_server

from bot.observability import METRICS_PATH, BotMetrics
from bot.transport.request_checks import KIND_ENVIRON_KEY, CheckedRequestHandler

logger = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
# Slack's largest requests (a 40,000-character message with its blocks) are far smaller;
# waitress answers 413 to a larger Content-Length without reading the body.
MAX_BODY_BYTES = 1024 * 1024

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def make_wsgi_app(app: App, path: str = EVENTS_PATH, metrics: BotMetrics | None = None) -> WsgiApp:
    """The WSGI application: Bolt at ``path`` (malformed requests refused with a 4xx before
    Bolt parses them, see :mod:`bot.transport.request_checks`), a health check, 404 elsewhere.

    With ``metrics``: ``GET /metrics`` serves them, and every request is timed
    (``bertbot_http_request_seconds``, and ``bertbot_ack_seconds`` for what reached Bolt:
    Bolt answers once the listener acked, so the time until the response is the ack's).
    """
    slack = CheckedRequestHandler(app, path=path)
    exposition = metrics.wsgi_app() if metrics is not None else None

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "GET":
            if environ.get("PATH_INFO") == HEALTH_PATH:
                start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
                return [b"ok\n"]
            if exposition is not None and environ.get("PATH_INFO") == METRICS_PATH:
                return exposition(environ, start_response)
        return slack(environ, start_response)

    if metrics is None:
        return application
    return _timed(application, metrics, path)


def _timed(application: WsgiApp, metrics: BotMetrics, path: str) -> WsgiApp:
    """``application``, each call observed by route, status and (for Slack) kind."""

    def timed(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()
        status = "500"  # what waitress answers if the application raises

        def recording_start_response(line: str, *args: Any) -> Any:
            nonlocal status
            status = line.split(" ", 1)[0]
            return start_response(line, *args)

        try:
            return application(environ, recording_start_response)
        finally:
            seconds = time.perf_counter() - started
            kind = environ.get(KIND_ENVIRON_KEY)
            metrics.observe_request(_route(environ.get("PATH_INFO"), path, kind), status, seconds)
            if kind is not None:
                metrics.observe_ack(kind, seconds)

    return timed


def _route(path_info: str | None, events_path: str, kind: str | None) -> str:
    """A bounded route label: never the raw path a client chose."""
    if path_info == events_path:
        return f"{events_path}:{kind}" if kind is not None else events_path
    if path_info in (HEALTH_PATH, METRICS_PATH):
        return path_info
    return "other"


class BotHttpServer:
    """A waitress server for the app on one host and port (port 0 picks a free one), with
    ``/metrics`` when given ``metrics`` (see :func:`make_wsgi_app`).

    ``serve_forever()`` blocks (the ``bertbot serve`` process); ``start()`` serves on a
    background thread (tests); ``close()`` stops either, letting running requests finish.
    """

    def __init__(
        self,
        app: App,
        *,
        host: str = "127.0.0.1",
        port: int = 3000,
        threads: int = 8,
        path: str = EVENTS_PATH,
        metrics: BotMetrics | None = None,
    ) -> None:
        self.path = path
        self._server: Any = create_server(
            make_wsgi_app(app, path, metrics),
            host=host,
            port=port,
            threads=threads,
            ident="bertbot",
            # Slack retries after 3 s; a request stuck longer is of no use to anyone.
            channel_timeout=30,
            # waitress refuses a Content-Length >= this; a body of exactly MAX_BODY_BYTES passes.
            max_request_body_size=MAX_BODY_BYTES + 1,
        )
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def host(self) -> str:
        return str(self._server.effective_host)

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def events_url(self) -> str:
        return self.url + self.path

    def serve_forever(self) -> None:
        """Serve in this thread until :meth:`close` or KeyboardInterrupt."""
        logger.info("serving Slack requests on %s", self.events_url)
        self._server.run()

    def start(self) -> BotHttpServer:
        """Serve on a daemon thread and return at once."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.run, name=f"bertbot-http-{self.port}", daemon=True
            )
            self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stop serving: finish running requests (up to ``timeout``), then close sockets."""
        if self._closed:
            return
        self._closed = True
        self._server.task_dispatcher.shutdown(timeout=timeout)
        server_map = self._server._map
        if self._thread is not None and self._thread.is_alive():
            # Close the sockets on the loop's own thread; the loop ends when its map is empty.
            try:
                self._server.trigger.pull_trigger(lambda: wasyncore.close_all(server_map))
            except OSError as exc:
                # The trigger's pipe is already gone (its fd was closed under it): close the
                # sockets from here; the loop ends at its next poll, with an empty map.
                logger.debug("could not wake the HTTP loop (%s); closing its sockets here", exc)
                wasyncore.close_all(server_map)
            self._thread.join(timeout)
        else:
            wasyncore.close_all(server_map)

    def __enter__(self) -> BotHttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
