"""How the durable inbox retries and keeps deliveries: a config with its defaults and bounds.

Standard library only (and :mod:`trainer.bounds`), so the settings layer builds its
``BERTBOT_INBOX__*`` fields from it at start-up without importing the services.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainer.bounds import bounded, check_bounds


@dataclass(frozen=True)
class InboxPolicy:
    """How deliveries are retried and kept (settings ``BERTBOT_INBOX__*``).

    Attributes:
        workers: Deliveries a serving process handles at once (the rest wait their turn in
            memory; their claims keep them from other processes). A worker spends most of
            its time waiting: for the batcher, which predicts the texts of all workers
            together, and for the database. More workers mean bigger batches and overlapped
            round trips, but too many slow /classify down: bench/throughput.py measured
            4, 8, 16 and 32 on 2 cores and 8 was the best balance (bench/RESULTS.md).
        max_attempts: Attempts before a delivery is dead-lettered.
        retry_base_seconds: Wait after the first failure; doubled after each next one.
        retry_max_seconds: The longest wait between two attempts.
        claim_seconds: How long a claim lasts: a row claimed by a process that died is
            handled again after this.
        sweep_seconds: How often each serving process looks for due rows.
        retention_days: Handled and dead rows are deleted this long after they finished.
    """

    workers: int = bounded(8, ge=1, le=256)
    max_attempts: int = bounded(8, ge=1, le=100)
    retry_base_seconds: float = bounded(2.0, gt=0.0)
    retry_max_seconds: float = bounded(300.0, gt=0.0)
    claim_seconds: float = bounded(60.0, ge=1.0)
    sweep_seconds: float = bounded(1.0, gt=0.0)
    retention_days: float = bounded(7.0, gt=0.0)

    def __post_init__(self) -> None:
        check_bounds(self)

    def retry_delay(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt."""
        return float(min(self.retry_max_seconds, self.retry_base_seconds * 2 ** (attempts - 1)))
