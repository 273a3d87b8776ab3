"""Retrain jobs through a real Redis broker (skipped when Redis is unreachable)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

import pytest

from bertbot.queue import RetrainQueue, make_broker, run_worker
from trainer.jobs import ADMIN, QueueUnavailableError, RetrainJob

REDIS_URL = "redis://127.0.0.1:6379/15"


def _redis_or_skip() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis is unreachable at {REDIS_URL}: {exc}")


def test_a_queued_job_reaches_a_worker_and_a_raised_one_comes_back() -> None:
    _redis_or_skip()
    broker = make_broker(REDIS_URL)
    broker.client.flushdb()
    queue = RetrainQueue(REDIS_URL, broker=broker)
    seen: list[dict[str, Any]] = []
    attempts: dict[str, int] = {}

    def handle(body: Mapping[str, Any]) -> None:
        job = RetrainJob.from_message(body)
        attempts[job.job_id] = attempts.get(job.job_id, 0) + 1
        if job.requested_by == "UBUSY" and attempts[job.job_id] == 1:
            raise RuntimeError("running elsewhere")  # delivered again after the backoff
        seen.append(dict(body))

    stop = threading.Event()
    thread = threading.Thread(
        target=run_worker,
        args=(REDIS_URL, handle, stop),
        kwargs={"time_limit_s": 60, "retry_min_s": 0.1, "retry_max_s": 0.5},
        daemon=True,
    )
    thread.start()
    try:
        job = RetrainJob("spam", ADMIN, "U0ADMIN", force=True, channel_id="C1", response_url=None)
        busy = RetrainJob("sentiment", ADMIN, "UBUSY", job_id=uuid.uuid4().hex)
        queue.enqueue(job)
        queue.enqueue(busy)
        deadline = time.monotonic() + 30
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert {RetrainJob.from_message(body) for body in seen} == {job, busy}
        assert attempts[busy.job_id] == 2 and attempts[job.job_id] == 1
        assert queue.depth() == 0
    finally:
        stop.set()
        thread.join(30)
        queue.close()


def test_an_unreachable_broker_is_a_queue_error() -> None:
    queue = RetrainQueue("redis://127.0.0.1:1/0")
    with pytest.raises(QueueUnavailableError, match="did not take"):
        queue.enqueue(RetrainJob("spam", ADMIN, "U0ADMIN"))
