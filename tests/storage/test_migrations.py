from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from storage import schema
from storage.db import Database
from storage.errors import SchemaOutOfDateError
from storage.models import Base

TABLES = {
    "aliases",
    "annotations",
    "audit_log",
    "leases",
    "messages",
    "model_versions",
    "predictions",
    "slack_events",
    "split_assignments",
    "training_runs",
}


def _tables(database: Database) -> set[str]:
    return set(inspect(database.engine).get_table_names()) - {"alembic_version"}


def test_upgrade_downgrade_upgrade(empty_database: Database) -> None:
    assert schema.current_revision(empty_database) is None
    schema.upgrade(empty_database)
    assert schema.current_revision(empty_database) == schema.head_revision()
    assert _tables(empty_database) == TABLES

    schema.downgrade(empty_database, "base")
    assert schema.current_revision(empty_database) is None
    assert _tables(empty_database) == set()

    schema.upgrade(empty_database)
    assert _tables(empty_database) == TABLES
    assert schema.check_schema(empty_database) == schema.head_revision()


def test_models_and_migrations_agree(migrated_database: Database) -> None:
    with migrated_database.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "target_metadata": Base.metadata}
        )
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], f"models differ from migrations; write a migration: {diff}"


def test_empty_database_is_refused_with_the_fix(empty_database: Database) -> None:
    with pytest.raises(SchemaOutOfDateError, match="run `bertbot db upgrade`"):
        schema.check_schema(empty_database)


def test_older_schema_is_refused_with_the_fix(empty_database: Database) -> None:
    schema.upgrade(empty_database)
    with empty_database.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0000'")
    with pytest.raises(SchemaOutOfDateError, match="does not know"):
        schema.check_schema(empty_database)
