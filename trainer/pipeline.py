"""From a trained artifact to the registry: versions, and a task's first model.

A retrained candidate goes through :mod:`trainer.retrain` instead; both register versions
here-or-there and move the alias only through :func:`trainer.promotion.move_alias`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storage import audit, registry
from storage.db import Database
from storage.enums import VersionStatus
from storage.records import ModelVersionRecord
from trainer.artifact import ArtifactLocation, artifact_uri
from trainer.gate import Gate
from trainer.promotion import ProductionMovedError, move_alias

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Registered:
    version: ModelVersionRecord
    promoted: bool
    reason: str


def next_version(database: Database, task: str) -> str:
    """The next free integer version name of a task ("1", "2", ...)."""
    with database.begin() as session:
        versions = registry.list_model_versions(session=session, task=task)
    numbers = [int(v.version) for v in versions if v.version.isdigit()]
    return str(max(numbers, default=0) + 1)


def register_model(
    database: Database,
    *,
    task: str,
    version: str,
    artifact_dir: Path,
    home: ArtifactLocation,
    sha256: str,
    base_encoder: str,
    hyperparameters: dict[str, Any],
    data_snapshot: dict[str, Any],
    metrics: dict[str, Any],
    created_by: str,
    gate: Gate,
    promote_if_first: bool = True,
) -> Registered:
    """Add a trained model to the registry; make it production if the task has none yet.

    A first model is promoted only if it passes the gate's first-model rule on its eval set
    (or validation set, when it had no eval set). Registering and promoting share one unit
    of work; the artifact is verified before the alias moves.
    """
    scored = metrics.get("eval") or metrics.get("validation")
    with database.begin() as session:
        record = registry.add_model_version(
            session=session,
            task=task,
            version=version,
            status=VersionStatus.ACCEPTED,
            artifact_uri=artifact_uri(home, artifact_dir),
            sha256=sha256,
            base_encoder=base_encoder,
            hyperparameters=hyperparameters,
            data_snapshot=data_snapshot,
            metrics=metrics,
            created_by=created_by,
        )
        audit.record_audit(
            session=session,
            actor=created_by,
            action="register",
            subject=f"{task}/{version}",
            details={"artifact": record.artifact_uri, "sha256": sha256},
        )
        production = registry.get_alias(session=session, task=task)
        if production is not None or not promote_if_first:
            reason = (
                f"production stays {production.version}; promotion goes through the gate"
                if production is not None
                else "not promoted (asked not to)"
            )
            return Registered(record, False, reason)
        check = gate.first_model(scored or {})
        if not check.passed:
            return Registered(record, False, f"not promoted: {check.detail}")
        reason = f"first model of {task}: {check.detail}"
        try:
            move_alias(
                database,
                task,
                version,
                None,
                created_by,
                reason,
                "first",
                home=home,
                session=session,
            )
        except ProductionMovedError as exc:
            return Registered(record, False, f"not promoted: {exc}")
    return Registered(record, True, reason)
