"""What every part of the package shares: the labelled example, the error, progress lines."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]
"""Called with a short, human-readable line as a long step starts or ends."""


class DatasetError(ValueError):
    """A data set cannot be fetched, read or built; the message says what to do."""


@dataclass(frozen=True)
class Example:
    """One labelled text."""

    text: str
    label: str


@dataclass(frozen=True)
class TopicExample:
    """A labelled text with the CrowdFlower job (topic) it came from."""

    text: str
    label: str
    topic: str


def report_progress(progress: Progress | None, message: str) -> None:
    """Log ``message`` and pass it to ``progress``, if there is one."""
    logger.info(message)
    if progress is not None:
        progress(message)
