"""Database leases held by a process: one scheduler leader among many, and a worker's
claim on a queued job.

Built on :mod:`storage.runs`' lease functions (the ``leases`` table, the same that keeps
one retrain per task): a holder takes a named lease for ``ttl``, renews it on a heartbeat,
and gives it back; a dead holder's lease lapses after ``ttl`` and anyone may take it then.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

from storage import runs
from storage.db import Database
from storage.errors import StorageError
from storage.records import LeaseRecord

logger = logging.getLogger(__name__)

SCHEDULER_LEASE = "scheduler-leader"


def process_holder(role: str) -> str:
    """A holder id unique to this process (host, pid, random suffix), at most 128 chars."""
    return f"{role}@{socket.gethostname()[:64]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class HeldLease:
    """One named lease as this process sees it: take, renew, release."""

    def __init__(
        self, database: Database, name: str, ttl: timedelta, holder: str | None = None
    ) -> None:
        self.database, self.name, self.ttl = database, name, ttl
        self.holder = holder or process_holder(name.split(":", 1)[0])

    def take(self) -> bool:
        """Take the lease if it is free, lapsed, or ours already (then it is renewed)."""
        with self.database.begin() as session:
            taken = runs.acquire_lease(
                session=session, name=self.name, holder=self.holder, ttl=self.ttl
            )
        return taken is not None

    def renew(self) -> bool:
        """Extend it; False once someone else holds it."""
        with self.database.begin() as session:
            return runs.renew_lease(
                session=session, name=self.name, holder=self.holder, ttl=self.ttl
            )

    def release(self) -> None:
        """Give it back (a no-op when it is no longer ours)."""
        with self.database.begin() as session:
            runs.release_lease(session=session, name=self.name, holder=self.holder)

    def current(self) -> LeaseRecord | None:
        with self.database.begin() as session:
            return runs.get_lease(session=session, name=self.name)


class Leadership:
    """One leader at a time among processes sharing a database.

    Call :meth:`step` every heartbeat (or :meth:`run` a loop of them): a leader renews its
    lease, a follower tries to take it (it succeeds once the leader's lease lapsed). A
    leader that cannot renew for a whole lease period (database unreachable) steps down,
    since by then another process may have taken over.
    """

    def __init__(
        self,
        lease: HeldLease,
        *,
        on_elected: Callable[[], None],
        on_deposed: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lease = lease
        self._on_elected, self._on_deposed, self._clock = on_elected, on_deposed, clock
        self._leader = False
        self._renewed_at = 0.0

    @property
    def is_leader(self) -> bool:
        return self._leader

    def step(self) -> bool:
        """One heartbeat. Returns whether this process leads afterwards."""
        try:
            held = self.lease.renew() if self._leader else self.lease.take()
        except StorageError as exc:
            logger.warning("leadership %s: the database is unreachable: %s", self.lease.name, exc)
            if self._leader and self._clock() - self._renewed_at >= self.lease.ttl.total_seconds():
                self._change(False, "could not renew the lease in time")
            return self._leader
        if held:
            self._renewed_at = self._clock()
        if held != self._leader:
            self._change(held, "took the lease" if held else "the lease was taken over")
        return self._leader

    def run(self, stop: threading.Event, heartbeat_seconds: float) -> None:
        """Heartbeats until ``stop`` is set; then steps down and gives the lease back."""
        while not stop.is_set():
            self.step()
            stop.wait(heartbeat_seconds)
        if self._leader:
            self._change(False, "stopping")
            try:
                self.lease.release()
            except StorageError:
                logger.warning("could not release %s; it lapses by itself", self.lease.name)

    def _change(self, leader: bool, why: str) -> None:
        self._leader = leader
        logger.info(
            "%s %s (%s): %s",
            self.lease.holder,
            "leads" if leader else "no longer leads",
            self.lease.name,
            why,
        )
        (self._on_elected if leader else self._on_deposed)()
