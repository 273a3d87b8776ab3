"""The promotion gate: may a candidate replace production?

Both models are scored on the identical eval set. Where moderators' corrections make up
enough of it (``min_correction_eval``), the candidate is judged where the bot was wrong and
guarded everywhere else:

- on the corrections' eval share: macro-F1 rises by at least ``min_delta``, a paired
  bootstrap over those examples gives P(delta > 0) >= ``confidence``, and the candidate agrees
  with the corrections better than chance (a label-permutation test at level
  ``chance_level``: labels a model cannot learn, such as shuffled ones, never count as a
  gain);
- on the rest of the eval set (seed labels): macro-F1 falls by at most ``max_regression`` and
  no class's F1 drops by more than ``max_class_drop`` (a class the candidate gives up
  loses its F1; a shift of the boundary between two classes, trading one's recall for its
  precision, does not).

Given both models' (calibrated) probabilities, a candidate whose expected calibration error
on the whole eval set exceeds production's by more than ``max_ece_increase`` is rejected when
that is not noise: when, over the same paired bootstrap resamples, its ECE is above
production's with P >= ``confidence``. A model whose confidences mean less would move every
threshold that reads them (alerts, the review queue); but ECE on a few hundred examples moves
by a few hundredths between resamples, so the point estimate alone would keep good
candidates out at random.

Without enough corrections in the eval set, every rule applies to the whole eval set. In both
cases the eval set must hold at least ``min_eval`` examples. Judging the two parts apart keeps
a few dozen in-domain corrections from being drowned by thousands of seed examples, without
letting them mask a loss elsewhere. Pure functions of predictions and thresholds: no
TensorFlow, no database.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from trainer.calibration import brier_score, expected_calibration_error
from trainer.decisions import Check, GateDecision
from trainer.metrics import classification_metrics
from trainer.options import DEFAULT_GATE, GateConfig

__all__ = ["DEFAULT_GATE", "BootstrapGate", "Gate", "GateConfig", "decide", "load_gate"]


@runtime_checkable
class Gate(Protocol):
    """May a candidate replace production? One implementation per rule set.

    ``decide`` gets the gold labels of the eval set, the candidate's and production's
    predictions on it (production None: the task has no model yet), which examples are
    moderators' corrections and, when known, both models' calibrated probabilities
    ([n, labels] in ``labels`` order), and returns a :class:`GateDecision` explaining itself.
    ``first_model`` judges a task's first model from its held-out metrics alone (setup and
    ``bertbot train`` have no production to compare with). Replace the gate by writing a
    class with these two methods, constructed from a :class:`GateConfig`, and naming it in
    ``BERTBOT_GATE__IMPLEMENTATION`` (``module:Class``).
    """

    def decide(
        self,
        y_true: Sequence[str],
        candidate_pred: Sequence[str],
        production_pred: Sequence[str] | None,
        labels: Sequence[str],
        *,
        corrections_mask: Sequence[bool] | None = None,
        candidate_probabilities: Any = None,
        production_probabilities: Any = None,
    ) -> GateDecision: ...

    def first_model(self, metrics: Mapping[str, Any]) -> Check: ...


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


def permutation_test(
    y_true: np.ndarray, y_pred: np.ndarray, num_classes: int, *, permutations: int, seed: int
) -> tuple[float, float]:
    """How often shuffled labels fit the predictions at least as well as the real ones.

    Returns:
        (p-value: (k + 1) / (n + 1) for k of n label permutations whose macro-F1 >= the
        observed one, the
        95th percentile of the permuted macro-F1s: the best that chance agreement gives).
    """
    rng = np.random.default_rng(seed)
    observed = macro_f1_from_weights(np.ones((1, len(y_true))), y_true, y_pred, num_classes)[0]
    pred_one_hot = np.eye(num_classes)[y_pred]
    shuffled = np.stack([rng.permutation(y_true) for _ in range(permutations)])  # [p, n]
    true_one_hot = np.eye(num_classes)[shuffled]  # [p, n, k]
    tp = (true_one_hot * pred_one_hot[None]).sum(axis=1)
    denominator = true_one_hot.sum(axis=1) + pred_one_hot.sum(axis=0)[None]
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0).mean(axis=1)
    # (k + 1) / (n + 1): the observed labelling counts as one of the permutations, so the
    # estimate is never 0 (Phipson & Smyth 2010).
    extreme = int((f1 >= observed - 1e-12).sum())
    return (extreme + 1) / (permutations + 1), float(np.percentile(f1, 95))


def majority_baseline_macro_f1(metrics: Mapping[str, Any]) -> float:
    """Macro-F1 of always predicting the most frequent class, from a metrics dict's supports.

    The majority class gets F1 = 2p / (p + 1) with p its share; every other class gets 0.
    """
    supports = [row["support"] for row in metrics["per_class"].values()]
    total, top = sum(supports), max(supports, default=0)
    if total == 0:
        return 0.0
    precision = top / total
    return float(2 * precision / (precision + 1) / len(supports))


def first_model_check(metrics: Mapping[str, Any] | None) -> Check:
    """A task's first model must beat always predicting the most frequent class."""
    score = float(metrics["macro_f1"]) if metrics else 0.0
    baseline = majority_baseline_macro_f1(metrics) if metrics else 0.0
    return Check(
        "beats_majority_baseline",
        score > baseline + 1e-9,  # the same number computed two ways must not count as a gain
        score,
        baseline,
        f"macro-F1 {score:.4f} vs majority-class {baseline:.4f}",
    )


