"""The one owner of promotion: compare-and-set alias moves, verified artifacts, one audit format.

Versions here have real artifact folders (a few files and a manifest); every move verifies
them in full. Each test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from storage import audit, registry
from storage.db import Database
from storage.enums import VersionStatus
from trainer.artifact import write_manifest
from trainer.promotion import (
    ArtifactRefusedError,
    ProductionMovedError,
    PromotionError,
    manual_move,
    move_alias,
    rollback_target,
    snapshot_time,
)


@pytest.fixture
def database(fresh_database: Database) -> Database:
    return fresh_database


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def add_version(database: Database, home: Path, version: str, status: VersionStatus) -> int:
    """Register a version whose artifact folder exists and matches its manifest."""
    folder = home / "models" / "spam" / version
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(f"graph {version}".encode())
    (folder / "variables" / "variables.data").write_bytes(bytes(range(256)) * 4)
    (folder / "labels.json").write_text('["ham", "spam"]\n')
    sha256 = write_manifest(folder, {"task": "spam", "version": version})
    with database.begin() as session:
        return registry.add_model_version(
            session=session,
            task="spam",
            version=version,
            status=status,
            artifact_uri=f"models/spam/{version}",
            sha256=sha256,
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


def moves(database: Database) -> list[tuple[str, str, str]]:
    """(action, subject, previous) of every alias move, newest first."""
    with database.begin() as session:
        entries = audit.list_audit(session=session, subject_prefix="spam/")
    return [
        (e.action, e.subject, e.details.get("previous"))
        for e in entries
        if e.action in ("promote", "rollback")
    ]


def test_promote_then_roll_back_moves_the_alias_and_audits_who_and_why(
    database: Database, home: Path
) -> None:
    add_version(database, home, "1", VersionStatus.ACCEPTED)
    add_version(database, home, "2", VersionStatus.REJECTED)
    first = move_alias(database, "spam", "1", None, "cli", "first", "first", home=home)
    assert first.previous is None and production(database) == "1"

    move = manual_move(
        database,
        "spam",
        action="promote",
        actor="U0ADMIN",
        reason="gate too strict",
        home=home,
        version="2",
        details={"via": "slack"},
    )
    assert move.overrides_gate and move.previous is not None and move.previous.version == "1"
    assert production(database) == "2"
    assert rollback_target(database, "spam") == ("2", "1")

    back = manual_move(
        database,
        "spam",
        action="rollback",
        actor="U0ADMIN",
        reason="worse in practice",
        home=home,
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
    # One audit format for every kind of move.
    assert entries[1].details == {
        "via": "slack",
        "kind": "promote",
        "reason": "gate too strict",
        "previous": "1",
        "gate_status": "rejected",
    }
    assert entries[0].details["kind"] == "rollback" and entries[0].details["previous"] == "2"
    assert entries[2].details["kind"] == "first" and entries[2].details["previous"] is None


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"action": "promote", "version": "9"}, PromotionError, "spam has no version '9'"),
        ({"action": "promote", "version": "1"}, PromotionError, "spam v1 is production already"),
        ({"action": "rollback"}, PromotionError, "spam has no earlier production version"),
        (
            {"action": "rollback", "expected_production": "2"},
            ProductionMovedError,
            "spam production moved: it is v1 now, not v2; nothing changed",
        ),
        (
            {"action": "promote", "version": "2", "expected_production": "3"},
            ProductionMovedError,
            "it is v1 now, not v3",
        ),
        ({"action": "promote"}, PromotionError, "name the spam version to promote"),
    ],
    ids=["unknown", "already", "nothing-earlier", "moved-rollback", "moved-promote", "no-version"],
)
def test_impossible_moves_change_nothing(
    database: Database,
    home: Path,
    kwargs: dict[str, str],
    error: type[Exception],
    message: str,
) -> None:
    add_version(database, home, "1", VersionStatus.ACCEPTED)
    add_version(database, home, "2", VersionStatus.ACCEPTED)
    move_alias(database, "spam", "1", None, "cli", "x", "first", home=home)
    with pytest.raises(error, match=message):
        manual_move(database, "spam", actor="U0ADMIN", reason="why", home=home, **kwargs)  # type: ignore[arg-type]
    assert production(database) == "1"
    assert len(moves(database)) == 1


def _tamper(home: Path, version: str, how: str) -> str:
    folder = home / "models" / "spam" / version
    if how == "changed":
        (folder / "variables" / "variables.data").write_bytes(b"not the trained weights")
        return "variables/variables.data"
    if how == "missing":
        (folder / "labels.json").unlink()
        return "labels.json"
    (folder / "variables" / "notes.txt").write_text("dropped here by someone\n")
    return "variables/notes.txt"


@pytest.mark.parametrize("how", ["changed", "missing", "extra"])
def test_a_tampered_artifact_is_refused_naming_the_file(
    database: Database, home: Path, how: str
) -> None:
    add_version(database, home, "1", VersionStatus.ACCEPTED)
    add_version(database, home, "2", VersionStatus.REJECTED)
    move_alias(database, "spam", "1", None, "cli", "x", "first", home=home)
    name = _tamper(home, "2", how)
    with pytest.raises(ArtifactRefusedError, match=name.replace(".", r"\.")):
        manual_move(
            database, "spam", action="promote", actor="cli", reason="try", home=home, version="2"
        )
    assert production(database) == "1"
    assert len(moves(database)) == 1


def test_a_deleted_artifact_is_refused(database: Database, home: Path) -> None:
    add_version(database, home, "1", VersionStatus.ACCEPTED)
    two = add_version(database, home, "2", VersionStatus.REJECTED)
    with database.begin() as session:
        registry.mark_artifact_deleted(session=session, version_id=two)
    with pytest.raises(ArtifactRefusedError, match="artifact was deleted"):
        move_alias(database, "spam", "2", None, "cli", "x", "first", home=home)
    assert production(database) is None


def test_concurrent_promotes_of_different_versions_one_wins(database: Database, home: Path) -> None:
    """Both admins saw v1; the second to commit learns that production moved."""
    for version in ("1", "2", "3"):
        add_version(database, home, version, VersionStatus.ACCEPTED)
    move_alias(database, "spam", "1", None, "cli", "first", "first", home=home)
    start = threading.Barrier(2)
    results: dict[str, object] = {}

    def promote(version: str) -> None:
        start.wait()
        try:
            results[version] = manual_move(
                database,
                "spam",
                action="promote",
                actor=f"U{version}",
                reason="mine",
                home=home,
                version=version,
                expected_production="1",
            )
        except PromotionError as exc:
            results[version] = exc

    threads = [threading.Thread(target=promote, args=(v,)) for v in ("2", "3")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    errors = [r for r in results.values() if isinstance(r, Exception)]
    winners = [v for v, r in results.items() if not isinstance(r, Exception)]
    assert len(winners) == 1 and len(errors) == 1, results
    assert isinstance(errors[0], ProductionMovedError)
    assert f"it is v{winners[0]} now, not v1" in str(errors[0])
    assert production(database) == winners[0]
    assert moves(database)[0] == ("promote", f"spam/{winners[0]}", "1")
    assert len(moves(database)) == 2, "one audit entry per move"


def test_a_file_uri_with_a_space_resolves(database: Database, tmp_path: Path) -> None:
    home = tmp_path / "a home with spaces"
    add_version(database, home, "1", VersionStatus.ACCEPTED)
    with database.begin() as session:
        version = registry.get_model_version(session=session, task="spam", version="1")
    uri = (home / "models" / "spam" / "1").resolve().as_uri()
    assert "%20" in uri
    from trainer.artifact import resolve_artifact

    assert resolve_artifact(Path("/elsewhere"), uri) == home / "models" / "spam" / "1"
    assert snapshot_time(version) == version.created_at  # no snapshot recorded: its creation
