from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from storage import registry
from storage.enums import VersionStatus
from storage.errors import DuplicateError, NotFoundError
from storage.records import ModelVersionRecord


def _version(session: Session, version: str, task: str = "spam") -> ModelVersionRecord:
    return registry.add_model_version(
        session=session,
        task=task,
        version=version,
        status=VersionStatus.ACCEPTED,
        artifact_uri=f"models/{task}/{version}",
        sha256="0" * 64,
        base_encoder="all-MiniLM-L6-v2",
        hyperparameters={"learning_rate": 3e-5},
        data_snapshot={"hash": "abc", "counts": {"spam": 3}},
        metrics={"macro_f1": 0.9},
        created_by="U1",
    )


def test_versions_are_unique_per_task(session: Session) -> None:
    first = _version(session, "1")
    with pytest.raises(DuplicateError):
        _version(session, "1")
    _version(session, "1", task="sentiment")
    kept = registry.get_model_version(session=session, task="spam", version="1")
    assert kept.id == first.id and kept.metrics == {"macro_f1": 0.9}
    assert kept.hyperparameters == {"learning_rate": 3e-5}
    with pytest.raises(NotFoundError):
        registry.get_model_version(session=session, task="spam", version="2")


def test_alias_moves_only_from_the_expected_version(session: Session) -> None:
    assert registry.get_alias(session=session, task="spam") is None
    one, two = _version(session, "1"), _version(session, "2")

    def move(version_id: int, expected: int | None, who: str) -> bool:
        return registry.compare_and_set_alias(
            session=session,
            task="spam",
            version_id=version_id,
            expected_version_id=expected,
            updated_by=who,
        )

    assert not move(one.id, two.id, "U1"), "no alias yet: expecting one must fail"
    assert registry.get_alias(session=session, task="spam") is None
    assert move(one.id, None, "U1")
    assert registry.lock_alias(session=session, task="spam").version == "1"
    assert not move(two.id, None, "U2"), "the alias exists: expecting none must fail"
    assert not move(two.id, two.id, "U2")
    assert registry.get_alias(session=session, task="spam").version == "1"
    assert move(two.id, one.id, "U2")
    assert registry.get_alias(session=session, task="spam").version == "2"
    assert registry.get_alias_record(session=session, task="spam").updated_by == "U2"


def test_alias_refuses_another_tasks_version(session: Session) -> None:
    other = _version(session, "1", task="sentiment")
    with pytest.raises(ValueError, match="belongs to sentiment"):
        registry.compare_and_set_alias(
            session=session,
            task="spam",
            version_id=other.id,
            expected_version_id=None,
            updated_by="U1",
        )
    with pytest.raises(NotFoundError):
        registry.compare_and_set_alias(
            session=session,
            task="spam",
            version_id=10**6,
            expected_version_id=None,
            updated_by="U1",
        )


def test_artifact_deletion_is_recorded(session: Session) -> None:
    version = _version(session, "1")
    registry.mark_artifact_deleted(session=session, version_id=version.id)
    again = registry.get_model_version_by_id(session=session, version_id=version.id)
    assert again.artifact_deleted_at is not None