def _subset(values: Sequence[str], picked: Sequence[int]) -> list[str]:
    return [values[i] for i in picked]


def decide(
    y_true: Sequence[str],
    candidate_pred: Sequence[str],
    production_pred: Sequence[str] | None,
    labels: Sequence[str],
    config: GateConfig,
    *,
    corrections_mask: Sequence[bool] | None = None,
    candidate_probabilities: Any = None,
    production_probabilities: Any = None,
) -> GateDecision:
    """Apply every gate rule and explain the outcome.

    Args:
        y_true: Gold labels of the eval set.
        candidate_pred: The candidate's predictions on it.
        production_pred: Production's predictions on the same examples (None: no production).
        labels: The task's labels.
        config: Thresholds.
        corrections_mask: Which eval examples are moderators' corrections.
        candidate_probabilities: The candidate's calibrated probabilities [n, labels] (its
            ECE and Brier score are reported; None: not known).
        production_probabilities: Production's, on the same examples (with the candidate's:
            the ``max_ece_increase`` rule applies).
    """
    labels = list(labels)
    n = len(y_true)
    mask = list(corrections_mask) if corrections_mask is not None else [False] * n
    if len(mask) != n:
        raise ValueError(f"corrections_mask has {len(mask)} entries for {n} eval examples")
    picked = [i for i, flag in enumerate(mask) if flag]
    rest = [i for i, flag in enumerate(mask) if not flag]
    candidate_metrics = classification_metrics(y_true, candidate_pred, labels)
    truth_index = np.array([labels.index(label) for label in y_true], dtype=int)
    candidate_metrics.update(_calibration(candidate_probabilities, truth_index, n))
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
    if picked:
        corrections = {
            "n": len(picked),
            "candidate_macro_f1": classification_metrics(
                _subset(y_true, picked), _subset(candidate_pred, picked), labels
            )["macro_f1"],
        }
        if production_pred is not None:
            corrections["production_macro_f1"] = classification_metrics(
                _subset(y_true, picked), _subset(production_pred, picked), labels
            )["macro_f1"]

    if production_pred is None:
        first = first_model_check(candidate_metrics)
        delta = first.value - first.threshold
        checks.append(first)
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

    production_metrics = classification_metrics(y_true, production_pred, labels)
    production_metrics.update(_calibration(production_probabilities, truth_index, n))
    by_corrections = len(picked) >= config.min_correction_eval and bool(rest)
    judged = picked if by_corrections else list(range(n))
    where = f"on the {len(picked)} corrections" if by_corrections else "on the eval set"
    index = {label: i for i, label in enumerate(labels)}
    truth = np.array([index[y_true[i]] for i in judged], dtype=int)
    cand = np.array([index[candidate_pred[i]] for i in judged], dtype=int)
    prod = np.array([index[production_pred[i]] for i in judged], dtype=int)
    cand_f1 = classification_metrics(
        _subset(y_true, judged), _subset(candidate_pred, judged), labels
    )["macro_f1"]
    prod_f1 = classification_metrics(
        _subset(y_true, judged), _subset(production_pred, judged), labels
    )["macro_f1"]
    delta = cand_f1 - prod_f1
    checks.append(
        Check(
            "min_delta",
            delta >= config.min_delta,
            delta,
            config.min_delta,
            f"macro-F1 {where} {cand_f1:.4f} vs production {prod_f1:.4f} "
            f"(delta {delta:+.4f}, need +{config.min_delta})",
        )
    )
    probability, low, high = (
        paired_bootstrap(
            truth,
            cand,
            prod,
            len(labels),
            resamples=config.bootstrap_resamples,
            seed=config.seed,
        )
        if judged
        else (0.0, 0.0, 0.0)
    )
    checks.append(
        Check(
            "confidence",
            probability >= config.confidence,
            probability,
            config.confidence,
            f"P(delta > 0) {where} = {probability:.3f} over {config.bootstrap_resamples} "
            f"paired resamples (90% interval {low:+.4f}..{high:+.4f}; need {config.confidence})",
        )
    )
    rest_info = None
    if by_corrections:
        p_value, chance = permutation_test(
            truth, cand, len(labels), permutations=config.bootstrap_resamples, seed=config.seed
        )
        assert corrections is not None
        corrections.update({"permutation_p": p_value, "chance_macro_f1_p95": chance})
        checks.append(
            Check(
                "learned_corrections",
                p_value <= config.chance_level,
                p_value,
                config.chance_level,
                f"agreement with the corrections beats chance: macro-F1 {cand_f1:.4f} vs "
                f"{chance:.4f} at the 95th percentile of {config.bootstrap_resamples} label "
                f"permutations (p = {p_value:.3f}; need <= {config.chance_level})",
            )
        )
        rest_candidate = classification_metrics(
            _subset(y_true, rest), _subset(candidate_pred, rest), labels
        )
        rest_production = classification_metrics(
            _subset(y_true, rest), _subset(production_pred, rest), labels
        )
        regression = rest_production["macro_f1"] - rest_candidate["macro_f1"]
        rest_info = {
            "n": len(rest),
            "candidate_macro_f1": rest_candidate["macro_f1"],
            "production_macro_f1": rest_production["macro_f1"],
        }
        checks.append(
            Check(
                "max_regression",
                regression <= config.max_regression,
                regression,
                config.max_regression,
                f"macro-F1 on the other {len(rest)} eval examples "
                f"{rest_candidate['macro_f1']:.4f} vs production "
                f"{rest_production['macro_f1']:.4f} (drop {regression:+.4f}; allowed "
                f"{config.max_regression})",
            )
        )
        guard_candidate, guard_production = rest_candidate, rest_production
        guarded = f"on the other {len(rest)} eval examples"
    else:
        guard_candidate, guard_production = candidate_metrics, production_metrics
        guarded = "on the eval set"
    drops = {
        label: guard_production["per_class"][label]["f1"]
        - guard_candidate["per_class"][label]["f1"]
        for label in labels
    }
    worst = max(drops, key=lambda label: drops[label])
    checks.append(
        Check(
            "max_class_drop",
            drops[worst] <= config.max_class_drop,
            drops[worst],
            config.max_class_drop,
            f"largest per-class F1 drop {guarded} {drops[worst]:+.4f} ({worst}; allowed "
            f"{config.max_class_drop})",
        )
    )
    if "ece" in candidate_metrics and "ece" in production_metrics:
        increase = candidate_metrics["ece"] - production_metrics["ece"]
        worse = paired_ece_bootstrap(
            np.asarray(candidate_probabilities, dtype=np.float64),
            np.asarray(production_probabilities, dtype=np.float64),
            truth_index,
            resamples=config.bootstrap_resamples,
            seed=config.seed,
        )
        beyond = increase > config.max_ece_increase + 1e-12
        checks.append(
            Check(
                "max_ece_increase",
                not (beyond and worse >= config.confidence),
                increase,
                config.max_ece_increase,
                f"calibration error (ECE, {n} eval examples) {candidate_metrics['ece']:.4f} vs "
                f"production {production_metrics['ece']:.4f} (increase {increase:+.4f}, "
                f"P(worse) {worse:.3f}; rejected only beyond {config.max_ece_increase} with "
                f"P >= {config.confidence})",
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
        class_f1_drops=drops,
        corrections=corrections,
        scope="corrections" if by_corrections else "all",
        rest=rest_info,
    )


def weighted_ece(
    weights: np.ndarray, probabilities: np.ndarray, truth: np.ndarray, bins: int = 15
) -> np.ndarray:
    """ECE (equal-width bins of the top-class probability) under many weightings at once.

    Per bin, ``|sum_i w_i (correct_i - confidence_i)|``; summed over bins and divided by the
    total weight: :func:`trainer.calibration.expected_calibration_error` with weights.

    Args:
        weights: [resamples, n] how often each example is drawn.
        probabilities: [n, k].
        truth: [n] class indices.

    Returns:
        [resamples] ECE values.
    """
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == truth).astype(np.float64)
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    gaps = np.zeros((len(truth), bins))
    gaps[np.arange(len(truth)), index] = correct - confidence
    return np.asarray(np.abs(weights @ gaps).sum(axis=1) / weights.sum(axis=1))


