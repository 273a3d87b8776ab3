"""The learning loop on the tiny BERT: snapshot, train, gate, promote, skip, reject, faults."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from storage import annotations, audit, label_quality, registry, runs, schema
from storage.annotations import NewAnnotation
from storage.db import Database
from storage.enums import AnnotationSource, RunStatus, RunTrigger, VersionStatus, utcnow
from storage.errors import StorageError
from tests.trainer.test_train import toy_examples
from trainer.gate import GateConfig
from trainer.retrain import AlreadyRunningError, RetrainOptions, retrain, training_mix
from trainer.tasks import TaskSpec

TOY = TaskSpec("toy", ("neg", "pos"))
FAST = {"epochs": 3.0, "learning_rate": 2e-3, "batch_size": 16, "warmup_fraction": 0.05}


@pytest.fixture
def database(tmp_path: Path) -> Database:
    database = Database.connect(f"sqlite:///{tmp_path / 'loop.db'}")
    schema.upgrade(database)
    return database


@pytest.fixture
def options(tmp_path: Path, tiny_encoder_dir: Path) -> RetrainOptions:
    return RetrainOptions(
        home=tmp_path / "home",
        encoder_dir=tiny_encoder_dir,
        base_encoder="tiny-bert",
        gate=GateConfig(min_eval=20, bootstrap_resamples=300),
        max_minutes=2,
        min_new_labels=5,
        lease_ttl=timedelta(seconds=30),
        train_overrides=FAST,
    )


def seed(database: Database, count: int = 300, seed: int = 0) -> None:
    with database.begin() as session:
        annotations.add_annotations(
            session=session,
            task="toy",
            items=[NewAnnotation(e.text, e.label) for e in toy_examples(count, seed=seed)],
            annotator="seed",
            source=AnnotationSource.SEED,
        )


def correct(database: Database, examples: list[tuple[str, str]]) -> None:
    with database.begin() as session:
        for text, label in examples:
            annotations.add_annotation(
                session=session,
                task="toy",
                text=text,
                label=label,
                annotator="U0MOD",
                source=AnnotationSource.CORRECTION,
            )


def production(database: Database):  # type: ignore[no-untyped-def]
    with database.begin() as session:
        return registry.get_alias(session=session, task="toy")


def test_training_mix_oversamples_corrections() -> None:
    from storage.enums import Split
    from storage.records import LabelledExample

    def example(i: int, source: AnnotationSource) -> LabelledExample:
        return LabelledExample(f"t{i}", str(i), "pos", source, "x", i, utcnow(), Split.TRAIN)

    examples = [example(i, AnnotationSource.SEED) for i in range(3000)]
    examples += [example(i, AnnotationSource.CORRECTION) for i in range(3000, 3100)]
    mix, info = training_mix(
        examples, warm_start=True, replay_examples=1000, correction_share=0.25, seed=0
    )
    assert info["seed_examples"] == 1000 and info["correction_copies"] == 3
    assert len(mix) == 1000 + 300


def test_first_retrain_promotes_then_skips_without_new_labels(
    database: Database, options: RetrainOptions
) -> None:
    seed(database)
    outcome = retrain(database, TOY, options, trigger=RunTrigger.CLI, requested_by="U0ADMIN")
    assert outcome.status == RunStatus.SUCCEEDED, outcome.message
    assert outcome.message.startswith("first model")
    current = production(database)
    assert (
        current is not None and current.version == "1" and current.status == VersionStatus.ACCEPTED
    )
    assert (options.artifacts.resolve(current.artifact_uri) / "saved_model.pb").is_file()
    snapshot = current.data_snapshot
    assert snapshot["all"]["n"] == 300 and len(snapshot["content_hash"]) == 64
    assert snapshot["eval"]["n"] + snapshot["train"]["n"] == 300
    with database.begin() as session:
        run = runs.get_run(session=session, run_id=outcome.run.id)
        entries = audit.list_audit(session=session, subject_prefix="toy/")
        assert runs.get_lease(session=session, name="retrain:toy") is None
    assert run.gate_decision["promote"] is True and run.finished_at is not None
    assert {c["name"] for c in run.gate_decision["checks"]} == {
        "min_eval",
        "beats_majority_baseline",
    }
    assert [e.action for e in entries] == ["promote"]

    skipped = retrain(database, TOY, options, trigger=RunTrigger.SCHEDULE, requested_by="scheduler")
    assert skipped.status == RunStatus.SKIPPED
    assert "0 new correction(s)" in skipped.message and "fewer than 5" in skipped.message
    assert production(database).version == "1"


def test_shuffled_corrections_are_rejected_and_production_stays(
    database: Database, options: RetrainOptions
) -> None:
    seed(database)
    retrain(database, TOY, options, trigger=RunTrigger.CLI, requested_by="cli")
    rng = random.Random(3)
    noisy = [(e.text, rng.choice(["neg", "pos"])) for e in toy_examples(120, seed=42)]
    correct(database, noisy)
    outcome = retrain(database, TOY, options, trigger=RunTrigger.ADMIN, requested_by="U0ADMIN")
    assert outcome.status == RunStatus.REJECTED, outcome.message
    assert outcome.message.startswith("rejected:")
    assert production(database).version == "1"
    assert outcome.version is not None and outcome.version.status == VersionStatus.REJECTED
    decision = outcome.decision
    assert decision is not None and decision.corrections is not None
    assert decision.corrections["n"] > 0  # the corrections' eval share, reported apart
    with database.begin() as session:
        run = runs.get_run(session=session, run_id=outcome.run.id)
        actions = [e.action for e in audit.list_audit(session=session, subject_prefix="toy/")]
    assert run.status == RunStatus.REJECTED and run.candidate_version_id == outcome.version.id
    assert actions[0] == "reject"
    # The label check ran inside the retrain on production's embeddings; what it doubted was
    # held out (a lone moderator is never flagged), and a chance rejection holds the batch.
    summary = run.gate_decision["snapshot"]
    check = summary["label_check"]
    assert check["ran"], check["reason"]
    assert check["flagged_annotators"] == [] and check["checked_corrections"] == 120
    assert summary["held_out"]["n"] == check["new_suspects"]
    with database.begin() as session:
        suspects = label_quality.list_suspects(session=session, task="toy")
    chance = [c for c in decision.checks if c.name == "learned_corrections" and not c.passed]
    if chance:  # the batch the gate found no better than chance: every correction suspect
        assert summary["marked_suspect"]["n"] == 120 - check["new_suspects"]
        assert len(suspects) == 120


def new_domain(count: int, seed: int) -> list[tuple[str, str]]:
    """Texts from words the seed data never labelled: like a topic the bot has not seen."""
    rng = random.Random(seed)
    words = {"pos": ["win", "prize", "free"], "neg": ["hello", "world", "call"]}
    rows = []
    for i in range(count):
        label = "pos" if i % 2 else "neg"
        picked = rng.sample(words[label], 2) + rng.sample(["the", "mat", "now", "you"], 2)
        rng.shuffle(picked)
        rows.append((" ".join(picked) + f" {i}", label))
    return rows


def test_good_corrections_move_a_model_and_are_promoted(
    database: Database, options: RetrainOptions
) -> None:
    # The tiny model's calibration swings between retrains: the ECE rule is reported here
    # and decided in tests/trainer/test_gate.py.
    options = dataclasses.replace(
        options, gate=dataclasses.replace(options.gate, max_ece_increase=1.0)
    )
    seed(database, 240)
    retrain(database, TOY, options, trigger=RunTrigger.CLI, requested_by="cli")
    correct(database, new_domain(200, seed=7))
    outcome = retrain(database, TOY, options, trigger=RunTrigger.ADMIN, requested_by="U0ADMIN")
    assert outcome.status == RunStatus.SUCCEEDED, outcome.message
    assert production(database).version == "2"
    decision = outcome.decision
    assert decision is not None and decision.delta_macro_f1 >= 0.005
    assert decision.p_improvement is not None and decision.p_improvement >= 0.9
    assert decision.corrections["candidate_macro_f1"] > decision.corrections["production_macro_f1"]
    # Both models' calibration on the eval set, and the rule that compares them.
    assert decision.production is not None
    assert 0 <= decision.candidate["ece"] <= 1 and 0 <= decision.production["ece"] <= 1
    [ece] = [c for c in decision.checks if c.name == "max_ece_increase"]
    assert ece.passed and ece.value == pytest.approx(
        decision.candidate["ece"] - decision.production["ece"]
    )
    stored = production(database)
    assert stored.metrics["eval"]["ece"] == pytest.approx(decision.candidate["ece"])
    assert stored.metrics["calibration"]["temperature"] > 0


def test_a_held_lease_refuses_a_second_retrain(database: Database, options: RetrainOptions) -> None:
    seed(database, 60)
    with database.begin() as session:
        other = runs.create_run(
            session=session,
            task="toy",
            trigger=RunTrigger.ADMIN,
            requested_by="U0OTHER",
            status=RunStatus.RUNNING,
        )
        runs.acquire_lease(
            session=session,
            name="retrain:toy",
            holder="elsewhere",
            ttl=timedelta(minutes=5),
            run_id=other.id,
        )
    started = time.monotonic()
    with pytest.raises(
        AlreadyRunningError,
        match=rf"already running since .* \(run {other.id}, "
        r"requested by U0OTHER",
    ):
        retrain(database, TOY, options, trigger=RunTrigger.CLI, requested_by="cli")
    assert time.monotonic() - started < 2


def test_an_expired_lease_is_taken_over_and_the_dead_run_marked_failed(
    database: Database, options: RetrainOptions
) -> None:
    seed(database)
    with database.begin() as session:
        dead = runs.create_run(
            session=session,
            task="toy",
            trigger=RunTrigger.SCHEDULE,
            requested_by="scheduler",
            status=RunStatus.RUNNING,
        )
        runs.acquire_lease(
            session=session,
            name="retrain:toy",
            holder="dead-process",
            ttl=timedelta(seconds=1),
            run_id=dead.id,
            now=utcnow() - timedelta(minutes=10),
        )
    leftover = options.home / "models" / "toy" / ".1.tmp-abc123"
    leftover.mkdir(parents=True)
    (leftover / "half-written").write_bytes(b"x" * 100)
    outcome = retrain(database, TOY, options, trigger=RunTrigger.CLI, requested_by="cli")
    assert outcome.status == RunStatus.SUCCEEDED
    assert not leftover.exists()
    with database.begin() as session:
        again = runs.get_run(session=session, run_id=dead.id)
    assert again.status == RunStatus.FAILED and "abandoned" in again.error


def test_a_database_error_at_gate_time_promotes_nothing(
    database: Database, options: RetrainOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(database)

    def broken(**kwargs: object) -> None:
        raise StorageError("database error: connection lost")

    monkeypatch.setattr(registry, "compare_and_set_alias", broken)
    with pytest.raises(StorageError):
        retrain(database, TOY, options, trigger=RunTrigger.CLI, requested_by="cli")
    assert production(database) is None
    with database.begin() as session:
        assert registry.list_model_versions(session=session, task="toy") == []
        (run,) = runs.list_runs(session=session, task="toy")
        assert runs.get_lease(session=session, name="retrain:toy") is None
    assert run.status == RunStatus.FAILED and "connection lost" in run.error


def _cli_env(home: Path, tmp_path: Path, encoder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BERTBOT_", "SLACK_"))}
    (tmp_path / "tasks.json").write_text(json.dumps({"toy": {"labels": ["neg", "pos"]}}))
    (home / "encoders").mkdir(parents=True, exist_ok=True)
    link = home / "encoders" / "tiny"
    if not link.exists():
        link.symlink_to(encoder)
    env.update(
        {
            "BERTBOT_HOME": str(home),
            "BERTBOT_ENCODER": "tiny",
            "BERTBOT_TASKS": "toy",
            "BERTBOT_TASKS_FILE": str(tmp_path / "tasks.json"),
            "BERTBOT_RETRAIN__LEASE_SECONDS": "3",
            "BERTBOT_RETRAIN__TRAIN_OVERRIDES": json.dumps(
                {**FAST, "epochs": 200.0, "patience": 10_000}
            ),
            "BERTBOT_GATE__MIN_EVAL": "20",
        }
    )
    return env


@pytest.mark.slow
def test_kill_9_during_training_leaves_production_and_the_next_run_succeeds(
    tmp_path: Path, tiny_encoder_dir: Path, options: RetrainOptions
) -> None:
    home = tmp_path / "home"
    database = Database.connect(f"sqlite:///{home / 'bertbot.db'}")
    home.mkdir(parents=True, exist_ok=True)
    schema.upgrade(database)
    seed(database)
    options = dataclasses.replace(options, home=home)
    first = retrain(database, TOY, options, trigger=RunTrigger.CLI, requested_by="cli")
    assert first.status == RunStatus.SUCCEEDED
    correct(database, [(f"cat {e.text}", e.label) for e in toy_examples(30, seed=5)])

    process = subprocess.Popen(
        [sys.executable, "-m", "bertbot.cli", "retrain", "--task", "toy"],
        env=_cli_env(home, tmp_path, tiny_encoder_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    running = None
    while time.monotonic() < deadline and running is None:
        time.sleep(0.5)
        with database.begin() as session:
            latest = runs.list_runs(session=session, task="toy", limit=1)[0]
        progress = latest.progress or {}
        if (
            latest.status == RunStatus.RUNNING
            and progress.get("phase") == "train"
            and (progress.get("step") or 0) > 0
        ):
            running = latest
        assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
    assert running is not None, "the retrain never reached training"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    print(f"killed run {running.id} at step {running.progress['step']}")

    assert production(database).version == "1"
    with database.begin() as session:
        assert runs.get_run(session=session, run_id=running.id).status == RunStatus.RUNNING
    time.sleep(3.5)  # the dead holder's lease lapses
    outcome = retrain(
        database, TOY, options, trigger=RunTrigger.CLI, requested_by="cli", force=True
    )
    assert outcome.status in (RunStatus.SUCCEEDED, RunStatus.REJECTED), outcome.message
    with database.begin() as session:
        dead = runs.get_run(session=session, run_id=running.id)
    assert dead.status == RunStatus.FAILED and "abandoned" in dead.error
    leftovers = [p for p in (home / "models" / "toy").iterdir() if ".tmp-" in p.name]
    assert leftovers == []


def test_a_gate_written_before_calibration_still_gets_predictions_alone() -> None:
    from trainer.gate import BootstrapGate, probability_arguments

    class OldGate:
        def decide(self, y_true, candidate_pred, production_pred, labels, *, corrections_mask=None):  # type: ignore[no-untyped-def]
            raise NotImplementedError

    class AnyKeywords:
        def decide(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            raise NotImplementedError

    assert probability_arguments(OldGate(), "c", "p") == {}
    expected = {"candidate_probabilities": "c", "production_probabilities": "p"}
    assert probability_arguments(AnyKeywords(), "c", "p") == expected
    assert probability_arguments(BootstrapGate(), "c", "p") == expected
