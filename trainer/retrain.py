"""The retrain loop: snapshot labels, train a candidate, gate it against production, and
move the ``production`` alias only if the candidate is measurably better.

At most one retrain per task runs at a time across all processes (a database lease that
expires if its holder dies). Nothing that goes wrong here changes production: the alias
moves in the same unit of work that records the decision, or not at all.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import shutil
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from storage import annotations as label_store
from storage import audit, registry, runs
from storage.annotations import HUMAN_SOURCES
from storage.db import Database
from storage.enums import RunStatus, RunTrigger, Split, VersionStatus
from storage.errors import StorageError
from storage.records import LabelledExample, ModelVersionRecord, TrainingRunRecord
from trainer.artifact import artifact_uri, resolve_artifact
from trainer.datasets import Example
from trainer.decisions import GateDecision, RetrainProgress
from trainer.label_check import Embedder, hold_out_snapshot, mark_batch_if_chance
from trainer.options import RetrainOptions
from trainer.pipeline import next_version
from trainer.promotion import (
    ArtifactRefusedError,
    ProductionMovedError,
    move_alias,
    retrain_lease,
    retrain_need,
    verify_version,
)
from trainer.retention import apply_retention, clean_temporary_files
from trainer.tasks import TaskSpec

logger = logging.getLogger(__name__)

HUMAN = frozenset(HUMAN_SOURCES)  # storage owns the rule: which labels are people's


class AlreadyRunningError(RuntimeError):
    """Another process is retraining the task; the message says since when and which run."""


class RetrainError(RuntimeError):
    """The retrain could not run (no data, broken production artifact, ...)."""


@dataclass(frozen=True)
class RetrainOutcome:
    run: TrainingRunRecord
    status: RunStatus
    message: str
    version: ModelVersionRecord | None = None
    decision: GateDecision | None = None


@dataclass(frozen=True)
class Snapshot:
    """The effective labels a retrain uses, and their summary stored on the version."""

    examples: list[LabelledExample]
    taken_at: datetime

    @property
    def content_hash(self) -> str:
        digest = hashlib.sha256()
        for example in self.examples:  # ordered by text hash
            digest.update(f"{example.text_hash}\t{example.label}\n".encode())
        return digest.hexdigest()

    def summary(self) -> dict[str, Any]:
        def counts(split: Split | None) -> dict[str, Any]:
            chosen = [e for e in self.examples if split is None or e.split == split]
            return {
                "n": len(chosen),
                "label": dict(sorted(Counter(e.label for e in chosen).items())),
                "source": dict(sorted(Counter(str(e.source) for e in chosen).items())),
            }

        return {
            "taken_at": self.taken_at.isoformat(),
            "content_hash": self.content_hash,
            "all": counts(None),
            "train": counts(Split.TRAIN),
            "eval": counts(Split.EVAL),
        }


ProgressFn = Callable[[RetrainProgress], None]


class _LeaseKeeper(threading.Thread):
    """Renews the lease and saves the run's progress while the retrain works."""

    def __init__(
        self, database: Database, name: str, holder: str, ttl: timedelta, run_id: int
    ) -> None:
        super().__init__(name=f"lease-{name}", daemon=True)
        self.database, self.lease, self.holder, self.ttl, self.run_id = (
            database,
            name,
            holder,
            ttl,
            run_id,
        )
        self.progress: RetrainProgress | None = None
        self._saved: RetrainProgress | None = None
        self._stop_event = threading.Event()
        self.lost = False

    def run(self) -> None:
        interval = min(10.0, self.ttl.total_seconds() / 3)
        while not self._stop_event.wait(interval):
            self.beat()

    def beat(self) -> None:
        try:
            with self.database.begin() as session:
                if not runs.renew_lease(
                    session=session, name=self.lease, holder=self.holder, ttl=self.ttl
                ):
                    self.lost = True
                    logger.error("lost the lease %s; the retrain will not promote", self.lease)
                if self.progress is not None and self.progress is not self._saved:
                    runs.set_run_progress(
                        session=session, run_id=self.run_id, progress=self.progress.to_json()
                    )
                    self._saved = self.progress
        except StorageError:
            logger.warning("could not renew the lease %s", self.lease, exc_info=True)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=30)


def take_snapshot(database: Database, task: str) -> Snapshot:
    with database.begin() as session:
        examples = label_store.effective_labels(session=session, task=task)
    return Snapshot(examples=examples, taken_at=datetime.now(UTC))


