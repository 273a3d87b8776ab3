"""What every module of the encoder package shares: its errors and the progress callback."""

from __future__ import annotations

import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)

ProgressFn = Callable[[str], None]


class EncoderImportError(ValueError):
    """A checkpoint or an encoder directory cannot be used; the message says why."""


class EncoderFetchError(EncoderImportError):
    """The default checkpoint could not be downloaded or verified."""


def reporter(progress: ProgressFn | None) -> ProgressFn:
    def report(message: str) -> None:
        logger.info("%s", message)
        if progress is not None:
            progress(message)

    return report
