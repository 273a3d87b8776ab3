"""Schema revisions: upgrade, downgrade, and the start-up check.

The app refuses a database whose schema is not at the revision the code expects and
names the command that fixes it (``bertbot db upgrade``).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.exc import SQLAlchemyError

from storage.db import Database
from storage.errors import SchemaOutOfDateError, StorageError

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "alembic"
UPGRADE_HINT = "bertbot db upgrade"


def alembic_config(database: Database | None = None) -> Config:
    """An Alembic config for bertbot's migrations (URL from the given database)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if database is not None:
        config.set_main_option(
            "sqlalchemy.url",
            database.engine.url.render_as_string(hide_password=False).replace("%", "%%"),
        )
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations found"
    return head


def current_revision(database: Database) -> str | None:
    """The revision the database is at, or None for an empty database."""
    try:
        with database.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot read the schema revision of {database.url}: {exc}") from exc


def upgrade(database: Database, revision: str = "head") -> None:
    _run(database, "upgrade", revision)


def downgrade(database: Database, revision: str) -> None:
    _run(database, "downgrade", revision)


def _run(database: Database, verb: str, revision: str) -> None:
    config = alembic_config(database)
    try:
        with database.engine.begin() as connection:
            config.attributes["connection"] = connection
            getattr(command, verb)(config, revision)
    except CommandError as exc:  # unknown revision, ambiguous heads, ...
        raise StorageError(f"{verb} to {revision!r} failed: {exc}") from exc
    except SQLAlchemyError as exc:
        raise StorageError(f"{verb} to {revision!r} failed: {exc}") from exc


def check_schema(database: Database) -> str:
    """Ensure the database is at head.

    Returns:
        The current revision.

    Raises:
        SchemaOutOfDateError: The schema is missing or behind/ahead, with the fix.
        StorageError: The database cannot be reached.
    """
    current = current_revision(database)
    head = head_revision()
    if current == head:
        return current
    if current is None:
        raise SchemaOutOfDateError(
            f"the database {database.url} has no bertbot schema yet; run `{UPGRADE_HINT}`"
        )
    known = {rev.revision for rev in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
    if current not in known:
        raise SchemaOutOfDateError(
            f"the database {database.url} is at revision {current}, which this version of "
            f"bertbot does not know (expected {head}); upgrade bertbot or run "
            "`bertbot db downgrade <rev>` with the newer version"
        )
    raise SchemaOutOfDateError(
        f"the database {database.url} is at revision {current}, this code expects {head}; "
        f"run `{UPGRADE_HINT}`"
    )