def retrain(
    database: Database,
    spec: TaskSpec,
    options: RetrainOptions,
    *,
    trigger: RunTrigger,
    requested_by: str,
    force: bool = False,
    progress: ProgressFn | None = None,
    on_promoted: Callable[[str], None] | None = None,
    embedder: Embedder | None = None,
) -> RetrainOutcome:
    """Retrain a task once, under its lease.

    Args:
        database: The store.
        spec: The task.
        options: Paths, thresholds, budgets.
        trigger: schedule, admin or cli.
        requested_by: Who asked (a Slack user id, ``scheduler``, ``cli``).
        force: Retrain even if too few corrections arrived since production's snapshot.
        progress: Called with a :class:`RetrainProgress` as it goes.
        on_promoted: Called with the task name after the alias moved (hot reload here).
        embedder: Loads the model the label check embeds with (default: production's
            SavedModel); see :mod:`trainer.label_check`.

    Returns:
        How the run ended: succeeded (promoted), rejected, skipped, or superseded (the gate
        passed, but production moved while the candidate trained: kept, not promoted).

    Raises:
        AlreadyRunningError: The task is being retrained elsewhere; nothing was recorded.
        RetrainError, TrainingError, StorageError: The run failed; it is recorded as failed
            when the database allows, and production is unchanged.
    """
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    lease_name = retrain_lease(spec.name)
    with database.begin() as session:
        lease = runs.acquire_lease(
            session=session, name=lease_name, holder=holder, ttl=options.lease_ttl
        )
        if lease is None:
            current = runs.get_lease(session=session, name=lease_name)
            raise AlreadyRunningError(_already_running(session, current))
        run = runs.create_run(
            session=session,
            task=spec.name,
            trigger=trigger,
            requested_by=requested_by,
            status=RunStatus.QUEUED,
        )
        runs.acquire_lease(
            session=session, name=lease_name, holder=holder, ttl=options.lease_ttl, run_id=run.id
        )
        stale = _fail_stale_runs(session, spec.name, run.id)
        run = runs.start_run(session=session, run_id=run.id)
    if stale:
        logger.warning(
            "marked %d abandoned run(s) of %s as failed: %s", len(stale), spec.name, stale
        )
    keeper = _LeaseKeeper(database, lease_name, holder, options.lease_ttl, run.id)
    keeper.start()

    def report(update: RetrainProgress) -> None:
        keeper.progress = update
        if progress is not None:
            progress(update)

    try:
        outcome = _retrain_locked(database, spec, options, run, keeper, report, force, embedder)
    except BaseException as exc:
        _record_failure(database, run.id, exc)
        raise
    finally:
        keeper.stop()
        try:
            with database.begin() as session:
                runs.release_lease(session=session, name=lease_name, holder=holder)
        except StorageError:
            logger.warning("could not release %s; it expires by itself", lease_name)
    if outcome.status == RunStatus.SUCCEEDED and on_promoted is not None:
        on_promoted(spec.name)
    return outcome


def _already_running(session: Any, lease: Any) -> str:
    if lease is None:
        return "a retrain is starting right now; try again in a moment"
    since = lease.acquired_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    detail = f"already running since {since}"
    if lease.run_id is not None:
        try:
            other = runs.get_run(session=session, run_id=lease.run_id)
            detail += f" (run {other.id}, requested by {other.requested_by} via {other.trigger})"
        except StorageError:
            detail += f" (run {lease.run_id})"
    return detail


def _fail_stale_runs(session: Any, task: str, current_run: int) -> list[int]:
    """Runs left queued/running by a process that died: we hold the lease, so none is live."""
    stale = [
        r.id
        for r in runs.list_runs(session=session, task=task, limit=50)
        if r.id != current_run and r.status in (RunStatus.QUEUED, RunStatus.RUNNING)
    ]
    for run_id in stale:
        runs.finish_run(
            session=session,
            run_id=run_id,
            status=RunStatus.FAILED,
            error="abandoned: its process stopped before finishing (lease expired)",
        )
    return stale


def _record_failure(database: Database, run_id: int, exc: BaseException) -> None:
    message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    try:
        with database.begin() as session:
            runs.finish_run(
                session=session, run_id=run_id, status=RunStatus.FAILED, error=message[:2000]
            )
    except StorageError:
        logger.error("run %d failed (%s) and could not be recorded", run_id, message)


