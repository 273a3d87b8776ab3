"""0006 (channel policies, alert actions, appeals) keeps existing rows, both ways."""

from __future__ import annotations

from sqlalchemy import inspect

from storage import schema
from storage.db import Database


def test_existing_alerts_become_alert_actions_and_appeal_labels_survive_a_downgrade(
    empty_database: Database,
) -> None:
    schema.upgrade(empty_database, "0004")
    with empty_database.engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO messages (id, team_id, channel_id, ts, text, received_at) "
            "VALUES (1, 'T1', 'C1', '1.1', 'WIN a prize', '2026-01-01 00:00:00')"
        )
        connection.exec_driver_sql(
            "INSERT INTO predictions (id, message_id, task, model_version, label, scores, "
            "latency_ms, created_at) VALUES (1, 1, 'spam', '1', 'spam', "
            "'{\"ham\": 0.1, \"spam\": 0.9}', 1.0, '2026-01-01 00:00:00')"
        )
        connection.exec_driver_sql(
            "INSERT INTO alerts (id, prediction_id, label, channel, created_at, attempts) "
            "VALUES (1, 1, 'spam', 'moderators', '2026-01-01 00:00:00', 0)"
        )
    schema.upgrade(empty_database, "0006")
    tables = set(inspect(empty_database.engine).get_table_names())
    assert {"channel_policies", "appeals"} <= tables
    with empty_database.engine.begin() as connection:
        action = connection.exec_driver_sql("SELECT action FROM alerts WHERE id = 1").scalar()
        connection.exec_driver_sql(
            "INSERT INTO annotations (task, message_id, text, text_hash, label, annotator, "
            "source, created_at) VALUES ('spam', 1, 'WIN a prize', 'h', 'ham', 'U0MOD', "
            "'appeal', '2026-01-02 00:00:00')"
        )
    assert action == "alert"

    schema.downgrade(empty_database, "0004")
    assert not {"channel_policies", "appeals"} & set(
        inspect(empty_database.engine).get_table_names()
    )
    with empty_database.engine.connect() as connection:
        sources = connection.exec_driver_sql("SELECT source FROM annotations").scalars().all()
        alerts = connection.exec_driver_sql("SELECT count(*) FROM alerts").scalar()
    assert sources == ["correction"] and alerts == 1  # the label is kept, as a correction
