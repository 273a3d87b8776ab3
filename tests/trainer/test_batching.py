"""The cross-request batcher: each caller its own result, both limits, failures isolated."""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from trainer.batching import (
    Batcher,
    BatcherClosedError,
    BatchPolicy,
    BatchTimeoutError,
)


@dataclass(frozen=True)
class Guess:
    label: str
    text: str
    model_version: str


class FakeModel:
    """Labels a text by a hash of it; records each call's texts; fails on "boom"."""

    def __init__(self, *, delay: float = 0.0, version: str = "v1") -> None:
        self.delay = delay
        self.version = version
        self.calls: list[list[str]] = []
        self.lock = threading.Lock()

    def predict(self, texts: Sequence[str]) -> list[Guess]:
        with self.lock:
            self.calls.append(list(texts))
        time.sleep(self.delay)
        if any("boom" in text for text in texts):
            raise RuntimeError("the model fell over")
        return [Guess(("ham", "spam")[zlib.crc32(t.encode()) % 2], t, self.version) for t in texts]


class Models:
    def __init__(self, **models: FakeModel | None) -> None:
        self.models = models

    def get(self, task: str) -> FakeModel | None:
        return self.models.get(task)


class Observer:
    def __init__(self) -> None:
        self.batches: list[tuple[str, int, list[float]]] = []

    def observe_batch(self, task: str, size: int, waits_s: Sequence[float]) -> None:
        self.batches.append((task, size, list(waits_s)))


def test_fifty_concurrent_callers_each_get_their_own_texts_result() -> None:
    model = FakeModel(delay=0.02)
    alone = FakeModel()
    texts = [f"message number {i} " + "x" * (i % 7) for i in range(50)]
    expected = {text: alone.predict([text])[0] for text in texts}
    observer = Observer()
    with Batcher(Models(spam=model), BatchPolicy(max_batch_size=16), observer=observer) as batcher:
        start = threading.Barrier(50)

        def call(text: str) -> Guess:
            start.wait()
            return batcher.predict("spam", [text])[0]

        with ThreadPoolExecutor(50) as pool:
            results = list(pool.map(call, texts))
    assert results == [expected[text] for text in texts]
    assert sum(len(call) for call in model.calls) == 50
    assert max(len(call) for call in model.calls) <= 16
    assert len(model.calls) < 50 / 2, "concurrent callers must share model calls"
    assert sorted(size for _, size, _ in observer.batches) == sorted(map(len, model.calls))


def test_a_callers_several_texts_come_back_in_order_and_stay_together() -> None:
    model = FakeModel()
    with Batcher(Models(spam=model), BatchPolicy(max_batch_size=4)) as batcher:
        texts = ["a", "bb", "ccc", "dddd", "eeeee", "ffffff"]
        assert [g.text for g in batcher.predict("spam", texts)] == texts
        assert batcher.predict("spam", []) == []
    assert model.calls == [texts], "a request above the limit is one call of its own"


def test_a_batch_closes_at_max_batch_size_before_its_timeout() -> None:
    model = FakeModel()
    policy = BatchPolicy(max_batch_size=5, batch_timeout_ms=1000)
    with Batcher(Models(spam=model), policy) as batcher:
        started = time.monotonic()
        futures = [batcher.submit("spam", [f"t{i}"]) for i in range(5)]
        assert [f.result(timeout=5)[0].text for f in futures] == [f"t{i}" for i in range(5)]
        assert time.monotonic() - started < 0.5, "a full batch does not wait for the timeout"
        # The sixth waits for the timeout: nobody else comes.
        started = time.monotonic()
        assert batcher.predict("spam", ["t5"])[0].text == "t5"
        waited = time.monotonic() - started
    assert model.calls == [[f"t{i}" for i in range(5)], ["t5"]]
    assert 0.95 <= waited < 3.0


def test_texts_arriving_within_the_timeout_share_a_call() -> None:
    model = FakeModel()
    with Batcher(Models(spam=model), BatchPolicy(batch_timeout_ms=300)) as batcher:
        first = batcher.submit("spam", ["one"])
        time.sleep(0.05)
        second = batcher.submit("spam", ["two", "three"])
        assert first.result(timeout=5)[0].text == "one"
        assert [g.text for g in second.result(timeout=5)] == ["two", "three"]
    assert model.calls == [["one", "two", "three"]]


