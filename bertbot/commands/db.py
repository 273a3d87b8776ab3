"""``bertbot db``: schema migrations."""

from __future__ import annotations

import argparse

from bertbot.commands import add_command
from bertbot.commands.common import open_database
from bertbot.settings import Settings


def _upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from storage import schema

    settings.home_dir.mkdir(parents=True, exist_ok=True)
    database = open_database(settings, check_schema=False)
    before = schema.current_revision(database)
    schema.upgrade(database, args.revision)
    after = schema.current_revision(database)
    print(f"database {database.url}: {before or 'empty'} -> {after}")
    return 0


def _downgrade(args: argparse.Namespace, settings: Settings) -> int:
    from storage import schema

    database = open_database(settings, check_schema=False)
    before = schema.current_revision(database)
    schema.downgrade(database, args.revision)
    after = schema.current_revision(database)
    print(f"database {database.url}: {before or 'empty'} -> {after or 'empty (base)'}")
    return 0


def _current(args: argparse.Namespace, settings: Settings) -> int:
    from storage import schema

    database = open_database(settings, check_schema=False)
    current = schema.current_revision(database)
    head = schema.head_revision()
    state = "at head" if current == head else f"behind head {head}: run `bertbot db upgrade`"
    print(f"{database.url}: {current or 'empty'} ({state})")
    return 0 if current == head else 1


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = add_command(commands, "db", None, "manage the database schema")
    actions = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    upgrade = add_command(actions, "upgrade", _upgrade, "migrate to the latest schema (or REV)")
    upgrade.add_argument("revision", nargs="?", default="head", help="target (default: head)")
    downgrade = add_command(
        actions,
        "downgrade",
        _downgrade,
        "revert migrations down to REV",
        "Revert migrations down to REV ('base' removes every table).",
    )
    downgrade.add_argument("revision", help="target revision, e.g. base or 0001")
    add_command(
        actions,
        "current",
        _current,
        "show the schema revision",
        "Show the schema revision; exit 1 if it is not at head.",
    )
