"""Copying a deployment's models and seed labels into another database (the emulator's).

``bertbot serve --emulator`` runs on a database of its own, so nothing done in the emulator
reaches the deployment's. On first use it copies what the emulator needs to behave like
the deployment: every model version with its aliases (so it serves the same production
models) and the seed labels with their split assignments (so ``/retrain`` has data). No
Slack message, prediction, correction, run or audit entry is copied: the emulator never
shows a workspace's messages.

The source is read through :func:`read_only_database`, whose connections refuse writes
(SQLite ``PRAGMA query_only``, PostgreSQL ``default_transaction_read_only``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine, event, func, insert, select
from sqlalchemy.orm import Session

from storage.db import Database
from storage.enums import AnnotationSource
from storage.models import Alias, Annotation, ModelVersion, SplitAssignment

_BATCH = 1000


@dataclass(frozen=True)
class CopiedRows:
    """How many rows were copied, by kind."""

    model_versions: int
    aliases: int
    seed_labels: int
    split_assignments: int


def read_only_database(url: str) -> Database:
    """A database whose every connection refuses to write (a deployment's, read by a copy).

    Args:
        url: A ``sqlite:///path`` (the file must exist) or ``postgresql+psycopg://`` URL.
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _query_only(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA query_only=ON")
            cursor.close()

        return Database(engine)
    return Database(
        create_engine(url, connect_args={"options": "-c default_transaction_read_only=on"})
    )


def has_models_or_labels(*, session: Session) -> bool:
    """Whether the database has any model version or label (it is no empty copy target)."""
    return any(
        session.scalar(select(func.count()).select_from(table))
        for table in (ModelVersion, Annotation)
    )


def copy_models_and_seed_labels(
    *, source: Session, target: Session, artifact_uri: Callable[[str], str]
) -> CopiedRows:
    """Copy the model registry and the seed labels from ``source`` into ``target``.

    ``target`` should hold no model or label yet (:func:`has_models_or_labels`). Rows get
    new ids in ``target``; aliases follow their versions.

    Args:
        source: A unit of work on the deployment's database (read only).
        target: The caller's unit of work on the copy.
        artifact_uri: The URI a copied version's artifact gets in ``target`` (relative
            URIs name files under the deployment's home, which the copy's is not).

    Returns:
        What was copied.
    """
    new_ids: dict[int, int] = {}
    columns = [c for c in ModelVersion.__table__.columns if c.key != "id"]
    for row in source.execute(select(ModelVersion.__table__).order_by(ModelVersion.id)):
        values = {c.key: row._mapping[c] for c in columns}
        values["artifact_uri"] = artifact_uri(values["artifact_uri"])
        new_ids[row.id] = target.execute(
            insert(ModelVersion).values(**values).returning(ModelVersion.id)
        ).scalar_one()
    aliases = [
        {**row._asdict(), "model_version_id": new_ids[row.model_version_id]}
        for row in source.execute(select(Alias.__table__))
    ]
    if aliases:
        target.execute(insert(Alias), aliases)
    seed = select(Annotation.__table__).where(
        Annotation.source == AnnotationSource.SEED, Annotation.message_id.is_(None)
    )
    # A seed label names no message or prediction; its id is the copy's own.
    seed_labels = _copy(source, target, Annotation.__table__, seed.order_by(Annotation.id), "id")
    splits = _copy(source, target, SplitAssignment.__table__, select(SplitAssignment.__table__))
    return CopiedRows(len(new_ids), len(aliases), seed_labels, splits)


def _copy(source: Session, target: Session, table: Any, query: Any, *skip: str) -> int:
    copied = 0
    for batch in _batches(source, query):
        rows = [{k: v for k, v in row.items() if k not in skip} for row in batch]
        target.execute(insert(table), rows)
        copied += len(rows)
    return copied


def _batches(session: Session, query: Any) -> Iterator[list[dict[str, Any]]]:
    result = session.execute(query.execution_options(yield_per=_BATCH)).mappings()
    for partition in result.partitions(_BATCH):
        yield [dict(row) for row in partition]
