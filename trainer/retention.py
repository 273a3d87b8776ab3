"""Disk hygiene of a task's model directory: half-written artifacts and rejected ones."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from storage import registry
from storage.db import Database
from storage.enums import VersionStatus
from trainer.artifact import resolve_artifact
from trainer.options import RetrainOptions

logger = logging.getLogger(__name__)

TMP_MARKER = ".tmp-"


def clean_temporary_files(task_dir: Path) -> list[Path]:
    """Remove half-written artifacts of runs that died (``.<version>.tmp-*``)."""
    removed = []
    if task_dir.is_dir():
        for path in task_dir.iterdir():
            if path.name.startswith(".") and TMP_MARKER in path.name:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed


def apply_retention(database: Database, task: str, options: RetrainOptions) -> None:
    """Delete the artifacts of all but the newest ``keep_rejected`` rejected candidates."""
    with database.begin() as session:
        versions = registry.list_model_versions(session=session, task=task)
        production = registry.get_alias(session=session, task=task)
    rejected = [
        v
        for v in versions
        if v.status == VersionStatus.REJECTED
        and v.artifact_deleted_at is None
        and (production is None or v.id != production.id)
    ]
    for version in rejected[: max(0, len(rejected) - options.keep_rejected)]:
        shutil.rmtree(resolve_artifact(options.artifacts, version.artifact_uri), ignore_errors=True)
        with database.begin() as session:
            registry.mark_artifact_deleted(session=session, version_id=version.id)
        logger.info("deleted the artifact of rejected %s v%s", task, version.version)
