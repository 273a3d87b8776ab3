"""One module per command group, each with ``register(subparsers)``.

A handler takes ``(args, settings)`` and returns the exit code. Heavy imports
(TensorFlow, scikit-learn) happen inside handlers, never at module import.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from bertbot.settings import Settings

Handler = Callable[[argparse.Namespace, Settings], int]


class CommandError(Exception):
    """A command cannot go on; the message tells the user why and what to do."""


def add_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    handler: Handler | None,
    summary: str,
    description: str | None = None,
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        name,
        help=summary,
        description=description or summary[0].upper() + summary[1:] + ".",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if handler is not None:
        parser.set_defaults(handler=handler)
    return parser
