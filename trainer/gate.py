"""The promotion gate: may a candidate replace production?

Both models are scored on the identical eval set. The candidate is promoted only if
macro-F1 rises by at least ``min_delta``, a paired bootstrap over eval examples gives
P(delta > 0) >= ``confidence``, no class's recall drops by more than ``max_class_drop``,
and the eval set has at least ``min_eval`` examples. Pure functions of predictions and
thresholds: no TensorFlow, no database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from trainer.metrics import classification_metrics


@dataclass(frozen=True)
class GateConfig:
    """Thresholds of the gate (settings ``BERTBOT_GATE__*``)."""

    min_delta: float = 0.005
    confidence: float = 0.90
    max_class_drop: float = 0.05
    min_eval: int = 200
    bootstrap_resamples: int = 1000
    seed: int = 0
    correction_share: float = 0.5

    def __post_init__(self) -> None:
        if not 0 <= self.min_delta <= 1:
            raise ValueError("min_delta must be in [0, 1]")
        if not 0 < self.confidence < 1:
            raise ValueError("confidence must be in (0, 1)")
        if not 0 <= self.max_class_drop <= 1:
            raise ValueError("max_class_drop must be in [0, 1]")
        if not 0 <= self.correction_share < 1:
            raise ValueError("correction_share must be in [0, 1)")
        if self.min_eval < 1 or self.bootstrap_resamples < 100:
            raise ValueError("min_eval must be >= 1 and bootstrap_resamples >= 100")


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    value: float
    threshold: float
    detail: str


@dataclass(frozen=True)
class GateDecision:
    """The verdict with every number behind it (stored with the training run)."""

    promote: bool
    reason: str
    checks: list[Check]
    eval_size: int
    candidate: dict[str, Any]
    production: dict[str, Any] | None
    delta_macro_f1: float
    p_improvement: float | None
    recall_drops: dict[str, float] = field(default_factory=dict)
    corrections: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def macro_f1_from_weights(
    weights: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, num_classes: int
) -> np.ndarray:
    """Macro-F1 for many weightings of the same examples at once.

    Args:
        weights: [resamples, n] how often each example is drawn in each resample.
        y_true: [n] class indices.
        y_pred: [n] class indices.
        num_classes: k.

    Returns:
        [resamples] macro-F1 values (classes absent from both truth and prediction count 0,
        as scikit-learn's ``zero_division=0`` with explicit labels does).
    """
    true_one_hot = np.eye(num_classes)[y_true]  # [n, k]
    pred_one_hot = np.eye(num_classes)[y_pred]
    tp = weights @ (true_one_hot * pred_one_hot)  # [r, k]
    support = weights @ true_one_hot
    predicted = weights @ pred_one_hot
    denominator = support + predicted
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    return np.asarray(f1.mean(axis=1))


def paired_bootstrap(
    y_true: np.ndarray,
    candidate: np.ndarray,
    production: np.ndarray,
    num_classes: int,
    *,
    resamples: int,
    seed: int,
    chunk: int = 250,
    example_weights: np.ndarray | None = None,
) -> tuple[float, float, float]:
    """P(macro-F1 delta > 0) over paired resamples of the eval examples.

    Returns:
        (probability that the candidate is better, 5th and 95th percentile of the delta).
    """
    rng = np.random.default_rng(seed)
    n = len(y_true)
    deltas = []
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        draws = rng.integers(0, n, size=(size, n))
        weights = np.zeros((size, n))
        np.add.at(weights, (np.arange(size)[:, None], draws), 1.0)
        if example_weights is not None:
            weights *= example_weights[None, :]
        deltas.append(
            macro_f1_from_weights(weights, y_true, candidate, num_classes)
            - macro_f1_from_weights(weights, y_true, production, num_classes)
        )
    delta = np.concatenate(deltas)
    return (
        float((delta > 0).mean()),
        float(np.percentile(delta, 5)),
        float(np.percentile(delta, 95)),
    )


def eval_weights(corrections_mask: Sequence[bool] | None, share: float) -> list[float] | None:
    """Weights giving corrections at least ``share`` of the eval set's total (None: equal)."""
    if corrections_mask is None:
        return None
    corrections = sum(1 for flag in corrections_mask if flag)
    others = len(corrections_mask) - corrections
    if corrections == 0 or others == 0 or corrections / len(corrections_mask) >= share:
        return None
    weight = share * others / ((1 - share) * corrections)
    return [weight if flag else 1.0 for flag in corrections_mask]


def majority_baseline_macro_f1(
    y_true: Sequence[str], labels: Sequence[str], weights: Sequence[float] | None = None
) -> float:
    """Macro-F1 of always predicting the most frequent label."""
    w = weights or [1.0] * len(y_true)
    totals = {label: 0.0 for label in labels}
    for y, x in zip(y_true, w, strict=True):
        totals[y] += x
    majority = max(labels, key=lambda label: totals[label])
    predicted = [majority] * len(y_true)
    return float(classification_metrics(y_true, predicted, labels, weights)["macro_f1"])


def decide(
    y_true: Sequence[str],
    candidate_pred: Sequence[str],
    production_pred: Sequence[str] | None,
    labels: Sequence[str],
    config: GateConfig,
    *,
    corrections_mask: Sequence[bool] | None = None,
) -> GateDecision:
    """Apply every gate rule and explain the outcome.

    Args:
        y_true: Gold labels of the eval set.
        candidate_pred: The candidate's predictions on it.
        production_pred: Production's predictions on the same examples (None: no production).
        labels: The task's labels.
        config: Thresholds.
        corrections_mask: Which eval examples are moderators' corrections (reported apart).
    """
    labels = list(labels)
    n = len(y_true)
    weights = eval_weights(corrections_mask, config.correction_share) if n else None
    candidate_metrics = classification_metrics(y_true, candidate_pred, labels, weights)
    checks: list[Check] = [
        Check(
            "min_eval",
            n >= config.min_eval,
            n,
            config.min_eval,
            f"{n} eval examples (need {config.min_eval})",
        )
    ]
    corrections = None
    if corrections_mask is not None and any(corrections_mask):
        picked = [i for i, flag in enumerate(corrections_mask) if flag]
        corrections = {
            "n": len(picked),
            "eval_weight": weights[picked[0]] if weights else 1.0,
            "candidate_macro_f1": classification_metrics(
                [y_true[i] for i in picked], [candidate_pred[i] for i in picked], labels
            )["macro_f1"],
        }
        if production_pred is not None:
            corrections["production_macro_f1"] = classification_metrics(
                [y_true[i] for i in picked], [production_pred[i] for i in picked], labels
            )["macro_f1"]

    if production_pred is None:
        baseline = majority_baseline_macro_f1(y_true, labels, weights)
        delta = candidate_metrics["macro_f1"] - baseline
        checks.append(
            Check(
                "beats_majority_baseline",
                delta > 0,
                candidate_metrics["macro_f1"],
                baseline,
                f"macro-F1 {candidate_metrics['macro_f1']:.4f} vs majority-class {baseline:.4f}",
            )
        )
        promote = all(check.passed for check in checks)
        return GateDecision(
            promote=promote,
            reason=_reason(promote, checks, first=True),
            checks=checks,
            eval_size=n,
            candidate=candidate_metrics,
            production=None,
            delta_macro_f1=delta,
            p_improvement=None,
            corrections=corrections,
        )

    production_metrics = classification_metrics(y_true, production_pred, labels, weights)
    delta = candidate_metrics["macro_f1"] - production_metrics["macro_f1"]
    checks.append(
        Check(
            "min_delta",
            delta >= config.min_delta,
            delta,
            config.min_delta,
            f"macro-F1 {candidate_metrics['macro_f1']:.4f} vs production "
            f"{production_metrics['macro_f1']:.4f} (delta {delta:+.4f}, need "
            f"+{config.min_delta})",
        )
    )
    index = {label: i for i, label in enumerate(labels)}
    truth = np.array([index[y] for y in y_true])
    probability, low, high = (
        paired_bootstrap(
            truth,
            np.array([index[y] for y in candidate_pred]),
            np.array([index[y] for y in production_pred]),
            len(labels),
            resamples=config.bootstrap_resamples,
            seed=config.seed,
            example_weights=None if weights is None else np.asarray(weights),
        )
        if n
        else (0.0, 0.0, 0.0)
    )
    checks.append(
        Check(
            "confidence",
            probability >= config.confidence,
            probability,
            config.confidence,
            f"P(delta > 0) = {probability:.3f} over {config.bootstrap_resamples} paired "
            f"resamples (90% interval {low:+.4f}..{high:+.4f}; need {config.confidence})",
        )
    )
    drops = {
        label: production_metrics["per_class"][label]["recall"]
        - candidate_metrics["per_class"][label]["recall"]
        for label in labels
    }
    worst = max(drops, key=lambda label: drops[label])
    checks.append(
        Check(
            "max_class_drop",
            drops[worst] <= config.max_class_drop,
            drops[worst],
            config.max_class_drop,
            f"largest recall drop {drops[worst]:+.4f} ({worst}; allowed {config.max_class_drop})",
        )
    )
    promote = all(check.passed for check in checks)
    return GateDecision(
        promote=promote,
        reason=_reason(promote, checks, first=False),
        checks=checks,
        eval_size=n,
        candidate=candidate_metrics,
        production=production_metrics,
        delta_macro_f1=delta,
        p_improvement=probability,
        recall_drops=drops,
        corrections=corrections,
    )


def _reason(promote: bool, checks: list[Check], *, first: bool) -> str:
    if promote:
        detail = "; ".join(check.detail for check in checks if check.name != "min_eval")
        return ("first model: " if first else "better: ") + detail
    failed = [check.detail for check in checks if not check.passed]
    return "rejected: " + "; ".join(failed)
