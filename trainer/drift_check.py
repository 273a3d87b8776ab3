"""One drift check of a task: recent channel messages against the production model's eval
split, scored by the production model itself, recorded with its episode.

The reference is the eval split the gate scored production on: the task's effective labels
on the eval side of the stable hash split, labelled no later than production's label
snapshot (:func:`storage.annotations.eval_split`), so corrections made since (often of the
very messages being checked) never dilute it. Recent = channel messages received in the last
``days`` days, however they arrived. Both are sampled (at most ``sample`` each, seeded), so a
check costs about ``2 x sample`` texts through the model twice (probabilities and embeddings).
The statistics are :mod:`trainer.drift`; the episode rule is
:func:`storage.drift.record_check`; a check that finds drift flags its most drifted messages
for the review queue.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from storage import annotations as label_store
from storage import drift as drift_store
from storage import messages as message_store
from storage import registry
from storage.db import Database
from storage.enums import utcnow
from storage.records import MessageRecord, ModelVersionRecord
from trainer.artifact import ArtifactLocation, resolve_artifact
from trainer.drift import compare
from trainer.options import DriftOptions
from trainer.tasks import TaskSpec

logger = logging.getLogger(__name__)

MIN_REFERENCE = 20
_CHUNK = 64

# (texts done, texts in all) while the model reads the two samples.
ProgressFn = Callable[[int, int], None]


class DriftCheckError(RuntimeError):
    """A check cannot run (no production model, too few messages, no embeddings, ...)."""


@dataclass(frozen=True)
class DriftedMessage:
    """A recent message among the most unlike the reference (highest MMD witness)."""

    message_id: int
    channel_id: str
    text: str
    witness: float
    label: str
    confidence: float


@dataclass(frozen=True)
class DriftReport:
    """What one check found (``to_json`` is ``bertbot drift --json``'s answer).

    Attributes:
        p_value: Bonferroni of the two tests' permutation p-values.
        drifted: ``p_value < alpha``.
        expected_macro_f1: Label-free estimate on the recent sample: calibrated confidences,
            corrected by the same estimate's error on the (labelled) reference.
        expected_macro_f1_raw: The confidence-based estimate before that correction.
        reference_macro_f1: Production's macro-F1 on the reference sample.
        n_recent: Recent messages compared (a sample of ``n_recent_total``).
        n_reference: Eval-split texts compared.
        check_id: The stored check (None when not recorded).
        episode_id: The episode the check opened, continued or ended (None: none).
        episode_change: ``opened``, ``continued``, ``ended`` or ``none``.
        flagged: Messages put in the review queue.
    """

    task: str
    model_version: str
    checked_at: datetime
    days: float
    alpha: float
    p_value: float
    p_embeddings: float
    p_labels: float
    drifted: bool
    expected_macro_f1: float
    expected_f1: dict[str, float]
    expected_macro_f1_raw: float
    reference_macro_f1: float | None
    n_recent: int
    n_recent_total: int
    n_reference: int
    reference_labels: dict[str, float]
    recent_labels: dict[str, float]
    mmd2: float
    chi_square: float
    bandwidth: float
    permutations: int
    reference_as_of: datetime
    most_drifted: list[DriftedMessage]
    seconds: float
    check_id: int | None = None
    episode_id: int | None = None
    episode_change: str = "none"
    flagged: int = 0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["checked_at"] = self.checked_at.isoformat()
        data["reference_as_of"] = self.reference_as_of.isoformat()
        return data


def reference_cutoff(production: ModelVersionRecord) -> datetime:
    """When production's labels were snapshotted (its version's creation, if not recorded)."""
    taken = (production.data_snapshot or {}).get("taken_at")
    if isinstance(taken, str):
        try:
            moment = datetime.fromisoformat(taken)
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return moment
    return production.created_at


def check_drift(
    database: Database,
    spec: TaskSpec,
    options: DriftOptions,
    *,
    home: ArtifactLocation,
    record: bool = True,
    classifier: Any = None,
    progress: ProgressFn | None = None,
    now: datetime | None = None,
) -> DriftReport:
    """Compare a task's recent channel messages with its production model's eval split.

    Args:
        database: The store.
        spec: The task.
        options: Window, alpha, sample sizes, permutations (``BERTBOT_DRIFT__*``).
        home: BERTBOT_HOME (where production's artifact is).
        record: Store the check, move the episode and flag the most drifted messages for
            review; False only reports.
        classifier: A loaded model to use when it is the version production points at and
            has embeddings (a serving process's own), to avoid loading it again; otherwise
            production is loaded and verified here.
        progress: Told (texts done, texts in all) while the model reads the samples.
        now: The current time (tests).

    Raises:
        DriftCheckError: No production model, one without embeddings, too few recent messages
            or reference texts.
        StorageError: The database failed.
    """
    started = time.monotonic()
    now = now or utcnow()
    with database.begin() as session:
        production = registry.get_alias(session=session, task=spec.name)
        if production is None:
            raise DriftCheckError(
                f"{spec.name} has no production model to check; train one first "
                f"(`bertbot retrain --task {spec.name}`)"
            )
        cutoff = reference_cutoff(production)
        reference = label_store.eval_split(session=session, task=spec.name, labelled_before=cutoff)
        recent, total = message_store.sample_recent_messages(
            session=session,
            since=now - timedelta(days=options.days),
            limit=options.sample,
            seed=options.seed,
        )
    if len(recent) < options.min_messages:
        raise DriftCheckError(
            f"only {len(recent)} channel message(s) in the last {options.days:g} day(s); a "
            f"drift check needs at least {options.min_messages} (BERTBOT_DRIFT__MIN_MESSAGES; "
            "`bertbot messages import` back-fills history)"
        )
    if len(reference) < MIN_REFERENCE:
        raise DriftCheckError(
            f"{spec.name} v{production.version}'s eval split holds {len(reference)} text(s) "
            f"labelled by {cutoff:%Y-%m-%d %H:%M} UTC; a drift check needs at least "
            f"{MIN_REFERENCE}"
        )
    rng = random.Random(options.seed)
    if len(reference) > options.sample:
        reference = rng.sample(list(reference), options.sample)
    reference_texts = [e.text for e in reference]
    usable = (
        classifier is not None
        and getattr(classifier, "version", None) == production.version
        and hasattr(classifier, "embed")
    )
    model = classifier if usable else _load(home, spec, production)
    if list(model.labels) != list(spec.labels):
        raise DriftCheckError(
            f"{spec.name} v{production.version} predicts {list(model.labels)}, not the task's "
            f"labels {list(spec.labels)}"
        )
    texts = reference_texts + [m.text for m in recent]
    embeddings, probabilities = _read(model, texts, progress)
    n = len(reference_texts)
    stats = compare(
        embeddings[:n],
        embeddings[n:],
        probabilities[:n],
        probabilities[n:],
        reference_truth=[list(spec.labels).index(e.label) for e in reference],
        permutations=options.permutations,
        seed=options.seed,
    )
    labels = list(spec.labels)
    drifted = stats.drifted(options.p_value)
    most = [
        _drifted_message(recent[i], float(stats.witness[i]), probabilities[n + i], labels)
        for i in stats.most_drifted(options.flag)
    ]
    report = DriftReport(
        task=spec.name,
        model_version=production.version,
        checked_at=now,
        days=options.days,
        alpha=options.p_value,
        p_value=stats.p_value,
        p_embeddings=stats.mmd.p_value,
        p_labels=stats.labels.p_value,
        drifted=drifted,
        expected_macro_f1=stats.expected_macro_f1,
        expected_f1=dict(zip(labels, stats.expected_f1, strict=True)),
        expected_macro_f1_raw=stats.expected_macro_f1_raw,
        reference_macro_f1=stats.reference_macro_f1,
        n_recent=len(recent),
        n_recent_total=total,
        n_reference=n,
        reference_labels=dict(zip(labels, stats.reference_labels, strict=True)),
        recent_labels=dict(zip(labels, stats.recent_labels, strict=True)),
        mmd2=stats.mmd.statistic,
        chi_square=stats.labels.statistic,
        bandwidth=stats.bandwidth,
        permutations=options.permutations,
        reference_as_of=cutoff,
        most_drifted=most,
        seconds=round(time.monotonic() - started, 2),
    )
    if not record:
        return report
    return _record(database, report)


def _load(home: ArtifactLocation, spec: TaskSpec, production: ModelVersionRecord) -> Any:
    from trainer.serving import SavedModelClassifier, ServingError

    try:
        return SavedModelClassifier.load(
            resolve_artifact(home, production.artifact_uri),
            task=spec.name,
            version=production.version,
            expected_sha256=production.sha256,
            warm_up=False,
        )
    except ServingError as exc:
        raise DriftCheckError(str(exc)) from exc


def _read(
    model: Any, texts: Sequence[str], progress: ProgressFn | None
) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings and calibrated probabilities (label order) of every text, in chunks."""
    from trainer.serving import ServingError

    embeddings, probabilities = [], []
    labels = list(model.labels)
    for start in range(0, len(texts), _CHUNK):
        chunk = list(texts[start : start + _CHUNK])
        try:
            embeddings.append(np.asarray(model.embed(chunk), dtype=np.float64))
        except ServingError as exc:
            raise DriftCheckError(str(exc)) from exc
        predictions = model.predict(chunk)
        probabilities.append(
            np.array([[p.probabilities[label] for label in labels] for p in predictions])
        )
        if progress is not None:
            progress(min(start + _CHUNK, len(texts)), len(texts))
    return np.vstack(embeddings), np.vstack(probabilities)


def _drifted_message(
    message: MessageRecord, witness: float, probabilities: np.ndarray, labels: list[str]
) -> DriftedMessage:
    best = int(np.argmax(probabilities))
    return DriftedMessage(
        message_id=message.id,
        channel_id=message.channel_id,
        text=message.text,
        witness=witness,
        label=labels[best],
        confidence=float(probabilities[best]),
    )


def _record(database: Database, report: DriftReport) -> DriftReport:
    details = {
        "expected_f1": report.expected_f1,
        "expected_macro_f1_raw": report.expected_macro_f1_raw,
        "reference_macro_f1": report.reference_macro_f1,
        "reference_labels": report.reference_labels,
        "recent_labels": report.recent_labels,
        "mmd2": report.mmd2,
        "chi_square": report.chi_square,
        "bandwidth": report.bandwidth,
        "permutations": report.permutations,
        "n_recent_total": report.n_recent_total,
        "reference_as_of": report.reference_as_of.isoformat(),
        "most_drifted": [
            {"message_id": m.message_id, "witness": m.witness} for m in report.most_drifted
        ],
    }
    with database.begin() as session:
        recorded = drift_store.record_check(
            session=session,
            check=drift_store.NewDriftCheck(
                task=report.task,
                model_version=report.model_version,
                days=report.days,
                n_recent=report.n_recent,
                n_reference=report.n_reference,
                p_value=report.p_value,
                p_embeddings=report.p_embeddings,
                p_labels=report.p_labels,
                alpha=report.alpha,
                drifted=report.drifted,
                expected_macro_f1=report.expected_macro_f1,
                details=details,
            ),
            now=report.checked_at,
        )
        flagged = 0
        if report.drifted:
            flagged = drift_store.flag_for_review(
                session=session,
                task=report.task,
                scores=[(m.message_id, m.witness) for m in report.most_drifted],
                drift_check_id=recorded.check.id,
                now=report.checked_at,
            )
    logger.info(
        "drift check of %s: p %.4g (embeddings %.4g, labels %.4g), drifted %s, episode %s, "
        "expected macro-F1 %.3f",
        report.task,
        report.p_value,
        report.p_embeddings,
        report.p_labels,
        report.drifted,
        recorded.change.value,
        report.expected_macro_f1,
    )
    return replace(
        report,
        check_id=recorded.check.id,
        episode_id=recorded.episode.id if recorded.episode is not None else None,
        episode_change=recorded.change.value,
        flagged=flagged,
    )
