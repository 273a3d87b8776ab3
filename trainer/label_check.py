"""The label check inside each retrain, and what it (and admins) hold out.

:func:`check_snapshot` runs before training: the production model embeds a seeded sample
of seed/import labels plus every human label; :mod:`trainer.label_quality` turns
out-of-fold predictions into suspects and flagged annotators, stored in
:mod:`storage.label_quality`. :func:`held_out` is the one place that says which texts a
retrain leaves out of its training mix and of the gate's eval; :func:`mark_chance_rejection`
makes a batch the gate found no better than chance suspect.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from storage import audit, second_opinion
from storage import label_quality as quality_store
from storage.db import Database
from storage.records import LabelledExample, ModelVersionRecord, TrainingRunRecord
from trainer.artifact import ArtifactLocation, resolve_artifact
from trainer.decisions import GateDecision
from trainer.options import QualityOptions, RetrainOptions
from trainer.promotion import snapshot_time
from trainer.tasks import TaskSpec

logger = logging.getLogger(__name__)

CHECKED = frozenset(quality_store.CHECKED_SOURCES)
CHANCE_REASON = "gate: no better than chance"
DISPUTED_REASON = "disputed: two moderators disagree"
CONFIDENT_REASON = "confident learning: out-of-fold predictions disagree"

Embedder = Callable[[ModelVersionRecord], Any]
"""Production's model (anything with ``embed(texts) -> [n, d]``) for a version, or None."""


@dataclass(frozen=True)
class CheckResult:
    """What one label check did (stored as a ``label_checks`` row and in the run summary)."""

    ran: bool
    reason: str
    checked: int = 0
    sample: int = 0
    suspects: int = 0
    new_suspects: int = 0
    flagged: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "ran": self.ran,
            "reason": self.reason,
            "checked_corrections": self.checked,
            "sample": self.sample,
            "suspects": self.suspects,
            "new_suspects": self.new_suspects,
            "flagged_annotators": list(self.flagged),
            "seconds": round(self.seconds, 2),
        }


def held_out(session: Any, task: str) -> dict[str, str]:
    """Text hash -> why it is held out of this task's training mix and the gate's eval.

    The one owner of the rule: every source of held-out labels is added here.
    """
    held = quality_store.held_out_reasons(session=session, task=task)
    disputed = second_opinion.held_out_hashes(session=session, task=task)
    held |= {text_hash: DISPUTED_REASON for text_hash in disputed if text_hash not in held}
    return held


def split_held_out(
    examples: Sequence[LabelledExample], held: dict[str, str]
) -> tuple[list[LabelledExample], dict[str, Any]]:
    """The examples a retrain keeps, and a summary of those it holds out (counts by reason)."""
    kept = [e for e in examples if e.text_hash not in held]
    reasons = Counter(held[e.text_hash] for e in examples if e.text_hash in held)
    summary = {"n": len(examples) - len(kept), "reasons": dict(sorted(reasons.items()))}
    return kept, summary


def check_snapshot(
    database: Database,
    spec: TaskSpec,
    options: QualityOptions,
    examples: Sequence[LabelledExample],
    production: ModelVersionRecord | None,
    *,
    run_id: int | None,
    embedder: Embedder,
) -> CheckResult:
    """Run the label check on a snapshot and store its suspects, flags and numbers.

    Skipped (recorded, with the reason) when the check is off, there is no production
    model, it cannot embed, or there are too few corrections or classes.
    """
    started = time.monotonic()
    with database.begin() as session:
        quality_store.confirm_superseded(session=session, task=spec.name)
    result, details = _check(spec, options, examples, production, embedder, started)
    with database.begin() as session:
        if result.ran:
            stored = quality_store.add_suspects(
                session=session,
                task=spec.name,
                run_id=run_id,
                items=details.pop("new"),
            )
            result = _with(result, new_suspects=len(stored))
            result = _with(result, flagged=_flag(session, spec.name, run_id, details, options))
        quality_store.record_check(
            session=session,
            task=spec.name,
            run_id=run_id,
            ran=result.ran,
            reason=result.reason,
            details=result.summary() | details,
        )
    if result.ran:
        logger.info("label check of %s: %s", spec.name, result.reason)
    else:
        logger.info("label check of %s skipped: %s", spec.name, result.reason)
    return result


def _with(result: CheckResult, **changes: Any) -> CheckResult:
    return replace(result, **changes)


