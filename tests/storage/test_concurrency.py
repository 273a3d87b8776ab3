"""Concurrent writers on a real database, committing for real (no rollback fixture)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

from storage import annotations, runs, schema
from storage.db import Database
from storage.enums import AnnotationSource

THREADS = 8
PER_THREAD = 25


def _in_threads(work: Callable[[int], object]) -> list[object]:
    barrier = threading.Barrier(THREADS)
    results: list[object] = [None] * THREADS
    errors: list[BaseException] = []

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = work(index)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return results


def test_eight_threads_writing_annotations_lose_none(empty_database: Database) -> None:
    schema.upgrade(empty_database)

    def write(thread: int) -> int:
        for i in range(PER_THREAD):
            with empty_database.begin() as session:
                # Every thread labels the same texts too, so split assignment races.
                annotations.add_annotation(
                    session=session,
                    task="spam",
                    text=f"shared text {i}",
                    label="spam",
                    annotator=f"U{thread}",
                    source=AnnotationSource.CORRECTION,
                    idempotency_key=f"{thread}-{i}",
                )
        return PER_THREAD

    written = sum(_in_threads(write))  # type: ignore[arg-type]
    with empty_database.begin() as session:
        stored = annotations.list_annotations(session=session, task="spam")
        effective = annotations.effective_labels(session=session, task="spam")
    print(f"annotations: {written} written by {THREADS} threads, {len(stored)} stored")
    assert len(stored) == written == THREADS * PER_THREAD
    assert len({a.idempotency_key for a in stored}) == written
    assert len(effective) == PER_THREAD


def test_concurrent_repeats_of_one_click_store_one_annotation(empty_database: Database) -> None:
    schema.upgrade(empty_database)

    def click(thread: int) -> bool:
        with empty_database.begin() as session:
            _, created = annotations.add_annotation(
                session=session,
                task="spam",
                text="the same message",
                label="ham",
                annotator="U1",
                source=AnnotationSource.CORRECTION,
                idempotency_key="one-click",
            )
        return created

    created = _in_threads(click)
    assert created.count(True) == 1
    with empty_database.begin() as session:
        assert len(annotations.list_annotations(session=session, task="spam")) == 1


def test_only_one_thread_gets_the_lease(empty_database: Database) -> None:
    schema.upgrade(empty_database)

    def take(thread: int) -> bool:
        with empty_database.begin() as session:
            lease = runs.acquire_lease(
                session=session, name="retrain:spam", holder=f"h{thread}", ttl=timedelta(minutes=5)
            )
        return lease is not None

    assert _in_threads(take).count(True) == 1


def _take_lease_in_process(url: str, holder: str, barrier: object, results: object) -> None:
    database = Database.connect(url)
    barrier.wait()  # type: ignore[attr-defined]
    with database.begin() as session:
        lease = runs.acquire_lease(
            session=session, name="retrain:spam", holder=holder, ttl=timedelta(minutes=5)
        )
    results.put((holder, lease is not None))  # type: ignore[attr-defined]
    database.dispose()


def test_only_one_process_gets_the_lease(empty_database: Database) -> None:
    import multiprocessing

    schema.upgrade(empty_database)
    url = empty_database.engine.url.render_as_string(hide_password=False)
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    processes = [
        context.Process(target=_take_lease_in_process, args=(url, f"p{i}", barrier, results))
        for i in range(2)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0
    outcomes = dict(results.get(timeout=5) for _ in processes)
    print(f"lease across processes: {outcomes}")
    assert sorted(outcomes.values()) == [False, True]
    with empty_database.begin() as session:
        lease = runs.get_lease(session=session, name="retrain:spam")
    assert lease is not None and outcomes[lease.holder] is True
