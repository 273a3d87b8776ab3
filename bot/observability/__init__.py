"""Metrics in the Prometheus format: what each process exports, and where.

``metrics`` names every metric once (:class:`BotMetrics` for ``bertbot serve``,
:class:`SchedulerMetrics` for ``bertbot scheduler``, each with its own registry, built at the
entry point and passed down); ``collectors`` reads production versions and queue depths at
scrape time; ``server`` serves a registry on a port of its own where there is no HTTP server
to add ``/metrics`` to (Socket Mode, the scheduler).
"""

from __future__ import annotations

from bot.observability.metrics import BotMetrics, SchedulerMetrics
from bot.observability.server import METRICS_PATH, MetricsServer

__all__ = ["METRICS_PATH", "BotMetrics", "MetricsServer", "SchedulerMetrics"]
