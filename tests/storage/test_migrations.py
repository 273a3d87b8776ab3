from __future__ import annotations

import json
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

from storage import schema
from storage.db import Database
from storage.errors import SchemaOutOfDateError
from storage.models import Base

DRIFT_TABLES = {"drift_checks", "drift_episodes", "review_flags"}  # 0005
REVIEW_TABLES = {"review_digests", "review_skips"}  # 0007
LABEL_QUALITY_TABLES = {"annotator_flags", "label_checks", "label_suspects"}  # 0009
WORKSPACE_TABLES = {  # 0010
    "slack_bots",
    "slack_installations",
    "slack_oauth_states",
    "workspace_uninstalls",
}
ROLE_TABLES = {"workspace_roles"}  # 0011
TABLES = {
    "alerts",
    "aliases",
    "annotations",
    "appeals",
    "channel_policies",
    "inbox",
    "audit_log",
    *DRIFT_TABLES,
    "leases",
    "messages",
    "model_versions",
    "predictions",
    *REVIEW_TABLES,
    "slack_events",
    "second_opinions",
    "split_assignments",
    "training_runs",
    *LABEL_QUALITY_TABLES,
    *WORKSPACE_TABLES,
    *ROLE_TABLES,
}
# Added by 0006 (channel policies and appeals).
POLICY_TABLES = {"appeals", "channel_policies"}
# Added by 0008 (second opinions).
OPINION_TABLES = {"second_opinions"}


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


def test_the_alert_outbox_migration_keeps_existing_rows_both_ways(empty_database: Database) -> None:
    schema.upgrade(empty_database, "0001")
    with empty_database.engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO messages (id, team_id, channel_id, ts, text, received_at) "
            "VALUES (1, 'T1', 'C1', '1.1', 'WIN a prize', '2026-01-01 00:00:00')"
        )
    head = schema.head_revision()
    with pytest.raises(SchemaOutOfDateError, match=f"expects {head}; run `bertbot db upgrade`"):
        schema.check_schema(empty_database)

    schema.upgrade(empty_database, "0002")
    assert schema.current_revision(empty_database) == "0002"
    assert (
        _tables(empty_database)
        == TABLES
        - {"inbox"}
        - DRIFT_TABLES
        - POLICY_TABLES
        - REVIEW_TABLES
        - OPINION_TABLES
        - LABEL_QUALITY_TABLES
        - WORKSPACE_TABLES
        - ROLE_TABLES
    )
    columns = {c["name"] for c in inspect(empty_database.engine).get_columns("alerts")}
    assert {"prediction_id", "channel", "claimed_until", "posted_at", "slack_ts"} <= columns

    schema.downgrade(empty_database, "0001")
    assert (
        _tables(empty_database)
        == TABLES
        - {"alerts", "inbox"}
        - DRIFT_TABLES
        - POLICY_TABLES
        - REVIEW_TABLES
        - OPINION_TABLES
        - LABEL_QUALITY_TABLES
        - WORKSPACE_TABLES
        - ROLE_TABLES
    )
    with empty_database.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM messages").scalar() == 1


def test_superseded_runs_and_one_audit_format_both_ways(empty_database: Database) -> None:
    """0003: a ``superseded`` run status; old promotions name the previous version, not its id."""
    schema.upgrade(empty_database, "0002")
    with empty_database.engine.begin() as connection:
        for row_id, version in ((1, "1"), (2, "2")):
            connection.exec_driver_sql(
                "INSERT INTO model_versions (id, task, version, status, artifact_uri, sha256, "
                "base_encoder, hyperparameters, data_snapshot, metrics, created_by, created_at) "
                f"VALUES ({row_id}, 'spam', '{version}', 'accepted', 'models/spam/{version}', "
                "'0', 'x', '{}', '{}', '{}', 'cli', '2026-01-01 00:00:00')"
            )
        connection.exec_driver_sql(
            "INSERT INTO audit_log (actor, action, subject, details, created_at) VALUES "
            "('U1', 'promote', 'spam/2', '{\"reason\": \"better\", \"run\": 4, "
            "\"previous_version_id\": 1}', '2026-01-02 00:00:00')"
        )
        with pytest.raises(IntegrityError):
            with connection.begin_nested():
                _insert_run(connection, "superseded")
    schema.upgrade(empty_database, "0003")
    assert schema.current_revision(empty_database) == "0003"
    with empty_database.engine.begin() as connection:
        _insert_run(connection, "superseded")
        details = connection.exec_driver_sql("SELECT details FROM audit_log").scalar()
    details = json.loads(details) if isinstance(details, str) else details
    assert details == {"reason": "better", "run": 4, "previous": "1", "kind": "gate"}

    schema.downgrade(empty_database, "0002")
    with empty_database.engine.connect() as connection:
        statuses = connection.exec_driver_sql("SELECT status FROM training_runs").scalars().all()
    assert statuses == ["failed"]


