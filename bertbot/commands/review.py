"""``bertbot review``: the moderators' review work from the command line.

Each part of the review loop adds its subcommands here (``disputes``/``decide`` from
:mod:`bertbot.commands.review_disputes`).
"""

from __future__ import annotations

import argparse

from bertbot.commands import add_command, review_disputes


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = add_command(commands, "review", None, "moderators' review: second-opinion disputes")
    actions = group.add_subparsers(dest="review_command", metavar="ACTION", required=True)
    review_disputes.register(actions)
