"""The learning loop's configs: frozen dataclasses with their defaults and bounds.

Standard library only, so the settings layer can build its fields from them at start-up
(``bertbot.settings``) without importing numpy, scikit-learn or TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.artifact import ArtifactRoot
from trainer.bounds import bounded, check_bounds

if TYPE_CHECKING:
    from trainer.gate import Gate

DEFAULT_GATE = "trainer.gate:BootstrapGate"


@dataclass(frozen=True)
class GateConfig:
    """Thresholds of the gate (settings ``BERTBOT_GATE__*``).

    Attributes:
        min_delta: Smallest macro-F1 gain (where judged) that promotes.
        confidence: Smallest bootstrap P(gain > 0).
        chance_level: Largest label-permutation p-value at which the candidate counts as
            having learnt the corrections (the share of unlearnable label sets let through).
        max_class_drop: Largest allowed drop of any class's F1 (on the guarded part).
        min_eval: Smallest eval set the gate decides on.
        bootstrap_resamples: Paired bootstrap resamples (and label permutations).
        seed: Seed of the bootstrap and the permutations.
        min_correction_eval: Corrections in the eval set needed to judge the candidate on
            them; with fewer, the whole eval set is the judge.
        max_regression: Largest macro-F1 drop allowed on the seed part of the eval set when
            the candidate is judged on the corrections.
        max_ece_increase: Largest increase of the expected calibration error (15 bins, whole
            eval set, calibrated probabilities) over production's.
    """

    min_delta: float = bounded(0.005, ge=0.0, le=1.0)
    confidence: float = bounded(0.90, gt=0.0, lt=1.0)
    chance_level: float = bounded(0.01, gt=0.0, lt=1.0)
    max_class_drop: float = bounded(0.05, ge=0.0, le=1.0)
    min_eval: int = bounded(200, ge=1)
    bootstrap_resamples: int = bounded(1000, ge=100)
    seed: int = 0
    min_correction_eval: int = bounded(30, ge=1)
    max_regression: float = bounded(0.02, ge=0.0, le=1.0)
    max_ece_increase: float = bounded(0.02, ge=0.0, le=1.0)

    def __post_init__(self) -> None:
        check_bounds(self)


@dataclass(frozen=True)
class QualityOptions:
    """The label check before each retrain (settings ``BERTBOT_QUALITY__*``; the rules are
    in :mod:`trainer.label_quality`).

    Attributes:
        enabled: Run the check at all (off: every correction trains, as before).
        folds: Folds of the out-of-fold logistic regression.
        seed_sample: At most this many seed/import examples (a seeded sample) join every
            correction in the check.
        min_corrections: Fewer checkable corrections than this: the check is skipped.
        flag_ratio: An annotator is flagged when their suspect rate is at least this many
            times the pooled rate of the others ...
        flag_min_corrections: ... they have at least this many checked corrections ...
        flag_p_value: ... and a one-sided binomial test against the others' rate gives a
            p-value below this.
        seed: Seeds the sample and the folds.
    """

    enabled: bool = True
    folds: int = bounded(5, ge=2, le=20)
    seed_sample: int = bounded(5000, ge=0, le=100_000)
    min_corrections: int = bounded(10, ge=1)
    flag_ratio: float = bounded(2.0, ge=1.0)
    flag_min_corrections: int = bounded(20, ge=1)
    flag_p_value: float = bounded(0.01, gt=0.0, lt=1.0)
    seed: int = 0

    def __post_init__(self) -> None:
        check_bounds(self)


@dataclass(frozen=True)
class RetrainOptions:
    """Everything a retrain needs besides the database and the task (built from settings).

    Attributes:
        home: BERTBOT_HOME.
        artifact_root: Where artifacts are written, ``<root>/<task>/<version>``
            (``BERTBOT_ARTIFACT_ROOT``; None: ``home/models``).
        encoder_dir: The imported base encoder.
        base_encoder: Its name, recorded on versions.
        gate: The promotion thresholds.
        gate_implementation: The gate class (``module:Class``; setting
            ``BERTBOT_GATE__IMPLEMENTATION``).
        max_minutes: Wall-clock budget of the fine-tune.
        min_new_labels: Corrections needed since production's snapshot (unless forced).
        keep_rejected: Rejected candidates whose artifacts are kept per task.
        threads: TensorFlow threads (None: all cores).
        replay_examples: Seed examples replayed in a warm start from production.
        correction_share: Target share of corrections in the training mix (by oversampling).
        lease_ttl: How long the lease lasts without renewal (renewed every third of it).
        train_overrides: TrainConfig fields to override (learning rate, epochs, ...).
        seed: Seeds sampling and training.
        quality: The label check that holds doubtful corrections out of the retrain.
    """

    home: Path
    encoder_dir: Path
    base_encoder: str
    gate: GateConfig = field(default_factory=GateConfig)
    gate_implementation: str = DEFAULT_GATE
    max_minutes: float = bounded(30.0, gt=0.0)
    min_new_labels: int = bounded(20, ge=0)
    keep_rejected: int = bounded(3, ge=0)
    threads: int | None = bounded(None, ge=1, le=64)
    replay_examples: int = bounded(6000, ge=0)
    correction_share: float = bounded(0.25, gt=0.0, lt=1.0)
    lease_ttl: timedelta = timedelta(minutes=5)
    train_overrides: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    quality: QualityOptions = field(default_factory=QualityOptions)
    artifact_root: Path | None = None

    def __post_init__(self) -> None:
        check_bounds(self)

    @property
    def artifacts(self) -> ArtifactRoot:
        """Where this retrain writes and finds artifacts (the one URI rule)."""
        if self.artifact_root is None:
            return ArtifactRoot.of_home(self.home)
        return ArtifactRoot(self.artifact_root, self.home)

    def make_gate(self) -> Gate:
        """The gate ``gate_implementation`` names, with the ``gate`` thresholds."""
        from trainer.gate import load_gate

        return load_gate(self.gate_implementation, self.gate)


@dataclass(frozen=True)
class DriftOptions:
    """How drift watch compares recent channel messages with production's eval split
    (settings ``BERTBOT_DRIFT__*``; see :mod:`trainer.drift` for the statistics).

    Attributes:
        days: Recent = channel messages received in the last this many days.
        p_value: A check finds drift when the combined p-value is below this.
        sample: At most this many recent messages and this many reference texts (random,
            seeded): bounds a check to seconds-to-a-minute on 2 cores.
        permutations: Permutations of each two-sample test (the smallest p-value one can
            give is ``1 / (permutations + 1)``).
        min_messages: Fewer recent messages than this: no check (nothing is recorded).
        flag: The most drifted messages listed, and flagged for review when drift is found.
        interval_hours: How often the scheduler checks each task (0: never).
        seed: Seeds the samples and the permutations.
    """

    days: float = bounded(7.0, gt=0.0, le=366.0)
    p_value: float = bounded(0.01, gt=0.0, lt=1.0)
    sample: int = bounded(500, ge=20, le=5000)
    permutations: int = bounded(1000, ge=99, le=20000)
    min_messages: int = bounded(50, ge=10)
    flag: int = bounded(10, ge=0, le=100)
    interval_hours: float = bounded(24.0, ge=0.0, le=24.0 * 31)
    seed: int = 0

    def __post_init__(self) -> None:
        check_bounds(self)
        smallest = 2.0 / (self.permutations + 1)  # Bonferroni over two tests
        if smallest >= self.p_value:
            raise ValueError(
                f"permutations must be at least {int(2.0 / self.p_value)} for p_value "
                f"{self.p_value:g}: with {self.permutations} the smallest combined p-value is "
                f"{smallest:.4g}, so drift could never be found"
            )