def _insert_run(connection: Any, status: str) -> None:
    connection.exec_driver_sql(
        'INSERT INTO training_runs (task, "trigger", requested_by, status, created_at) '
        f"VALUES ('spam', 'admin', 'U1', '{status}', '2026-01-03 00:00:00')"
    )


def test_the_drift_migration_adds_its_tables_and_keeps_messages_both_ways(
    empty_database: Database,
) -> None:
    schema.upgrade(empty_database, "0004")
    with empty_database.engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO messages (id, team_id, channel_id, ts, text, received_at) "
            "VALUES (1, 'T1', 'C1', '1.1', 'hello', '2026-01-01 00:00:00')"
        )
    schema.upgrade(empty_database, "0005")
    assert (
        _tables(empty_database)
        == TABLES
        - POLICY_TABLES
        - REVIEW_TABLES
        - OPINION_TABLES
        - LABEL_QUALITY_TABLES
        - WORKSPACE_TABLES
        - ROLE_TABLES
    )
    with empty_database.engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO review_flags (task, message_id, reason, score, flagged_at) "
            "VALUES ('spam', 1, 'drift', 0.5, '2026-01-02 00:00:00')"
        )
        with pytest.raises(IntegrityError):  # one flag per task, message and reason
            with connection.begin_nested():
                connection.exec_driver_sql(
                    "INSERT INTO review_flags (task, message_id, reason, score, flagged_at) "
                    "VALUES ('spam', 1, 'drift', 0.7, '2026-01-03 00:00:00')"
                )
    schema.downgrade(empty_database, "0004")
    assert (
        _tables(empty_database)
        == TABLES
        - DRIFT_TABLES
        - POLICY_TABLES
        - REVIEW_TABLES
        - OPINION_TABLES
        - LABEL_QUALITY_TABLES
        - WORKSPACE_TABLES
        - ROLE_TABLES
    )
    with empty_database.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM messages").scalar() == 1


def test_the_workspace_roles_migration_backfills_teams_and_keys_digests_both_ways(
    empty_database: Database,
) -> None:
    schema.upgrade(empty_database, "0009")
    with empty_database.engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO messages (id, team_id, channel_id, ts, text, received_at) "
            "VALUES (1, 'T1', 'C1', '1.1', 'hello', '2026-01-01 00:00:00')"
        )
        for id_, message in ((1, "1"), (2, "NULL")):
            connection.exec_driver_sql(
                "INSERT INTO annotations (id, task, message_id, text, text_hash, label, "
                f"annotator, source, created_at) VALUES ({id_}, 'spam', {message}, 'hello', "
                "'h', 'spam', 'U1', 'correction', '2026-01-02 00:00:00')"
            )
        connection.exec_driver_sql(
            "INSERT INTO review_digests (user_id, sent_at, items) "
            "VALUES ('U1', '2026-01-02 00:00:00', 3)"
        )
    schema.upgrade(empty_database, "0011")
    with empty_database.engine.begin() as connection:
        teams = connection.exec_driver_sql("SELECT id, team_id FROM annotations ORDER BY id").all()
        assert [tuple(row) for row in teams] == [(1, "T1"), (2, None)]
        assert connection.exec_driver_sql("SELECT team_id FROM review_digests").scalar() == ""
        connection.exec_driver_sql(  # the same moderator's digest of another workspace
            "INSERT INTO review_digests (user_id, team_id, sent_at, items) "
            "VALUES ('U1', 'T2', '2026-01-03 00:00:00', 1)"
        )
        with pytest.raises(IntegrityError):  # one row per team, user and role
            with connection.begin_nested():
                for _ in range(2):
                    connection.exec_driver_sql(
                        "INSERT INTO workspace_roles (team_id, user_id, role, granted_by, "
                        "granted_at) VALUES ('T1', 'U1', 'admin', 'cli', '2026-01-03 00:00:00')"
                    )
        with pytest.raises(IntegrityError):  # only moderator and admin
            with connection.begin_nested():
                connection.exec_driver_sql(
                    "INSERT INTO workspace_roles (team_id, user_id, role, granted_by, "
                    "granted_at) VALUES ('T1', 'U1', 'owner', 'cli', '2026-01-03 00:00:00')"
                )
    schema.downgrade(empty_database, "0009")
    assert "workspace_roles" not in _tables(empty_database)
    with empty_database.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM review_digests").scalar() == 1
        assert connection.exec_driver_sql("SELECT count(*) FROM annotations").scalar() == 2
