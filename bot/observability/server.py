"""A metrics port of its own, for processes without an HTTP server (Socket Mode, scheduler).

``bertbot serve --http`` answers ``GET /metrics`` on its Slack port instead (see
:func:`bot.transport.http.make_wsgi_app`).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

logger = logging.getLogger(__name__)

METRICS_PATH = "/metrics"


class MetricsServer:
    """prometheus_client's threaded HTTP server for one registry, on a background thread.

    It answers GET on any path (``/metrics`` by convention). ``start()`` binds and serves
    (port 0 picks a free one); ``close()`` stops it. Safe to close twice.
    """

    def __init__(
        self, registry: CollectorRegistry, *, host: str = "127.0.0.1", port: int = 9464
    ) -> None:
        self._registry = registry
        self._host = host
        self._port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> MetricsServer:
        """Bind and serve.

        Raises:
            OSError: The address cannot be bound (the port is taken, say).
        """
        if self._server is None:
            self._server, self._thread = start_http_server(
                self._port, addr=self._host, registry=self._registry
            )
            logger.info("serving metrics on %s", self.url)
        return self

    @property
    def port(self) -> int:
        return int(self._server.server_port) if self._server is not None else self._port

    @property
    def url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}{METRICS_PATH}"

    def close(self, timeout: float = 5.0) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
