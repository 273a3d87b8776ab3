"""The durable inbox as a use case: accept a delivery before the ack, handle it after.

Slack never retries an event it got a 200 for, so every event callback is first stored
(:meth:`Inbox.accept`, its own short unit of work) and only then acknowledged; if that write
fails the transport answers 503 and Slack's retries bring it back. Handling happens after
the ack: at once on the app's listener executor (:meth:`Inbox.handle`), and by an
:class:`InboxSweeper` in every serving process for rows a failure or a dead process left
behind. A handler marks its row done in the unit of work of its effects (see
:meth:`bot.services.ingestion.IngestionService.record_message`), so a delivery's effects
happen once; a failure is retried with exponential back-off, then dead-lettered for an
operator (``bertbot inbox``).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bot.inbox_policy import InboxPolicy
from storage import inbox as inbox_store
from storage.db import Database
from storage.enums import InboxStatus, utcnow
from storage.errors import StorageError
from storage.records import InboxRecord, InboxStats

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InboxClaim:
    """A delivery this process holds: handle it, then mark it done with its effects."""

    id: int
    event_id: str
    event_type: str
    attempts: int
    body: dict[str, Any]


Handler = Callable[[InboxClaim], None]
"""Handles one claimed delivery; marks it done (``Inbox.done`` or in its own unit of work)."""


class Inbox:
    """Stores deliveries before the ack and hands them to a handler after. Thread-safe."""

    def __init__(self, database: Database, policy: InboxPolicy | None = None) -> None:
        self._database = database
        self.policy = policy or InboxPolicy()
        self.holder = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._handler: Handler | None = None
        # Deliveries received here, waiting for one of this process's workers.
        self._waiting: deque[InboxClaim] = deque()
        self._workers = 0
        self._lock = threading.Lock()

    def bind(self, handler: Handler) -> None:
        """Say how a delivery is handled (the app does, when its listeners are registered)."""
        self._handler = handler

    @property
    def handler(self) -> Handler:
        if self._handler is None:
            raise RuntimeError("the inbox has no handler: build the app first")
        return self._handler

    @property
    def _ttl(self) -> timedelta:
        return timedelta(seconds=self.policy.claim_seconds)

    def accept(self, body: Mapping[str, Any], raw: str) -> InboxClaim | None:
        """Store an event callback; the caller acknowledges Slack only after this returns.

        The row is stored already claimed by this process, which handles it at once
        (:meth:`run`); if the process dies first, the claim lapses and a sweeper takes it.

        Args:
            body: The parsed envelope (``type`` ``event_callback``).
            raw: The envelope as received.

        Returns:
            This process's claim on the new row, or None when the event is in the inbox
            already (a retry).

        Raises:
            StorageError: It could not be stored: answer 5xx so that Slack retries.
        """
        event = body.get("event") or {}
        with self._database.begin() as session:
            record = inbox_store.add_delivery(
                session=session,
                event_id=str(body.get("event_id")),
                event_type=str(event.get("type") or "unknown"),
                team_id=str(body["team_id"]) if body.get("team_id") else None,
                payload=raw,
                holder=self.holder,
                ttl=self._ttl,
            )
        if record is None:
            logger.info("event %s delivered again; it is in the inbox", body.get("event_id"))
            return None
        return InboxClaim(record.id, record.event_id, record.event_type, 1, dict(body))

    def handle_due(self, *, limit: int = 16) -> int:
        """Claim and handle the deliveries that are due; returns how many were handled."""
        with self._database.begin() as session:
            records = inbox_store.claim_due(
                session=session, holder=self.holder, ttl=self._ttl, limit=limit
            )
        for record in records:
            try:
                body = json.loads(record.payload)
            except ValueError as exc:
                self.failed(_claim_of(record, {}), exc)
                continue
            self.run(_claim_of(record, body))
        return len(records)

    def enqueue(self, claim: InboxClaim, submit: Callable[[Callable[[], None]], Any]) -> None:
        """Handle a delivery received here on one of at most ``policy.workers`` workers.

        Args:
            claim: This process's claim (from :meth:`accept`).
            submit: Starts a worker (the app's listener executor's ``submit``).
        """
        with self._lock:
            self._waiting.append(claim)
            start = self._workers < self.policy.workers
            if start:
                self._workers += 1
        if start:
            submit(self._work)

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._waiting:
                    self._workers -= 1
                    return
                claim = self._waiting.popleft()
            self.run(claim)

    def run(self, claim: InboxClaim) -> None:
        """Handle a claimed delivery; a failure is recorded on its row, never lost."""
        try:
            self.handler(claim)
        except Exception as exc:  # noqa: BLE001 - every failure is recorded and retried
            self.failed(claim, exc)

    def done(self, claim: InboxClaim) -> None:
        """Mark a delivery handled that had no effects to store."""
        with self._database.begin() as session:
            inbox_store.mark_done(session=session, item_id=claim.id)

    def failed(self, claim: InboxClaim, exc: BaseException) -> None:
        message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        retry_at = None
        if claim.attempts < self.policy.max_attempts:
            retry_at = utcnow() + timedelta(seconds=self.policy.retry_delay(claim.attempts))
        try:
            with self._database.begin() as session:
                status = inbox_store.mark_failed(
                    session=session, item_id=claim.id, error=message, retry_at=retry_at
                )
        except StorageError:
            logger.error(
                "event %s failed (%s) and the failure could not be recorded; its claim "
                "lapses in %.0f s and it is tried again",
                claim.event_id,
                message,
                self.policy.claim_seconds,
            )
            return
        if status is None:
            logger.warning(
                "event %s was handled, then failed after its commit (nothing to retry): %s",
                claim.event_id,
                message,
                exc_info=exc,
            )
        elif status == InboxStatus.DEAD:
            logger.error(
                "event %s dead-lettered after %d attempts: %s (bertbot inbox retry %s)",
                claim.event_id,
                claim.attempts,
                message,
                claim.id,
            )
        else:
            logger.warning(
                "event %s failed (attempt %d of %d), next try in %.0f s: %s",
                claim.event_id,
                claim.attempts,
                self.policy.max_attempts,
                self.policy.retry_delay(claim.attempts),
                message,
                exc_info=exc,
            )

    # Operators ------------------------------------------------------------------------

    def stats(self) -> InboxStats:
        with self._database.begin() as session:
            return inbox_store.stats(session=session)

    def items(self, *, status: InboxStatus | None = None, limit: int = 50) -> list[InboxRecord]:
        with self._database.begin() as session:
            return inbox_store.list_items(session=session, status=status, limit=limit)

    def retry(self, item_id: int | None = None) -> int:
        """Make one dead delivery (or all) pending again; returns how many."""
        with self._database.begin() as session:
            return inbox_store.retry(session=session, item_id=item_id)

    def prune(self) -> int:
        """Delete handled and dead rows older than the retention; returns how many."""
        cutoff = utcnow() - timedelta(days=self.policy.retention_days)
        with self._database.begin() as session:
            return inbox_store.prune(session=session, finished_before=cutoff)


class InboxSweeper:
    """Handles due deliveries (retries, a dead process's rows) every ``sweep_seconds``.

    One per serving process; claims keep two processes from handling one row at once.
    Prunes old rows about once an hour.
    """

    def __init__(self, inbox: Inbox, *, prune_every_s: float = 3600.0) -> None:
        self._inbox = inbox
        self._prune_every_s = prune_every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep(self) -> int:
        """One pass: handle what is due (tests call this directly)."""
        return self._inbox.handle_due()

    def start(self) -> InboxSweeper:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="inbox-sweeper", daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        since_prune = 0.0
        interval = self._inbox.policy.sweep_seconds
        while not self._stop.wait(interval):
            try:
                while self.sweep():
                    if self._stop.is_set():
                        return
                since_prune += interval
                if since_prune >= self._prune_every_s:
                    since_prune = 0.0
                    pruned = self._inbox.prune()
                    if pruned:
                        logger.info("pruned %d old inbox row(s)", pruned)
            except StorageError as exc:
                logger.warning("inbox sweep failed (tried again in %.0f s): %s", interval, exc)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


def _claim_of(record: InboxRecord, body: dict[str, Any]) -> InboxClaim:
    return InboxClaim(record.id, record.event_id, record.event_type, record.attempts, body)
