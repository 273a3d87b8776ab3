"""The model registry: immutable versions and the aliases that point at them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage._convert import to_record
from storage.enums import VersionStatus, utcnow
from storage.errors import DuplicateError, NotFoundError
from storage.models import Alias, ModelVersion
from storage.records import AliasRecord, ModelVersionRecord

PRODUCTION = "production"


def add_model_version(
    *,
    session: Session,
    task: str,
    version: str,
    status: VersionStatus,
    artifact_uri: str,
    sha256: str,
    base_encoder: str,
    hyperparameters: Mapping[str, Any],
    data_snapshot: Mapping[str, Any],
    metrics: Mapping[str, Any],
    created_by: str,
) -> ModelVersionRecord:
    """Register a trained artifact. Versions are immutable once added.

    Raises:
        DuplicateError: The task has a version of that name already.
    """
    row = ModelVersion(
        task=task,
        version=version,
        status=status,
        artifact_uri=artifact_uri,
        sha256=sha256,
        base_encoder=base_encoder,
        hyperparameters=dict(hyperparameters),
        data_snapshot=dict(data_snapshot),
        metrics=dict(metrics),
        created_by=created_by,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError as exc:
        raise DuplicateError(f"{task} already has a version {version!r}") from exc
    return to_record(ModelVersionRecord, row)


def get_model_version(*, session: Session, task: str, version: str) -> ModelVersionRecord:
    row = session.scalars(
        select(ModelVersion).where(ModelVersion.task == task, ModelVersion.version == version)
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"{task} has no version {version!r}")
    return to_record(ModelVersionRecord, row)


def get_model_version_by_id(*, session: Session, version_id: int) -> ModelVersionRecord:
    row = session.get(ModelVersion, version_id)
    if row is None:
        raise NotFoundError(f"no model version {version_id}")
    return to_record(ModelVersionRecord, row)


def list_model_versions(*, session: Session, task: str) -> list[ModelVersionRecord]:
    """A task's versions, oldest first."""
    rows = session.scalars(
        select(ModelVersion)
        .where(ModelVersion.task == task)
        .order_by(ModelVersion.created_at, ModelVersion.id)
    )
    return [to_record(ModelVersionRecord, row) for row in rows]


def mark_artifact_deleted(
    *, session: Session, version_id: int, when: datetime | None = None
) -> None:
    """Record that a version's files were removed by the retention policy."""
    row = session.get(ModelVersion, version_id)
    if row is None:
        raise NotFoundError(f"no model version {version_id}")
    row.artifact_deleted_at = when or utcnow()
    session.flush()


def get_alias(*, session: Session, task: str, alias: str = PRODUCTION) -> ModelVersionRecord | None:
    """The version an alias points to, or None if the task has no such alias yet."""
    row = session.scalars(
        select(ModelVersion)
        .join(Alias, Alias.model_version_id == ModelVersion.id)
        .where(Alias.task == task, Alias.alias == alias)
    ).one_or_none()
    return None if row is None else to_record(ModelVersionRecord, row)


def get_alias_record(*, session: Session, task: str, alias: str = PRODUCTION) -> AliasRecord | None:
    row = session.get(Alias, (task, alias))
    return None if row is None else to_record(AliasRecord, row)


def lock_alias(
    *, session: Session, task: str, alias: str = PRODUCTION
) -> ModelVersionRecord | None:
    """The version an alias points to, with the alias row locked for the unit of work.

    On PostgreSQL the row stays locked (``SELECT ... FOR UPDATE``) until the caller's unit
    of work ends, so a compare-and-set that reads here and then moves the alias cannot
    interleave with another. SQLite transactions start with ``BEGIN IMMEDIATE`` (see
    :func:`storage.db.make_engine`), which serialises writers the same way.
    """
    row = session.get(Alias, (task, alias), with_for_update=True, populate_existing=True)
    if row is None:
        return None
    return get_model_version_by_id(session=session, version_id=row.model_version_id)


def compare_and_set_alias(
    *,
    session: Session,
    task: str,
    version_id: int,
    expected_version_id: int | None,
    updated_by: str,
    alias: str = PRODUCTION,
) -> bool:
    """Point an alias at a version only if it still points at ``expected_version_id``.

    The one write path of aliases (promotion and rollback are built on it). Call
    :func:`lock_alias` first in the same unit of work to read what it points at.

    Args:
        session: The caller's unit of work.
        task: The task.
        version_id: The version to point at.
        expected_version_id: What the alias must point at now (None: it must not exist).
        updated_by: Who moves it.
        alias: The alias name.

    Returns:
        True if the alias moved; False if it pointed elsewhere (nothing changed).
    """
    version = session.get(ModelVersion, version_id)
    if version is None:
        raise NotFoundError(f"no model version {version_id}")
    if version.task != task:
        raise ValueError(f"version {version.version} belongs to {version.task}, not {task}")
    row = session.get(Alias, (task, alias), with_for_update=True, populate_existing=True)
    if row is None:
        if expected_version_id is not None:
            return False
        try:
            with session.begin_nested():
                session.add(
                    Alias(
                        task=task, alias=alias, model_version_id=version_id, updated_by=updated_by
                    )
                )
        except IntegrityError:
            return False  # another unit of work created it first
        return True
    if row.model_version_id != expected_version_id:
        return False
    row.model_version_id = version_id
    row.updated_by = updated_by
    row.updated_at = utcnow()
    session.flush()
    return True