def paired_ece_bootstrap(
    candidate: np.ndarray,
    production: np.ndarray,
    truth: np.ndarray,
    *,
    resamples: int,
    seed: int,
    chunk: int = 250,
) -> float:
    """P(the candidate's ECE > production's) over paired resamples of the eval examples."""
    rng = np.random.default_rng(seed + 1)  # not the F1 bootstrap's draws
    n = len(truth)
    worse = 0
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        draws = rng.integers(0, n, size=(size, n))
        weights = np.zeros((size, n))
        np.add.at(weights, (np.arange(size)[:, None], draws), 1.0)
        difference = weighted_ece(weights, candidate, truth) - weighted_ece(
            weights, production, truth
        )
        worse += int((difference > 1e-12).sum())
    return worse / resamples


def _calibration(probabilities: Any, truth: np.ndarray, n: int) -> dict[str, float]:
    """ECE and Brier score of [n, labels] probabilities (empty when they are not known)."""
    if probabilities is None:
        return {}
    values = np.asarray(probabilities, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] != n or n == 0:
        raise ValueError(f"probabilities of shape {values.shape} for {n} eval examples")
    return {
        "ece": expected_calibration_error(values, truth),
        "brier": brier_score(values, truth),
    }


def _reason(promote: bool, checks: list[Check], *, first: bool) -> str:
    if promote:
        detail = "; ".join(check.detail for check in checks if check.name != "min_eval")
        return ("first model: " if first else "better: ") + detail
    failed = [check.detail for check in checks if not check.passed]
    return "rejected: " + "; ".join(failed)