def training_mix(
    train_examples: Sequence[LabelledExample],
    *,
    warm_start: bool,
    replay_examples: int,
    correction_share: float,
    seed: int,
) -> tuple[list[Example], dict[str, Any]]:
    """Seed examples (a replay sample when warm-starting) plus oversampled corrections.

    Corrections are scarce and in-domain: each is repeated so that together they make up
    about ``correction_share`` of the mix (at most 20 copies each).
    """
    rng = random.Random(seed)
    seed_part = [e for e in train_examples if e.source not in HUMAN]
    corrections = [e for e in train_examples if e.source in HUMAN]
    if warm_start and len(seed_part) > replay_examples:
        seed_part = rng.sample(seed_part, replay_examples)
    copies = 1
    if corrections and seed_part:
        wanted = correction_share * len(seed_part) / (1 - correction_share)
        copies = max(1, min(20, round(wanted / len(corrections))))
    mix = [Example(e.text, e.label) for e in seed_part]
    mix += [Example(e.text, e.label) for e in corrections for _ in range(copies)]
    rng.shuffle(mix)
    return mix, {
        "seed_examples": len(seed_part),
        "corrections": len(corrections),
        "correction_copies": copies,
        "warm_start": warm_start,
        "mix_size": len(mix),
    }


def _retrain_locked(
    database: Database,
    spec: TaskSpec,
    options: RetrainOptions,
    run: TrainingRunRecord,
    keeper: _LeaseKeeper,
    report: ProgressFn,
    force: bool,
    embedder: Embedder | None = None,
) -> RetrainOutcome:
    from trainer.gate import probability_arguments
    from trainer.serving import SavedModelClassifier, ServingError, probability_matrix
    from trainer.train import TrainConfig, train

    task_dir = options.artifacts.root / spec.name
    removed = clean_temporary_files(task_dir)
    if removed:
        logger.info("removed %d half-written artifact(s): %s", len(removed), removed)

    report(RetrainProgress("snapshot", "taking the label snapshot"))
    snapshot = take_snapshot(database, spec.name)
    with database.begin() as session:
        need = retrain_need(session, spec.name, min_new_labels=options.min_new_labels, force=force)
    production = need.production
    summary = snapshot.summary() | {"new_corrections": need.new_corrections}
    if need.too_few:
        reason = need.skip_reason()
        with database.begin() as session:
            finished = runs.finish_run(
                session=session,
                run_id=run.id,
                status=RunStatus.SKIPPED,
                gate_decision=GateDecision(False, reason, snapshot=summary).to_json(),
            )
        return RetrainOutcome(finished, RunStatus.SKIPPED, reason)

    production_dir = None
    if production is not None:
        try:  # warm start only from a production whose files are what the registry says
            verify_version(options.artifacts, production)
        except ArtifactRefusedError as exc:
            raise RetrainError(
                f"production {production.version} cannot be trained from or compared with "
                f"({exc}); roll back or promote by hand"
            ) from exc
        production_dir = resolve_artifact(options.artifacts, production.artifact_uri)
    report(RetrainProgress("label check", "checking the corrections before training"))
    kept, held_summary = hold_out_snapshot(
        database, spec, options, snapshot.examples, production, run_id=run.id, embedder=embedder
    )
    snapshot = replace(snapshot, examples=kept)
    summary = snapshot.summary() | {"new_corrections": need.new_corrections} | held_summary
    train_examples = [e for e in snapshot.examples if e.split == Split.TRAIN]
    eval_examples = [e for e in snapshot.examples if e.split == Split.EVAL]
    if len({e.label for e in train_examples}) < 2:
        raise RetrainError(
            f"{spec.name} has {len(train_examples)} training label(s) covering fewer than two "
            "labels; import seed data first (`bertbot data import FILE --task ...`)"
        )
    if not eval_examples:
        raise RetrainError(f"{spec.name} has no eval examples to compare models on")

    warm = production_dir is not None
    mix, mix_info = training_mix(
        train_examples,
        warm_start=warm,
        replay_examples=options.replay_examples,
        correction_share=options.correction_share,
        seed=options.seed,
    )
    summary["training_mix"] = mix_info
    config = TrainConfig(
        labels=spec.labels,
        encoder_dir=str(options.encoder_dir),
        max_minutes=options.max_minutes,
        threads=options.threads,
        seed=options.seed,
        init_from=str(production_dir) if warm else None,
    )
    if warm:  # gentler and shorter: the model already knows the seed data
        config = replace(config, learning_rate=3e-5, epochs=2.0)
    config = replace(config, **options.train_overrides)
    version = next_version(database, spec.name)
    out_dir = task_dir / version
    if out_dir.exists():
        # Written by a run that died before registering it: we hold the lease, and the
        # registry has no such version, so nothing refers to it.
        logger.warning("removing %s, an unregistered artifact of a run that died", out_dir)
        shutil.rmtree(out_dir)

    def on_train_event(event: Any) -> None:
        report(
            RetrainProgress(
                event.phase,
                event.message,
                step=event.step,
                total_steps=event.total_steps,
                eta_s=event.eta_s,
                examples_per_s=event.examples_per_s,
            )
        )

    report(RetrainProgress("train", f"training v{version} on {len(mix)} examples"))
    result = train(
        mix,
        config,
        out_dir,
        progress=on_train_event,
        task=spec.name,
        version=version,
        data_description=summary,
    )

    report(RetrainProgress("evaluate", f"scoring v{version} and production"))
    texts = [e.text for e in eval_examples]
    truth = [e.label for e in eval_examples]
    candidate = SavedModelClassifier.load(
        out_dir, task=spec.name, version=version, expected_sha256=result.sha256
    )
    candidate_predictions = candidate.predict(texts)
    candidate_pred = [p.label for p in candidate_predictions]
    production_pred = None
    production_predictions = None
    if production is not None:
        try:
            current = SavedModelClassifier.load(
                resolve_artifact(options.artifacts, production.artifact_uri),
                task=spec.name,
                version=production.version,
                expected_sha256=production.sha256,
            )
        except ServingError as exc:
            raise RetrainError(
                f"production {production.version} cannot be loaded to compare against ({exc}); "
                "roll back or promote by hand"
            ) from exc
        production_predictions = current.predict(texts)
        production_pred = [p.label for p in production_predictions]
    gate = options.make_gate()
    decision = gate.decide(
        truth,
        candidate_pred,
        production_pred,
        spec.labels,
        corrections_mask=[e.source in HUMAN for e in eval_examples],
        **probability_arguments(
            gate,
            probability_matrix(candidate_predictions, spec.labels),
            probability_matrix(production_predictions, spec.labels)
            if production_predictions is not None
            else None,
        ),
    )
    if keeper.lost:
        raise RetrainError("the lease was lost during training; not promoting")

    decision = replace(decision, snapshot=summary)
    expected = production.version if production else None
    with database.begin() as session:
        mark_batch_if_chance(session, spec.name, decision, run, snapshot.examples, production)
        record = registry.add_model_version(
            session=session,
            task=spec.name,
            version=version,
            status=VersionStatus.ACCEPTED if decision.promote else VersionStatus.REJECTED,
            artifact_uri=artifact_uri(options.artifacts, out_dir),
            sha256=result.sha256,
            base_encoder=options.base_encoder,
            hyperparameters=result.hyperparameters,
            data_snapshot=summary,
            metrics={
                "eval": decision.candidate,
                "validation": result.metrics["validation"],
                "production_eval": decision.production,
                "corrections": decision.corrections,
                "calibration": result.metrics.get("calibration"),
            },
            created_by=run.requested_by,
        )
        facts = {
            "run": run.id,
            "delta_macro_f1": decision.delta_macro_f1,
            "p_improvement": decision.p_improvement,
        }
        status = RunStatus.REJECTED
        if decision.promote:
            try:
                move_alias(
                    database,
                    spec.name,
                    version,
                    expected,
                    run.requested_by,
                    decision.reason,
                    "gate" if production is not None else "first",
                    home=options.artifacts,
                    details=facts,
                    session=session,
                )
                status = RunStatus.SUCCEEDED
            except ProductionMovedError as exc:
                now = registry.get_alias(session=session, task=spec.name)
                moved_to = now.version if now else None
                decision = replace(
                    decision,
                    promote=False,
                    superseded_by=moved_to,
                    reason=(
                        f"superseded: the gate passed v{version} against production "
                        f"{_name(expected)}, but production moved to {_name(moved_to)} "
                        f"while it trained; v{version} is kept, not promoted (an admin can "
                        f"promote it by hand). Gate: {decision.reason}"
                    ),
                )
                status = RunStatus.SUPERSEDED
                logger.warning("run %d of %s superseded: %s", run.id, spec.name, exc)
        if status != RunStatus.SUCCEEDED:
            audit.record_audit(
                session=session,
                actor=run.requested_by,
                action="reject" if status == RunStatus.REJECTED else "supersede",
                subject=f"{spec.name}/{version}",
                details=facts | {"reason": decision.reason},
            )
        finished = runs.finish_run(
            session=session,
            run_id=run.id,
            status=status,
            candidate_version_id=record.id,
            gate_decision=decision.to_json(),
        )
    apply_retention(database, spec.name, options)
    report(RetrainProgress("done", decision.reason))
    return RetrainOutcome(finished, status, decision.reason, record, decision)


def _name(version: str | None) -> str:
    return f"v{version}" if version is not None else "none"


def wait_for_lease(database: Database, task: str, timeout_s: float = 60.0) -> bool:
    """True once no retrain of ``task`` holds a live lease (for tests and shutdown)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with database.begin() as session:
            lease = runs.get_lease(session=session, name=retrain_lease(task))
        if lease is None or lease.expires_at < datetime.now(UTC):
            return True
        time.sleep(0.2)
    return False
