"""From a trained artifact to the registry: versions, promotion of a task's first model.

The full retrain loop (snapshot, gate, lease, scheduler) builds on these steps.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storage import audit, registry
from storage.db import Database
from storage.enums import VersionStatus
from storage.errors import DuplicateError
from storage.records import ModelVersionRecord

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Registered:
    version: ModelVersionRecord
    promoted: bool
    reason: str


def artifact_uri(home: Path, artifact_dir: Path) -> str:
    """Paths under BERTBOT_HOME are stored relative to it (a shared volume may move)."""
    resolved = artifact_dir.resolve()
    try:
        return resolved.relative_to(home.resolve()).as_posix()
    except ValueError:
        return resolved.as_uri()


def resolve_artifact(home: Path, uri: str) -> Path:
    if uri.startswith("file://"):
        return Path(uri.removeprefix("file://"))
    return home / uri


def next_version(database: Database, task: str) -> str:
    """The next free integer version name of a task ("1", "2", ...)."""
    with database.begin() as session:
        versions = registry.list_model_versions(session=session, task=task)
    numbers = [int(v.version) for v in versions if v.version.isdigit()]
    return str(max(numbers, default=0) + 1)


def majority_baseline_macro_f1(eval_metrics: dict[str, Any]) -> float:
    """Macro-F1 of always predicting the most frequent eval class."""
    supports = [row["support"] for row in eval_metrics["per_class"].values()]
    total, top = sum(supports), max(supports)
    if total == 0:
        return 0.0
    precision = top / total
    f1_top = 2 * precision / (precision + 1)
    return f1_top / len(supports)


def register_model(
    database: Database,
    *,
    task: str,
    version: str,
    artifact_dir: Path,
    home: Path,
    sha256: str,
    base_encoder: str,
    hyperparameters: dict[str, Any],
    data_snapshot: dict[str, Any],
    metrics: dict[str, Any],
    created_by: str,
    promote_if_first: bool = True,
) -> Registered:
    """Add a trained model to the registry; make it production if the task has none yet.

    A first model is promoted only if it beats the majority-class baseline on its eval set
    (or validation set, when it had no eval set). Both steps share one unit of work.
    """
    scored = metrics.get("eval") or metrics.get("validation")
    with database.begin() as session:
        try:
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
        except DuplicateError:
            raise
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
        baseline = majority_baseline_macro_f1(scored) if scored else 0.0
        if not scored or scored["macro_f1"] <= baseline:
            return Registered(
                record,
                False,
                f"not promoted: macro-F1 {scored['macro_f1'] if scored else 0:.4f} does not beat "
                f"the majority-class baseline {baseline:.4f}",
            )
        registry.set_alias(session=session, task=task, version_id=record.id, updated_by=created_by)
        reason = (
            f"first model of {task}: macro-F1 {scored['macro_f1']:.4f} beats the majority-class "
            f"baseline {baseline:.4f}"
        )
        audit.record_audit(
            session=session,
            actor=created_by,
            action="promote",
            subject=f"{task}/{version}",
            details={"reason": reason, "previous": None},
        )
    return Registered(record, True, reason)