def test_with_no_timeout_texts_queued_during_a_call_form_the_next_batch() -> None:
    model = FakeModel(delay=0.3)
    with Batcher(Models(spam=model), BatchPolicy(batch_timeout_ms=0)) as batcher:
        first = batcher.submit("spam", ["first"])
        time.sleep(0.1)  # the first call is running
        rest = [batcher.submit("spam", [f"r{i}"]) for i in range(6)]
        first.result(timeout=5)
        assert [f.result(timeout=5)[0].text for f in rest] == [f"r{i}" for i in range(6)]
    assert model.calls == [["first"], [f"r{i}" for i in range(6)]]


def test_a_failing_batch_fails_only_its_own_callers() -> None:
    model = FakeModel(delay=0.2)
    with Batcher(Models(spam=model), BatchPolicy(max_batch_size=2)) as batcher:
        blocker = batcher.submit("spam", ["warm"])
        time.sleep(0.05)
        doomed = [batcher.submit("spam", ["boom"]), batcher.submit("spam", ["fine 1"])]
        spared = [batcher.submit("spam", ["fine 2"]), batcher.submit("spam", ["fine 3"])]
        assert blocker.result(timeout=5)[0].text == "warm"
        for future in doomed:
            with pytest.raises(RuntimeError, match="fell over"):
                future.result(timeout=5)
        assert [f.result(timeout=5)[0].text for f in spared] == ["fine 2", "fine 3"]
        # and the worker goes on serving
        assert batcher.predict("spam", ["after"])[0].text == "after"


def test_tasks_batch_apart_and_a_task_without_a_model_answers_none() -> None:
    spam, sentiment = FakeModel(version="s1"), FakeModel(version="m1")
    with Batcher(Models(spam=spam, sentiment=sentiment, topic=None)) as batcher:
        assert batcher.predict("spam", ["x"])[0].model_version == "s1"
        assert batcher.predict("sentiment", ["x"])[0].model_version == "m1"
        assert batcher.predict("topic", ["x"]) is None
    assert spam.calls == [["x"]] and sentiment.calls == [["x"]]


def test_the_model_in_production_at_batch_time_is_used() -> None:
    models = Models(spam=FakeModel(version="v1"))
    with Batcher(models) as batcher:
        assert batcher.predict("spam", ["x"])[0].model_version == "v1"
        models.models["spam"] = FakeModel(version="v2")
        assert batcher.predict("spam", ["x"])[0].model_version == "v2"


def test_a_stuck_model_times_its_callers_out() -> None:
    model = FakeModel(delay=1.0)
    batcher = Batcher(Models(spam=model), BatchPolicy(wait_seconds=0.2))
    with pytest.raises(BatchTimeoutError, match="no prediction within 0.2 s"):
        batcher.predict("spam", ["slow"])
    batcher.close(timeout=5)


def test_close_finishes_queued_texts_then_refuses_new_ones_and_stops_workers() -> None:
    model = FakeModel(delay=0.1)
    batcher = Batcher(Models(spam=model, sentiment=FakeModel()), BatchPolicy(max_batch_size=2))
    futures = [batcher.submit("spam", [f"q{i}"]) for i in range(5)]
    batcher.predict("sentiment", ["x"])
    threads = [queue.thread for queue in batcher._queues.values()]
    assert {t.name for t in threads} == {"bertbot-batcher-spam", "bertbot-batcher-sentiment"}
    batcher.close(timeout=5)
    assert [f.result(timeout=0)[0].text for f in futures] == [f"q{i}" for i in range(5)]
    assert not any(t.is_alive() for t in threads)
    with pytest.raises(BatcherClosedError):
        batcher.submit("spam", ["late"])
    batcher.close()  # twice is harmless


def test_close_fails_what_a_stuck_worker_left_queued() -> None:
    model = FakeModel(delay=1.0)
    batcher = Batcher(Models(spam=model), BatchPolicy(max_batch_size=1))
    running = batcher.submit("spam", ["running"])
    time.sleep(0.1)
    queued = batcher.submit("spam", ["queued"])
    batcher.close(timeout=0.1)
    with pytest.raises(BatcherClosedError):
        queued.result(timeout=0)
    assert running.result(timeout=5)[0].text == "running"


@pytest.mark.parametrize(
    "kwargs", [{"max_batch_size": 0}, {"batch_timeout_ms": -1}, {"wait_seconds": 0}]
)
def test_policy_bounds(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        BatchPolicy(**kwargs)  # type: ignore[arg-type]
