"""The retrain loop and the one alias owner together, on the tiny BERT.

A rollback while a retrain trains wins (the run ends ``superseded``), and a warm start
refuses a production model whose files were changed. Both on SQLite and PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from storage import audit, registry, runs
from storage.db import Database
from storage.enums import RunStatus, RunTrigger, VersionStatus
from tests.trainer.test_retrain import TOY, correct, options, seed  # noqa: F401 - fixture
from tests.trainer.test_train import toy_examples
from trainer.artifact import resolve_artifact
from trainer.decisions import Check, GateDecision, RetrainProgress
from trainer.gate import GateConfig, first_model_check
from trainer.options import RetrainOptions
from trainer.promotion import manual_move
from trainer.retrain import RetrainError, retrain


class AlwaysPromote:
    """A gate that promotes every candidate: proves one class and one setting replace it."""

    def __init__(self, config: GateConfig) -> None:
        self.config = config

    def decide(
        self,
        y_true: Sequence[str],
        candidate_pred: Sequence[str],
        production_pred: Sequence[str] | None,
        labels: Sequence[str],
        *,
        corrections_mask: Sequence[bool] | None = None,
    ) -> GateDecision:
        return GateDecision(True, "always promote (test gate)", eval_size=len(y_true))

    def first_model(self, metrics: Mapping[str, Any]) -> Check:
        return first_model_check(metrics)


@pytest.fixture
def database(fresh_database: Database) -> Database:
    return fresh_database


def production(database: Database) -> str | None:
    with database.begin() as session:
        current = registry.get_alias(session=session, task="toy")
    return current.version if current else None


def copy_as_version(database: Database, home: Path, source: str, version: str) -> None:
    """Register a byte-identical copy of an artifact as another version."""
    with database.begin() as session:
        original = registry.get_model_version(session=session, task="toy", version=source)
        source_dir = resolve_artifact(home, original.artifact_uri)
        shutil.copytree(source_dir, home / "models" / "toy" / version)
        registry.add_model_version(
            session=session,
            task="toy",
            version=version,
            status=VersionStatus.ACCEPTED,
            artifact_uri=f"models/toy/{version}",
            sha256=original.sha256,
            base_encoder=original.base_encoder,
            hyperparameters=original.hyperparameters,
            data_snapshot=original.data_snapshot,
            metrics=original.metrics,
            created_by="test",
        )


@pytest.mark.slow
def test_a_rollback_during_a_retrain_wins_and_the_run_is_superseded(
    database: Database,
    options: RetrainOptions,  # noqa: F811 - the imported fixture
) -> None:
    home = options.home
    seed(database)
    assert retrain(database, TOY, options, trigger=RunTrigger.CLI, requested_by="cli").version
    copy_as_version(database, home, "1", "2")
    manual_move(
        database, "toy", action="promote", actor="U0ADMIN", reason="try v2", home=home, version="2"
    )
    correct(database, [(f"cat {e.text}", e.label) for e in toy_examples(30, seed=5)])
    rolled_back: list[str] = []

    def admin_rolls_back_meanwhile(update: RetrainProgress) -> None:
        if update.phase == "evaluate" and not rolled_back:
            move = manual_move(
                database,
                "toy",
                action="rollback",
                actor="U0ADMIN",
                reason="v2 misbehaves",
                home=home,
            )
            rolled_back.append(move.current.version)

    always = dataclasses.replace(
        options, gate_implementation="tests.trainer.test_promotion_loop:AlwaysPromote"
    )
    outcome = retrain(
        database,
        TOY,
        always,
        trigger=RunTrigger.ADMIN,
        requested_by="U0OTHER",
        progress=admin_rolls_back_meanwhile,
    )

    assert rolled_back == ["1"]
    assert outcome.status == RunStatus.SUPERSEDED, outcome.message
    assert production(database) == "1", "production stays where the admin put it"
    assert outcome.version is not None and outcome.version.version == "3"
    assert "superseded" in outcome.message and "moved to v1" in outcome.message
    with database.begin() as session:
        run = runs.get_run(session=session, run_id=outcome.run.id)
        entries = audit.list_audit(session=session, subject_prefix="toy/")
    decision = GateDecision.from_json(run.gate_decision)
    assert run.status == RunStatus.SUPERSEDED and run.candidate_version_id == outcome.version.id
    assert decision is not None and decision.superseded_by == "1" and not decision.promote
    moves = [(e.action, e.subject) for e in entries if e.action in ("promote", "rollback")]
    assert moves == [("rollback", "toy/1"), ("promote", "toy/2"), ("promote", "toy/1")], (
        "one audit entry per move, none for the superseded candidate"
    )
    assert [e.action for e in entries if e.subject == "toy/3"] == ["supersede"]


@pytest.mark.slow
@pytest.mark.parametrize("how", ["changed", "extra"])
def test_a_warm_start_from_a_tampered_production_fails_cleanly(
    database: Database,
    options: RetrainOptions,  # noqa: F811 - the imported fixture
    how: str,
) -> None:
    seed(database)
    first = retrain(database, TOY, options, trigger=RunTrigger.CLI, requested_by="cli")
    assert first.version is not None and production(database) == "1"
    folder = options.artifacts.resolve(first.version.artifact_uri)
    if how == "changed":
        (folder / "labels.json").write_text('["pos", "neg"]\n')
        name = "labels.json"
    else:
        (folder / "variables" / "stray.bin").write_bytes(b"\0" * 16)
        name = "variables/stray.bin"
    correct(database, [(f"cat {e.text}", e.label) for e in toy_examples(30, seed=5)])

    with pytest.raises(RetrainError, match=name.replace(".", r"\.")):
        retrain(database, TOY, options, trigger=RunTrigger.CLI, requested_by="cli")
    assert production(database) == "1"
    with database.begin() as session:
        latest = runs.list_runs(session=session, task="toy", limit=1)[0]
        versions = registry.list_model_versions(session=session, task="toy")
    assert latest.status == RunStatus.FAILED and name in (latest.error or "")
    assert [v.version for v in versions] == ["1"], "nothing trained from a tampered model"
