"""The Prometheus metrics of a bertbot process, each process with its own registry.

:class:`BotMetrics` (``bertbot serve``) and :class:`SchedulerMetrics` (``bertbot
scheduler``) are built once at the entry point and passed down: to the HTTP server and the
Socket Mode runner (requests and acks), to :class:`bot.services.BotServices` and
:class:`bot.services.retraining.RetrainService` as their observer (predictions, batches,
retrains). Nothing here is a module global, so tests build a fresh one each time.

Every metric is named here once, with its labels; the README's "Metrics" section lists them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    make_wsgi_app,
)

from bot.observability.collectors import ProductionVersions, QueueDepths
from storage.records import InboxStats

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# Slack gives up on an ack after 3 s: the buckets are finest around that.
ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 10.0)
HTTP_BUCKETS = ACK_BUCKETS
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
BATCH_WAIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
# A retrain is bounded by BERTBOT_RETRAIN__MAX_MINUTES (minutes to an hour or two).
RETRAIN_BUCKETS = (10, 30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200)


def _new_registry(process: bool) -> CollectorRegistry:
    registry = CollectorRegistry()
    if process:  # the standard process_*, python_info and python_gc_* series
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    return registry


class RetrainMetrics:
    """``bertbot_retrain_runs_total`` and ``bertbot_retrain_seconds``, by task and outcome."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._runs = Counter(
            "bertbot_retrain_runs_total",
            "Retrains that ended in this process, by task and outcome (the run's status: "
            "succeeded = promoted, rejected, skipped, superseded, failed).",
            ("task", "outcome"),
            registry=registry,
        )
        self._seconds = Histogram(
            "bertbot_retrain_seconds",
            "How long retrains that ended in this process ran, by task and outcome.",
            ("task", "outcome"),
            buckets=RETRAIN_BUCKETS,
            registry=registry,
        )

    def retrain_finished(self, task: str, outcome: str, seconds: float) -> None:
        """Count a retrain that ended (a :class:`bot.services.observer.RetrainObserver`)."""
        self._runs.labels(task, outcome).inc()
        self._seconds.labels(task, outcome).observe(seconds)


class _Exposed:
    """A registry and how to serve it."""

    registry: CollectorRegistry

    def wsgi_app(self) -> WsgiApp:
        """A WSGI app answering GET with this registry in the Prometheus text format (or
        OpenMetrics, when the scraper asks for it): prometheus_client's own exposition."""
        app: WsgiApp = make_wsgi_app(self.registry)
        return app


class SchedulerMetrics(_Exposed):
    """The ``bertbot scheduler`` process's metrics: its retrains (and the process's own)."""

    def __init__(self, *, process: bool = True) -> None:
        """Create the registry and its metrics.

        Args:
            process: Also export the standard ``process_*`` and ``python_*`` series.
        """
        self.registry = _new_registry(process)
        self._retrains = RetrainMetrics(self.registry)

    def retrain_finished(self, task: str, outcome: str, seconds: float) -> None:
        self._retrains.retrain_finished(task, outcome, seconds)


class BotMetrics(_Exposed):
    """The ``bertbot serve`` process's metrics.

    Thread-safe. It is the services' observer (:mod:`bot.services.observer`): pass it to
    ``BotServices(observer=...)`` and ``RetrainService(observer=...)``; the transports call
    :meth:`observe_request` and :meth:`observe_ack`. What is read at scrape time (production
    versions, queue depths) is attached with :meth:`watch_production` and
    :meth:`watch_queues` once the services exist.
    """

    def __init__(self, *, process: bool = True) -> None:
        """Create the registry and its metrics.

        Args:
            process: Also export the standard ``process_*`` and ``python_*`` series.
        """
        self.registry = _new_registry(process)
        registry = self.registry
        self._requests = Histogram(
            "bertbot_http_request_seconds",
            "HTTP requests, by route and status code, from the server handing the request "
            "to the app until the app returned its response. Routes: /slack/events:<kind>, "
            "/slack/events (refused before Bolt), /healthz, /metrics, other.",
            ("route", "status"),
            buckets=HTTP_BUCKETS,
            registry=registry,
        )
        self._acks = Histogram(
            "bertbot_ack_seconds",
            "Time from a Slack request reaching the app (HTTP) or its envelope being "
            "dispatched (Socket Mode) until Bolt's ack was ready to send, by kind: command, "
            "event, action, view, options, shortcut, other.",
            ("kind",),
            buckets=ACK_BUCKETS,
            registry=registry,
        )
        self._batch_size = Histogram(
            "bertbot_batch_size",
            "Texts per batch a task's model predicted together.",
            ("task",),
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self._batch_wait = Histogram(
            "bertbot_batch_wait_seconds",
            "How long each caller waited for its batch to start, by task.",
            ("task",),
            buckets=BATCH_WAIT_BUCKETS,
            registry=registry,
        )
        self._predictions = Counter(
            "bertbot_predictions_total",
            "Predictions stored (committed), by task, predicted label and model version.",
            ("task", "label", "model_version"),
            registry=registry,
        )
        self._retrains = RetrainMetrics(registry)

    # The transports ------------------------------------------------------------------

    def observe_request(self, route: str, status: str, seconds: float) -> None:
        """One HTTP request answered (``bertbot_http_request_seconds``)."""
        self._requests.labels(route, status).observe(seconds)

    def observe_ack(self, kind: str, seconds: float) -> None:
        """One Slack request acknowledged (``bertbot_ack_seconds``)."""
        self._acks.labels(kind).observe(seconds)

    # The services' observer --------------------------------------------------------------

    def prediction_stored(self, task: str, label: str, model_version: str) -> None:
        self._predictions.labels(task, label, model_version).inc()

    def observe_batch(self, task: str, size: int, waits_s: Sequence[float]) -> None:
        """One batch: its size, and each caller's wait for it to start."""
        self._batch_size.labels(task).observe(size)
        wait = self._batch_wait.labels(task)
        for seconds in waits_s:
            wait.observe(seconds)

    def retrain_finished(self, task: str, outcome: str, seconds: float) -> None:
        self._retrains.retrain_finished(task, outcome, seconds)

    # Read at scrape time -------------------------------------------------------------

    def watch_production(self, versions: Callable[[], Mapping[str, str]]) -> None:
        """Export ``bertbot_production_version_info`` from ``versions()`` (task -> version
        served now, ``ProductionModels.versions``) at each scrape."""
        self.registry.register(ProductionVersions(versions))

    def watch_queues(
        self,
        *,
        inbox: Callable[[], InboxStats],
        alert_outbox: Callable[[], int],
        max_age_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Export ``bertbot_inbox_depth`` and ``bertbot_alert_outbox_depth`` at each scrape.

        Args:
            inbox: Reads the inbox's counts (``Inbox.stats``).
            alert_outbox: Reads how many alerts wait to be posted (``AlertOutbox.depth``).
            max_age_s: A read is reused for this long, so scrapes do not hammer the database.
            clock: Monotonic seconds (tests).
        """
        self.registry.register(QueueDepths(inbox, alert_outbox, max_age_s=max_age_s, clock=clock))
