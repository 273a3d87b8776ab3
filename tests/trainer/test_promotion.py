"""Manual moves of the production alias (shared by ``bertbot models`` and Slack's card)."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage import audit, registry, schema
from storage.db import Database
from storage.enums import VersionStatus
from trainer.promotion import PromotionError, move_production


@pytest.fixture
def database(tmp_path: Path) -> Database:
    database = Database.connect(f"sqlite:///{tmp_path / 'moves.db'}")
    schema.upgrade(database)
    return database


def add_version(database: Database, version: str, status: VersionStatus) -> int:
    with database.begin() as session:
        return registry.add_model_version(
            session=session,
            task="spam",
            version=version,
            status=status,
            artifact_uri=f"models/spam/{version}",
            sha256="0" * 64,
            base_encoder="fake",
            hyperparameters={},
            data_snapshot={},
            metrics={},
            created_by="cli",
        ).id


def production(database: Database) -> str | None:
    with database.begin() as session:
        current = registry.get_alias(session=session, task="spam")
    return current.version if current else None


def test_promote_then_roll_back_moves_the_alias_and_audits_who_and_why(
    database: Database,
) -> None:
    add_version(database, "1", VersionStatus.ACCEPTED)
    add_version(database, "2", VersionStatus.REJECTED)
    first = move_production(
        database, "spam", action="promote", actor="cli", reason="first", version="1"
    )
    assert first.previous is None and production(database) == "1"

    move = move_production(
        database,
        "spam",
        action="promote",
        actor="U0ADMIN",
        reason="gate too strict",
        version="2",
        details={"via": "slack"},
    )
    assert move.overrides_gate and move.previous is not None and move.previous.version == "1"
    assert production(database) == "2"

    back = move_production(
        database,
        "spam",
        action="rollback",
        actor="U0ADMIN",
        reason="worse in practice",
        expected_production="2",
    )
    assert back.current.version == "1" and production(database) == "1"
    with database.begin() as session:
        entries = audit.list_audit(session=session, subject_prefix="spam/")
    assert [(e.action, e.actor, e.subject, e.details["reason"]) for e in entries] == [
        ("rollback", "U0ADMIN", "spam/1", "worse in practice"),
        ("promote", "U0ADMIN", "spam/2", "gate too strict"),
        ("promote", "cli", "spam/1", "first"),
    ]
    assert entries[1].details == {
        "via": "slack",
        "reason": "gate too strict",
        "previous": "1",
        "gate_status": "rejected",
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"action": "promote", "version": "9"}, "spam has no version '9'"),
        ({"action": "promote", "version": "1"}, "spam v1 is production already"),
        ({"action": "rollback"}, "spam has no earlier production version"),
        (
            {"action": "rollback", "expected_production": "2"},
            "spam production is v1 now, not v2; nothing changed",
        ),
        ({"action": "promote"}, "name the spam version to promote"),
    ],
    ids=["unknown", "already", "nothing-earlier", "moved-meanwhile", "no-version"],
)
def test_impossible_moves_change_nothing(
    database: Database, kwargs: dict[str, str], message: str
) -> None:
    add_version(database, "1", VersionStatus.ACCEPTED)
    add_version(database, "2", VersionStatus.ACCEPTED)
    move_production(database, "spam", action="promote", actor="cli", reason="x", version="1")
    with pytest.raises(PromotionError, match=message):
        move_production(database, "spam", actor="U0ADMIN", reason="why", **kwargs)  # type: ignore[arg-type]
    assert production(database) == "1"
    with database.begin() as session:
        assert len(audit.list_audit(session=session)) == 1