@dataclass(frozen=True)
class BootstrapGate:
    """Today's gate: the rules in this module's docstring, with :class:`GateConfig`'s levels."""

    config: GateConfig = GateConfig()

    def decide(
        self,
        y_true: Sequence[str],
        candidate_pred: Sequence[str],
        production_pred: Sequence[str] | None,
        labels: Sequence[str],
        *,
        corrections_mask: Sequence[bool] | None = None,
        candidate_probabilities: Any = None,
        production_probabilities: Any = None,
    ) -> GateDecision:
        return decide(
            y_true,
            candidate_pred,
            production_pred,
            labels,
            self.config,
            corrections_mask=corrections_mask,
            candidate_probabilities=candidate_probabilities,
            production_probabilities=production_probabilities,
        )

    def first_model(self, metrics: Mapping[str, Any]) -> Check:
        return first_model_check(metrics)


def probability_arguments(gate: Any, candidate: Any, production: Any) -> dict[str, Any]:
    """Both models' probabilities for a gate whose ``decide`` takes them.

    A gate written before calibration (``decide`` without ``candidate_probabilities``) still
    works: it gets predictions alone, as before.
    """
    try:
        parameters = inspect.signature(gate.decide).parameters
    except (TypeError, ValueError):
        return {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    if not takes_any and "candidate_probabilities" not in parameters:
        return {}
    return {"candidate_probabilities": candidate, "production_probabilities": production}


def load_gate(implementation: str, config: GateConfig) -> Gate:
    """Build the gate a setting names (``module:Class``, constructed with the config).

    Raises:
        ValueError: The name does not resolve to a class that makes a :class:`Gate`.
    """
    module_name, _, class_name = implementation.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"cannot load the gate {implementation!r}: {exc}") from exc
    gate = cls(config)
    if not isinstance(gate, Gate):
        raise ValueError(f"{implementation} has no decide() and first_model(): not a gate")
    return gate
