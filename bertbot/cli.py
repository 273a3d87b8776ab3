"""The ``bertbot`` command line.

TensorFlow is imported only inside the commands that need it, so ``--help``, ``db`` and
``doctor`` start quickly.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from bertbot.commands import CommandError, Handler
from bertbot.commands import classify as classify_commands
from bertbot.commands import data as data_commands
from bertbot.commands import db as db_commands
from bertbot.commands import doctor as doctor_commands
from bertbot.commands import drift as drift_commands
from bertbot.commands import encoder as encoder_commands
from bertbot.commands import explain as explain_commands
from bertbot.commands import inbox as inbox_commands
from bertbot.commands import label_quality as label_quality_commands
from bertbot.commands import messages as messages_commands
from bertbot.commands import models as models_commands
from bertbot.commands import policy as policy_commands
from bertbot.commands import review as review_commands
from bertbot.commands import roles as roles_commands
from bertbot.commands import serve as serve_commands
from bertbot.commands import setup as setup_commands
from bertbot.commands import train as train_commands
from bertbot.commands import worker as worker_commands
from bertbot.commands import workspaces as workspaces_commands
from bertbot.settings import SettingsError, load_settings
from storage.errors import StorageError

GROUPS = [
    setup_commands,
    db_commands,
    doctor_commands,
    encoder_commands,
    data_commands,
    train_commands,
    classify_commands,
    messages_commands,
    drift_commands,
    review_commands,
    explain_commands,
    models_commands,
    serve_commands,
    worker_commands,
    inbox_commands,
    policy_commands,
    roles_commands,
    label_quality_commands,
    workspaces_commands,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bertbot",
        description="A Slack bot that classifies messages with a fine-tuned BERT and learns "
        "from moderators' corrections. Configuration comes from BERTBOT_* and SLACK_* "
        "environment variables (see .env.example).",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in GROUPS:
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"bertbot: {exc}", file=sys.stderr)
        return 2
    if settings.log_level == "DEBUG":
        # trainer.tf_runtime reads BERTBOT_LOG_LEVEL from the environment (TensorFlow's log
        # level is fixed when it loads, before a settings object can reach it); this way a
        # DEBUG from .env leaves TensorFlow's logging on too, here and in child processes.
        os.environ.setdefault("BERTBOT_LOG_LEVEL", settings.log_level)
    if not args.verbose:
        # Commands report through print() and progress lines; INFO logs would repeat them.
        # Long-running services (serve, scheduler) raise this to BERTBOT_LOG_LEVEL.
        logging.getLogger().setLevel(logging.WARNING)
    handler: Handler = args.handler
    try:
        return handler(args, settings)
    except (CommandError, StorageError) as exc:
        print(f"bertbot: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bertbot: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
