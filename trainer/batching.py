"""One batcher per serving process: texts from concurrent callers, predicted together.

Every caller in a process (``/classify``, channel messages and their inbox workers, the
review queue, the emulator) asks :class:`Batcher` instead of calling a model. Each task
has one worker thread. A batch closes when it holds ``max_batch_size`` texts or when its
first text has waited ``batch_timeout_ms``; the worker then makes **one** batched call to
the task's production model and hands each caller its own predictions. While that call
runs, new texts queue up, so under load the next batch fills without waiting; when the
model is idle and the timeout is 0, a lone text goes at once (no added latency).

A failed batch fails only its own callers (they get the exception); a caller never waits
longer than ``wait_seconds`` (:class:`BatchTimeoutError`). Nothing here runs on an ack
path: callers that must answer Slack within 3 s ack first.

Standard library only: the model is whatever ``models.get(task)`` returns (a
:class:`trainer.serving.Classifier`), so tests use fakes and nothing imports TensorFlow.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

from trainer.bounds import bounded, check_bounds

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchPolicy:
    """How texts are grouped (settings ``BERTBOT_BATCHING__*``).

    Attributes:
        max_batch_size: The most texts in one model call (a single request with more
            texts is predicted alone, in the model's own batches).
        batch_timeout_ms: The longest a text waits for others to join its batch. 0: a
            batch closes as soon as the worker is free, taking whatever has queued while
            the previous batch ran (bench/RESULTS.md measures the choice).
        wait_seconds: The longest a caller waits for its result before giving up.
    """

    max_batch_size: int = bounded(64, ge=1, le=4096)
    batch_timeout_ms: float = bounded(0.0, ge=0.0, le=1000.0)
    wait_seconds: float = bounded(30.0, gt=0.0, le=600.0)

    def __post_init__(self) -> None:
        check_bounds(self)


class ModelSource(Protocol):
    """Where the production classifier of a task comes from (``ProductionModels``)."""

    def get(self, task: str) -> Any: ...


class BatchObserver(Protocol):
    """Told of each batch (metrics): its task, its size in texts, each caller's wait."""

    def observe_batch(self, task: str, size: int, waits_s: Sequence[float]) -> None: ...


class BatcherClosedError(RuntimeError):
    """The batcher was closed before this text was predicted."""


class BatchTimeoutError(TimeoutError):
    """A caller's text was not predicted within ``wait_seconds``."""


@dataclass
class _Request:
    texts: list[str]
    future: Future[Any]
    arrived: float = field(default_factory=time.monotonic)


class _TaskQueue:
    """One task's waiting requests and the worker thread that empties them."""

    def __init__(self, batcher: Batcher, task: str) -> None:
        self.task = task
        self.pending: deque[_Request] = deque()
        self.thread = threading.Thread(
            target=batcher._work, args=(self,), name=f"bertbot-batcher-{task}", daemon=True
        )


class Batcher:
    """Groups concurrent callers' texts into one model call per task.

    Thread-safe. ``predict`` blocks its caller; ``submit`` returns a future.
    """

    def __init__(
        self,
        models: ModelSource,
        policy: BatchPolicy | None = None,
        *,
        observer: BatchObserver | None = None,
    ) -> None:
        """Keep where models come from; workers start with the first text of each task.

        Args:
            models: ``get(task)`` gives the task's production classifier, or None when
                the task has no model (its callers then get None).
            policy: The batch limits and the callers' wait limit.
            observer: Told of every batch (e.g. :class:`bot.metrics.BotMetrics`).
        """
        self.policy = policy or BatchPolicy()
        self._models = models
        self._observer = observer
        self._condition = threading.Condition()
        self._queues: dict[str, _TaskQueue] = {}
        self._closed = False
        self.batches = 0  # model calls made (tests and benches read it)

    def submit(self, task: str, texts: Sequence[str]) -> Future[Any]:
        """Queue ``texts`` for ``task``'s model; the future gives their predictions, in
        order (or None when the task has no model), or the batch's exception."""
        request = _Request(list(texts), Future())
        if not request.texts:
            request.future.set_result([])
            return request.future
        with self._condition:
            if self._closed:
                raise BatcherClosedError("the batcher is closed")
            queue = self._queues.get(task)
            if queue is None:
                queue = self._queues[task] = _TaskQueue(self, task)
                queue.thread.start()
            queue.pending.append(request)
            self._condition.notify_all()
        return request.future

    def predict(self, task: str, texts: Sequence[str]) -> Any:
        """The predictions for ``texts`` by ``task``'s production model (None: no model).

        Raises:
            BatchTimeoutError: Not predicted within ``policy.wait_seconds``.
            BatcherClosedError: The batcher closed first.
            Exception: Whatever the model raised for this caller's batch.
        """
        return self.wait(self.submit(task, texts))

    def wait(self, future: Future[Any]) -> Any:
        """A submitted request's result, waiting at most ``policy.wait_seconds``."""
        try:
            return future.result(timeout=self.policy.wait_seconds)
        except TimeoutError as exc:
            if future.done():  # the model itself raised a TimeoutError
                raise
            raise BatchTimeoutError(
                f"no prediction within {self.policy.wait_seconds:g} s (model busy or stuck)"
            ) from exc

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking texts, finish the batches queued so far, and stop the workers."""
        with self._condition:
            if self._closed:
                return
            self._closed = True
            self._condition.notify_all()
            threads = [queue.thread for queue in self._queues.values()]
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._condition:  # anything a stuck worker left behind fails, nobody hangs
            for queue in self._queues.values():
                while queue.pending:
                    _fail(queue.pending.popleft(), BatcherClosedError("the batcher closed"))

    def __enter__(self) -> Batcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # the worker -------------------------------------------------------------------

    def _next_batch(self, queue: _TaskQueue) -> list[_Request] | None:
        """Wait for a batch to close (size or timeout); None when closed and drained."""
        policy = self.policy
        with self._condition:
            while not queue.pending:
                if self._closed:
                    return None
                self._condition.wait()
            deadline = queue.pending[0].arrived + policy.batch_timeout_ms / 1000.0
            while (
                not self._closed
                and _size(queue.pending) < policy.max_batch_size
                and (remaining := deadline - time.monotonic()) > 0
            ):
                self._condition.wait(remaining)
            batch = [queue.pending.popleft()]
            size = len(batch[0].texts)
            while queue.pending and size + len(queue.pending[0].texts) <= policy.max_batch_size:
                request = queue.pending.popleft()
                batch.append(request)
                size += len(request.texts)
            return batch

    def _work(self, queue: _TaskQueue) -> None:
        while (batch := self._next_batch(queue)) is not None:
            started = time.monotonic()
            texts = [text for request in batch for text in request.texts]
            try:
                model = self._models.get(queue.task)
                predictions = model.predict(texts) if model is not None else None
                if predictions is not None and len(predictions) != len(texts):
                    raise RuntimeError(
                        f"the {queue.task} model returned {len(predictions)} predictions "
                        f"for {len(texts)} texts"
                    )
            except BaseException as exc:  # noqa: BLE001 - the batch's callers get it
                logger.warning("a %s batch of %d texts failed: %s", queue.task, len(texts), exc)
                for request in batch:
                    _fail(request, exc)
                continue
            finally:
                self.batches += 1
            if self._observer is not None and predictions is not None:  # before callers go on
                try:
                    self._observer.observe_batch(
                        queue.task, len(texts), [started - r.arrived for r in batch]
                    )
                except Exception:  # noqa: BLE001 - metrics never break predictions
                    logger.exception("the batch observer failed")
            start = 0
            for request in batch:
                end = start + len(request.texts)
                if not request.future.done():
                    request.future.set_result(
                        None if predictions is None else predictions[start:end]
                    )
                start = end


def _size(pending: deque[_Request]) -> int:
    return sum(len(request.texts) for request in pending)


def _fail(request: _Request, exc: BaseException) -> None:
    if not request.future.done():
        request.future.set_exception(exc)
