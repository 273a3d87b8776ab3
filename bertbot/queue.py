"""Retrain jobs on a task queue: Dramatiq over Redis (``BERTBOT_BROKER_URL``).

Why Dramatiq on Redis (docs/operations.md says more): a retrain runs up to
``BERTBOT_RETRAIN__MAX_MINUTES`` (30 by default) and Dramatiq acknowledges a message only
after its actor returns. Redis has no delivery timeout for Dramatiq's messages: a message
taken by a worker stays in that worker's acknowledgement set for as long as the job runs,
and is given to another worker only when this one stops sending heartbeats for
``heartbeat_timeout`` (it died). RabbitMQ would close the channel of any delivery left
unacknowledged past its ``consumer_timeout`` (30 minutes by default), and Celery on Redis
redelivers an unacknowledged task after its ``visibility_timeout`` to a second worker while
the first still trains.

Only :mod:`bertbot` imports this module (the bot gets an ``enqueue`` callable).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from trainer.jobs import QueueUnavailableError, RetrainJob

logger = logging.getLogger(__name__)

QUEUE = "bertbot-retrain"
ACTOR = "bertbot_retrain"
NAMESPACE = "bertbot"
HEARTBEAT_TIMEOUT_MS = 60_000  # a worker silent this long is dead: its jobs go to another


def make_broker(url: str) -> Any:
    """A Dramatiq Redis broker (no global broker is set)."""
    from dramatiq.brokers.redis import RedisBroker

    return RedisBroker(url=url, namespace=NAMESPACE, heartbeat_timeout=HEARTBEAT_TIMEOUT_MS)


class RetrainQueue:
    """The producer side: ``/retrain`` and the scheduler put jobs here."""

    def __init__(self, url: str, broker: Any | None = None) -> None:
        self._broker = broker if broker is not None else make_broker(url)

    def enqueue(self, job: RetrainJob) -> None:
        """Queue one job.

        Raises:
            QueueUnavailableError: The broker did not take it.
        """
        from dramatiq import Message
        from redis.exceptions import RedisError

        message: Message[None] = Message(
            queue_name=QUEUE,
            actor_name=ACTOR,
            args=(job.to_message(),),
            kwargs={},
            options={},
        )
        try:
            self._broker.enqueue(message)
        except RedisError as exc:
            raise QueueUnavailableError(f"the broker did not take the job: {exc}") from exc
        logger.info("queued the retrain of %s (job %s)", job.task, job.job_id)

    def depth(self) -> int:
        """Jobs waiting (not yet taken by a worker)."""
        return int(self._broker.client.llen(f"{NAMESPACE}:{QUEUE}"))

    def close(self) -> None:
        self._broker.close()


def run_worker(
    url: str,
    handle: Callable[[Mapping[str, Any]], object],
    stop: threading.Event,
    *,
    time_limit_s: float,
    retry_min_s: float,
    retry_max_s: float,
    max_retries: int = 100,
) -> None:
    """Consume retrain jobs with ``handle`` (one at a time) until ``stop`` is set.

    Args:
        url: The broker URL.
        handle: Runs one job's message body; raising makes Dramatiq deliver it again
            after a backoff between ``retry_min_s`` and ``retry_max_s`` (a job another
            worker runs right now, an unreachable database).
        stop: Set to finish the running job and stop.
        time_limit_s: Dramatiq's own limit on one job (its default, 10 minutes, would kill
            a long retrain; the retrain stops itself at its time budget).
        retry_min_s: The least wait before a raised job is delivered again.
        retry_max_s: The longest.
        max_retries: Deliveries after the first, then the job is dead-lettered.
    """
    import dramatiq

    broker = make_broker(url)

    def bertbot_retrain(body: Mapping[str, Any]) -> None:
        handle(body)

    declare = dramatiq.actor(
        broker=broker,
        actor_name=ACTOR,
        queue_name=QUEUE,
        max_retries=max_retries,
        min_backoff=int(retry_min_s * 1000),
        max_backoff=int(retry_max_s * 1000),
        time_limit=int(time_limit_s * 1000),
    )
    declare(bertbot_retrain)
    # One job at a time per worker process: a retrain uses every core it is given.
    worker = dramatiq.Worker(broker, worker_threads=1)
    worker.start()
    logger.info("worker: consuming %s on %s", QUEUE, _safe(url))
    try:
        stop.wait()
    finally:
        logger.info("worker: stopping (the running job finishes first)")
        worker.stop(timeout=int(time_limit_s * 1000))
        broker.close()


def _safe(url: str) -> str:
    """The URL without its password, for logs."""
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.rsplit('@', 1)[-1]}"
    return url