def _check(
    spec: TaskSpec,
    options: QualityOptions,
    examples: Sequence[LabelledExample],
    production: ModelVersionRecord | None,
    embedder: Embedder,
    started: float,
) -> tuple[CheckResult, dict[str, Any]]:
    import numpy as np

    from trainer.label_quality import find_label_issues

    index = {label: i for i, label in enumerate(spec.labels)}
    known = [e for e in examples if e.label in index]
    checked = [e for e in known if e.source in CHECKED]
    if not options.enabled:
        return CheckResult(False, "the label check is off (BERTBOT_QUALITY__ENABLED)"), {}
    if production is None:
        return CheckResult(False, "no production model to embed the labels with"), {}
    if len(checked) < options.min_corrections:
        return CheckResult(
            False,
            f"{len(checked)} correction(s), fewer than {options.min_corrections} "
            "(BERTBOT_QUALITY__MIN_CORRECTIONS)",
            checked=len(checked),
        ), {}
    model = embedder(production)
    if model is None or not hasattr(model, "embed"):
        return CheckResult(
            False, f"production v{production.version} cannot embed texts", checked=len(checked)
        ), {}
    rng = random.Random(options.seed)
    reference = [e for e in known if e.source not in CHECKED]
    if len(reference) > options.seed_sample:
        reference = rng.sample(reference, options.seed_sample)
    sample = reference + checked
    given = np.array([index[e.label] for e in sample])
    counts = np.bincount(given, minlength=len(spec.labels))
    if (counts >= 2).sum() < 2:
        return CheckResult(
            False, "fewer than two labels with two examples each", checked=len(checked)
        ), {}
    keep = counts[given] >= 2  # a label seen once cannot be judged out of fold
    sample = [e for e, k in zip(sample, keep, strict=True) if k]
    given = given[keep]
    embeddings = np.asarray(model.embed([e.text for e in sample]), dtype=np.float64)
    verdict = find_label_issues(
        embeddings,
        given,
        len(spec.labels),
        folds=options.folds,
        seed=options.seed,
        groups=_annotator_groups(sample),
    )
    per_annotator: dict[str, dict[str, int]] = {}
    new: list[quality_store.NewSuspect] = []
    for row, example in enumerate(sample):
        if example.source not in CHECKED:
            continue
        stats = per_annotator.setdefault(example.annotator, {"n": 0, "agree": 0, "suspects": 0})
        stats["n"] += 1
        stats["agree"] += int(verdict.probabilities[row].argmax() == given[row])
        if verdict.issue[row]:
            stats["suspects"] += 1
            new.append(
                quality_store.NewSuspect(
                    annotation_id=example.annotation_id,
                    reason=CONFIDENT_REASON,
                    suggested_label=spec.labels[int(verdict.suggested[row])],
                    given_probability=float(verdict.probabilities[row, given[row]]),
                )
            )
    n_checked = sum(s["n"] for s in per_annotator.values())
    reason = (
        f"{len(new)} of {n_checked} correction(s) suspect by confident learning "
        f"({verdict.folds}-fold logistic regression on production v{production.version}'s "
        f"embeddings of {len(sample)} labels)"
    )
    result = CheckResult(
        True,
        reason,
        checked=n_checked,
        sample=len(sample),
        suspects=len(new),
        seconds=time.monotonic() - started,
    )
    details = {
        "model_version": production.version,
        "folds": verdict.folds,
        "thresholds": {
            label: float(t) for label, t in zip(spec.labels, verdict.thresholds, strict=True)
        },
        "annotators": per_annotator,
        "new": new,
    }
    return result, details


def _flag(
    session: Any, task: str, run_id: int | None, details: dict[str, Any], options: QualityOptions
) -> list[str]:
    from trainer.label_quality import flag_annotators

    stats = details["annotators"]
    verdicts = flag_annotators(
        {name: (s["n"], s["suspects"]) for name, s in stats.items()}, options
    )
    cleared = quality_store.last_cleared(session=session, task=task)
    latest = _latest_correction(session, task)
    flagged = []
    for verdict in verdicts:
        stats[verdict.annotator]["p_value"] = verdict.p_value
        if not verdict.flagged:
            continue
        when = cleared.get(verdict.annotator)
        if when is not None and latest.get(verdict.annotator, when) <= when:
            continue  # an admin cleared them and they labelled nothing since
        quality_store.flag_annotator(
            session=session,
            task=task,
            annotator=verdict.annotator,
            run_id=run_id,
            corrections=verdict.corrections,
            suspects=verdict.suspects,
            peer_rate=verdict.peer_rate,
            p_value=verdict.p_value,
        )
        flagged.append(verdict.annotator)
    return flagged


