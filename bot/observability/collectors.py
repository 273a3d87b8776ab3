"""Metrics read when Prometheus scrapes: production versions, and the queues' depths.

The queue depths come from the database. A read is reused for a few seconds, so that
frequent scrapes (or several scrapers) cost one query per interval; a read that fails is
logged and left out of the scrape (the other metrics are still served), and is not tried
again before the interval ends, so a struggling database is not hammered either.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

from prometheus_client.metrics_core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from storage.enums import InboxStatus
from storage.errors import StorageError
from storage.records import InboxStats

logger = logging.getLogger(__name__)

T = TypeVar("T")

# The inbox's rows that still wait for something: handled (done) rows are history.
INBOX_DEPTH_STATUSES = (InboxStatus.PENDING, InboxStatus.WORKING, InboxStatus.DEAD)


class ProductionVersions(Collector):
    """``bertbot_production_version_info{task, version} 1`` per task with a model loaded."""

    def __init__(self, versions: Callable[[], Mapping[str, str]]) -> None:
        self._versions = versions

    def describe(self) -> list[Metric]:
        return [self._family()]

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for task, version in sorted(self._versions().items()):
            family.add_metric([task], {"version": version})
        yield family

    @staticmethod
    def _family() -> InfoMetricFamily:
        return InfoMetricFamily(
            "bertbot_production_version",
            "The model version each task's production alias points to, as loaded in this "
            "process (value 1).",
            labels=["task"],
        )


class CachedRead(Generic[T]):
    """A database read, reused for ``max_age_s``; None while the last try failed.

    Thread-safe: concurrent scrapes wait for one read instead of making their own.
    """

    def __init__(
        self,
        name: str,
        read: Callable[[], T],
        *,
        max_age_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._name = name
        self._read = read
        self._max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._value: T | None = None
        self._read_at: float | None = None

    def get(self) -> T | None:
        with self._lock:
            now = self._clock()
            if self._read_at is not None and now - self._read_at < self._max_age_s:
                return self._value
            try:
                self._value = self._read()
            except StorageError as exc:
                logger.warning(
                    "metrics: cannot read the %s, left out of the scrape: %s", self._name, exc
                )
                self._value = None
            self._read_at = now
            return self._value


class QueueDepths(Collector):
    """``bertbot_inbox_depth{status}`` and ``bertbot_alert_outbox_depth``, read at scrape."""

    def __init__(
        self,
        inbox: Callable[[], InboxStats],
        alert_outbox: Callable[[], int],
        *,
        max_age_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inbox = CachedRead("inbox", inbox, max_age_s=max_age_s, clock=clock)
        self._outbox = CachedRead("alert outbox", alert_outbox, max_age_s=max_age_s, clock=clock)

    def describe(self) -> list[Metric]:
        return [self._inbox_family(), self._outbox_family()]

    def collect(self) -> Iterator[Metric]:
        inbox = self._inbox_family()
        stats = self._inbox.get()
        if stats is not None:
            for status in INBOX_DEPTH_STATUSES:
                inbox.add_metric([status.value], getattr(stats, status.value))
        yield inbox
        outbox = self._outbox_family()
        depth = self._outbox.get()
        if depth is not None:
            outbox.add_metric([], depth)
        yield outbox

    @staticmethod
    def _inbox_family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "bertbot_inbox_depth",
            "Slack event deliveries in the durable inbox, by status: pending (waiting, or "
            "waiting out a retry's back-off), working (claimed by a process), dead (gave up; "
            "bertbot inbox retry).",
            labels=["status"],
        )

    @staticmethod
    def _outbox_family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "bertbot_alert_outbox_depth",
            "Moderators' alerts stored and not posted yet (claimed or not).",
        )
