"""What the services report as they work, for metrics: predictions stored, batches, retrains.

The services know only these protocols; the serving process passes its
:class:`bot.observability.BotMetrics` (Prometheus) through :class:`bot.services.BotServices`
and :class:`bot.services.retraining.RetrainService`. Without one they report to a
:class:`NullObserver`. An observer is called on request and worker threads: it must be
thread-safe, quick, and must not raise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class PredictionObserver(Protocol):
    """Told about predictions (reached as ``services.predictor.observer``)."""

    def prediction_stored(self, task: str, label: str, model_version: str) -> None:
        """One prediction was stored (called after its unit of work committed)."""
        ...

    def observe_batch(self, task: str, size: int, waits_s: Sequence[float]) -> None:
        """One batch of texts went through a task's model together.

        Args:
            task: The task whose model ran the batch.
            size: How many texts the batch held.
            waits_s: For each caller in the batch, the seconds it waited for the batch to
                start (one entry per caller; a caller with several texts counts once).
        """
        ...


class RetrainObserver(Protocol):
    """Told when a retrain ends in this process (``/retrain`` or the schedule)."""

    def retrain_finished(self, task: str, outcome: str, seconds: float) -> None:
        """A retrain ended.

        Args:
            task: The task retrained.
            outcome: The run's :class:`storage.enums.RunStatus` value (``succeeded`` is a
                promotion), or ``failed`` when it raised.
            seconds: How long it ran.
        """
        ...


class NullObserver:
    """Reports nowhere (tests, one-off commands)."""

    def prediction_stored(self, task: str, label: str, model_version: str) -> None:
        pass

    def observe_batch(self, task: str, size: int, waits_s: Sequence[float]) -> None:
        pass

    def retrain_finished(self, task: str, outcome: str, seconds: float) -> None:
        pass