def _latest_correction(session: Any, task: str) -> dict[str, datetime]:
    return quality_store.latest_labelled(session=session, task=task)


def mark_chance_rejection(
    session: Any,
    task: str,
    *,
    run_id: int | None,
    examples: Sequence[LabelledExample],
    since: datetime | None,
    actor: str,
) -> int:
    """Make the batch of a candidate the gate found no better than chance suspect.

    The batch is the moderators' corrections (and appeal decisions) among ``examples`` made
    after ``since`` (production's snapshot; all without production).

    Returns:
        How many were newly held.
    """
    batch = [e for e in examples if e.source in CHECKED and (since is None or e.created_at > since)]
    stored = quality_store.add_suspects(
        session=session,
        task=task,
        run_id=run_id,
        items=[quality_store.NewSuspect(e.annotation_id, CHANCE_REASON) for e in batch],
    )
    if stored:
        audit.record_audit(
            session=session,
            actor=actor,
            action="hold_out",
            subject=f"{task}/run/{run_id}",
            details={"reason": CHANCE_REASON, "suspects": len(stored)},
        )
    return len(stored)


def is_chance_rejection(decision: Any) -> bool:
    """The gate rejected a candidate because it did not learn the corrections beyond chance."""
    return not decision.promote and any(
        check.name == "learned_corrections" and not check.passed for check in decision.checks
    )


def saved_model_embedder(home: ArtifactLocation, task: str) -> Embedder:
    """Loads a version's SavedModel to embed with (None when it cannot be loaded)."""

    def load(version: ModelVersionRecord) -> Any:
        from trainer.serving import SavedModelClassifier, ServingError

        try:
            return SavedModelClassifier.load(
                resolve_artifact(home, version.artifact_uri),
                task=task,
                version=version.version,
                expected_sha256=version.sha256,
            )
        except ServingError as exc:
            logger.warning("the label check cannot load %s v%s: %s", task, version.version, exc)
            return None

    return load


def hold_out_snapshot(
    database: Database,
    spec: TaskSpec,
    options: RetrainOptions,
    examples: Sequence[LabelledExample],
    production: ModelVersionRecord | None,
    *,
    run_id: int,
    embedder: Embedder | None = None,
) -> tuple[list[LabelledExample], dict[str, Any]]:
    """Check a retrain's snapshot, then leave out what is held (:func:`held_out`).

    Returns:
        The snapshot's examples without the held-out texts, and the run summary's
        ``label_check`` and ``held_out`` entries.
    """
    result = check_snapshot(
        database,
        spec,
        options.quality,
        examples,
        production,
        run_id=run_id,
        embedder=embedder or saved_model_embedder(options.artifacts, spec.name),
    )
    with database.begin() as session:
        held = held_out(session, spec.name)
    kept, held_summary = split_held_out(examples, held)
    return kept, {
        "label_check": result.summary(),
        "held_out": held_summary,
    }


def mark_batch_if_chance(
    session: Any,
    task: str,
    decision: GateDecision,
    run: TrainingRunRecord,
    examples: Sequence[LabelledExample],
    production: ModelVersionRecord | None,
) -> int:
    """After a chance rejection, hold out the batch (and say so in the run's summary)."""
    if not is_chance_rejection(decision):
        return 0
    marked = mark_chance_rejection(
        session,
        task,
        run_id=run.id,
        examples=examples,
        since=snapshot_time(production),
        actor=run.requested_by,
    )
    if decision.snapshot is not None:
        decision.snapshot["marked_suspect"] = {"n": marked, "reason": CHANCE_REASON}
    return marked


def _annotator_groups(sample: Sequence[LabelledExample]) -> list[str | None] | None:
    """Each checked label's annotator, so each is judged without their own labels; None (plain
    k-fold) when one annotator gave them all: judged by the seed labels alone, a lone
    moderator teaching a new domain would look wrong wholesale."""
    groups = [e.annotator if e.source in CHECKED else None for e in sample]
    return groups if len({g for g in groups if g is not None}) >= 2 else None
