"""The ``bertbot`` command line.

TensorFlow is imported only inside the commands that need it, so ``--help``, ``db`` and
``doctor`` start quickly.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from bertbot.settings import Settings, SettingsError, load_settings
from storage.db import Database
from storage.errors import StorageError

logger = logging.getLogger("bertbot")

Handler = Callable[[argparse.Namespace, Settings], int]


class CommandError(Exception):
    """A command cannot go on; the message tells the user why and what to do."""


def _open_database(settings: Settings, *, check_schema: bool = True) -> Database:
    from storage.schema import check_schema as check

    database = Database.connect(settings.db_url)
    if database.sqlite_path is not None:
        database.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    if check_schema:
        check(database)
    return database


# db -------------------------------------------------------------------------------------


def _db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from storage import schema

    settings.home_dir.mkdir(parents=True, exist_ok=True)
    database = _open_database(settings, check_schema=False)
    before = schema.current_revision(database)
    schema.upgrade(database, args.revision)
    after = schema.current_revision(database)
    print(f"database {database.url}: {before or 'empty'} -> {after}")
    return 0


def _db_downgrade(args: argparse.Namespace, settings: Settings) -> int:
    from storage import schema

    database = _open_database(settings, check_schema=False)
    before = schema.current_revision(database)
    schema.downgrade(database, args.revision)
    after = schema.current_revision(database)
    print(f"database {database.url}: {before or 'empty'} -> {after or 'empty (base)'}")
    return 0


def _db_current(args: argparse.Namespace, settings: Settings) -> int:
    from storage import schema

    database = _open_database(settings, check_schema=False)
    current = schema.current_revision(database)
    head = schema.head_revision()
    state = "at head" if current == head else f"behind head {head}: run `bertbot db upgrade`"
    print(f"{database.url}: {current or 'empty'} ({state})")
    return 0 if current == head else 1


# doctor ---------------------------------------------------------------------------------


def _doctor(args: argparse.Namespace, settings: Settings) -> int:
    from bertbot.doctor import run_checks

    database = Database.connect(settings.db_url)  # doctor creates nothing
    checks = run_checks(settings, database)
    width = max(len(check.name) for check in checks)
    for check in checks:
        mark = "ok  " if check.ok else "MISSING"
        print(f"{mark:7} {check.name:<{width}}  {check.detail}")
        if check.fix:
            print(f"{'':7} {'':<{width}}  fix: {check.fix}")
    failed = [check.name for check in checks if not check.ok]
    if failed:
        print(f"\n{len(failed)} problem(s): {', '.join(failed)}")
        return 1
    print("\neverything is in place")
    return 0


# parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bertbot",
        description="A Slack bot that classifies messages with a fine-tuned BERT and learns "
        "from moderators' corrections. Configuration comes from BERTBOT_* and SLACK_* "
        "environment variables (see .env.example).",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    db = commands.add_parser(
        "db", help="manage the database schema", description="Manage the database schema."
    )
    db_commands = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    upgrade = db_commands.add_parser(
        "upgrade", help="migrate to the latest schema (or REV)", description="Apply migrations."
    )
    upgrade.add_argument("revision", nargs="?", default="head", help="target (default: head)")
    upgrade.set_defaults(handler=_db_upgrade)
    downgrade = db_commands.add_parser(
        "downgrade",
        help="revert migrations down to REV",
        description="Revert migrations down to REV ('base' removes every table).",
    )
    downgrade.add_argument("revision", help="target revision, e.g. base or 0001")
    downgrade.set_defaults(handler=_db_downgrade)
    current = db_commands.add_parser(
        "current",
        help="show the schema revision",
        description="Show the revision; exit 1 if it is not at head.",
    )
    current.set_defaults(handler=_db_current)

    doctor = commands.add_parser(
        "doctor",
        help="check settings, database, encoder, models and Slack credentials",
        description="Check that everything needed to serve is in place; exit 1 and name "
        "the fix for each missing piece.",
    )
    doctor.set_defaults(handler=_doctor)
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
    if not args.verbose:
        logging.getLogger().setLevel(settings.log_level)
        # Migrations report through print(); Alembic's per-step INFO lines are noise here.
        logging.getLogger("alembic").setLevel(logging.WARNING)
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
