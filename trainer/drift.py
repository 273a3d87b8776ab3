"""Drift statistics in pure NumPy: is a recent sample unlike the reference, and how well does
the model do on it without labels?

Two two-sample tests share one set of permutations of the pooled sample:

- **MMD on embeddings.** The squared maximum mean discrepancy (the biased V-statistic
  ``s^T K s`` with ``s`` = +1/n on reference rows and -1/m on recent rows) under a Gaussian
  (RBF) kernel whose bandwidth is the median squared distance between pooled points (the
  median heuristic). It sees any change in the distribution of the model's pooled
  representation: new topics, new vocabulary, new style.
- **Chi-square on predicted labels.** The 2 x k table of predicted-label counts (reference vs
  recent). It sees a change in what the model says (a new mix of spam, a sour mood) even
  when the text representation shifts little.

Each p-value is a permutation p-value, ``(1 + #{permuted >= observed}) / (permutations + 1)``,
which is valid (never anti-conservative) for any statistic and sample size. The two are
combined with **Bonferroni** (``min(1, 2 * min(p_mmd, p_labels))``): it needs no assumption
about how the two tests depend on each other (they do: both come from the same texts), so a
combined p below alpha happens at most alpha of the time when nothing changed.

The label-free **expected macro-F1** is confidence-based performance estimation: with
calibrated probabilities ``p_ic`` and predicted labels ``yhat_i``, the expected counts per
class are ``TP_c = sum_{yhat_i = c} p_ic``, ``FP_c = sum_{yhat_i = c} (1 - p_ic)`` and
``FN_c = sum_{yhat_i != c} p_ic``, and ``F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c)``. It is only
as good as the calibration, which itself may not survive a large drift; and even where the
top-class probability is calibrated, the others need not be, so the estimate is biased. The
reference is labelled, so that bias is measured there and taken off (the "difference of
confidences" correction of Guillory et al., 2021): ``expected = CBPE(recent) - (CBPE(reference)
- macro-F1(reference))``, clipped to [0, 1]. It assumes the estimator errs by about as much on
the recent messages as on the reference; a shift that bends the calibration further (a topic
the model never saw) still leaves it optimistic, by less.

The **most drifted** recent points are those where the MMD witness function is highest:
``w(z) = mean_j k(z, recent_j) - mean_i k(z, reference_i)`` (leaving the point itself out of
the recent mean): where recent data is denser than the reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Rows of permuted group signs scored per matrix product (bounds memory at about
# _CHUNK x N floats, whatever the number of permutations).
_CHUNK = 256
_MEDIAN_POINTS = 1000


@dataclass(frozen=True)
class PermutationTest:
    """A two-sample permutation test's outcome."""

    statistic: float
    p_value: float
    permutations: int


@dataclass(frozen=True)
class DriftStatistics:
    """What :func:`compare` found.

    Attributes:
        mmd: The MMD^2 test on embeddings.
        labels: The chi-square test on predicted labels.
        p_value: The two combined (Bonferroni).
        bandwidth: The RBF kernel's squared length scale (median heuristic).
        witness: Per recent point, the MMD witness function (higher: more drifted).
        expected_macro_f1: Expected macro-F1 of the model on the recent sample (corrected
            by the estimator's error on the reference when its labels are given).
        expected_f1: Per class, the uncorrected estimate.
        expected_macro_f1_raw: The uncorrected confidence-based estimate.
        reference_macro_f1: The model's true macro-F1 on the reference (None: no labels).
        reference_expected_macro_f1: The uncorrected estimate on the reference.
        reference_labels: Share of each predicted label in the reference sample.
        recent_labels: Share of each predicted label in the recent sample.
    """

    mmd: PermutationTest
    labels: PermutationTest
    p_value: float
    bandwidth: float
    witness: np.ndarray
    expected_macro_f1: float
    expected_f1: tuple[float, ...]
    reference_labels: tuple[float, ...]
    recent_labels: tuple[float, ...]
    expected_macro_f1_raw: float = 0.0
    reference_macro_f1: float | None = None
    reference_expected_macro_f1: float | None = None

    def drifted(self, alpha: float) -> bool:
        return self.p_value < alpha

    def most_drifted(self, count: int) -> list[int]:
        """Indices of the ``count`` recent points with the highest witness, highest first."""
        order = np.argsort(-self.witness, kind="stable")
        return [int(i) for i in order[:count]]


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise squared Euclidean distances [len(a), len(b)], clipped at 0."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


def median_bandwidth(points: np.ndarray, rng: np.random.Generator) -> float:
    """The median squared distance between distinct points (of a sample of at most 1,000).

    Falls back to 1.0 when every point is the same (the kernel is then constant anyway).
    """
    if len(points) > _MEDIAN_POINTS:
        points = points[rng.choice(len(points), _MEDIAN_POINTS, replace=False)]
    d = squared_distances(points, points)
    upper = d[np.triu_indices(len(points), k=1)]
    upper = upper[upper > 0]
    return float(np.median(upper)) if upper.size else 1.0


def _permutation_p(observed: float, permuted: np.ndarray) -> float:
    # A tolerance for ties computed in another order (the identity permutation's value).
    tolerance = 1e-12 * max(1.0, abs(observed))
    exceed = int(np.count_nonzero(permuted >= observed - tolerance))
    return (exceed + 1) / (len(permuted) + 1)


def _group_permutations(n: int, m: int, permutations: int, rng: np.random.Generator) -> np.ndarray:
    """[permutations, n + m] booleans: True where a permuted row is in the reference group."""
    base = np.zeros(n + m, dtype=bool)
    base[:n] = True
    return rng.permuted(np.tile(base, (permutations, 1)), axis=1)


def mmd_test(kernel: np.ndarray, n: int, groups: np.ndarray) -> tuple[PermutationTest, np.ndarray]:
    """MMD^2 (biased V-statistic) of a pooled kernel matrix, with its permutation p-value.

    Args:
        kernel: [n + m, n + m] kernel of the pooled sample, reference rows first.
        n: Reference rows.
        groups: Permuted reference-group masks (from :func:`_group_permutations`).

    Returns:
        The test and the witness function at each recent point.
    """
    total = kernel.shape[0]
    m = total - n

    def signs(mask: np.ndarray) -> np.ndarray:
        return np.where(mask, 1.0 / n, -1.0 / m)

    observed_signs = signs(np.arange(total) < n)
    observed = float(observed_signs @ kernel @ observed_signs)
    permuted = np.empty(len(groups))
    for start in range(0, len(groups), _CHUNK):
        s = signs(groups[start : start + _CHUNK])
        permuted[start : start + len(s)] = np.einsum("pi,pi->p", s @ kernel, s)
    recent_block = kernel[n:, n:]
    recent_mean = (recent_block.sum(1) - np.diag(recent_block)) / max(1, m - 1)
    reference_mean = kernel[n:, :n].mean(1)
    witness = recent_mean - reference_mean
    return PermutationTest(observed, _permutation_p(observed, permuted), len(groups)), witness


def chi_square_test(
    labels: np.ndarray, n: int, classes: int, groups: np.ndarray
) -> PermutationTest:
    """Chi-square statistic of the 2 x ``classes`` table of label counts, with its
    permutation p-value (labels of the pooled sample, reference rows first)."""
    onehot = np.eye(classes)[labels]
    totals = onehot.sum(0)
    present = totals > 0
    onehot, totals = onehot[:, present], totals[present]
    total = len(labels)
    m = total - n
    expected_ref, expected_rec = n * totals / total, m * totals / total

    def statistic(reference_counts: np.ndarray) -> np.ndarray:
        recent_counts = totals - reference_counts
        return ((reference_counts - expected_ref) ** 2 / expected_ref).sum(-1) + (
            (recent_counts - expected_rec) ** 2 / expected_rec
        ).sum(-1)

    if onehot.shape[1] < 2:  # one label everywhere: nothing can differ
        return PermutationTest(0.0, 1.0, len(groups))
    observed = float(statistic(onehot[:n].sum(0)))
    permuted = statistic(groups.astype(np.float64) @ onehot)
    return PermutationTest(observed, _permutation_p(observed, permuted), len(groups))


def bonferroni(*p_values: float) -> float:
    """The family's p-value: ``min(1, k * min(p))`` for ``k`` tests (valid under any
    dependence between them)."""
    return min(1.0, len(p_values) * min(p_values))


def expected_f1(probabilities: np.ndarray) -> tuple[float, tuple[float, ...]]:
    """Expected macro-F1 (and per-class F1) of argmax predictions from calibrated
    probabilities [n, classes]: see the module docstring. A class with no expected
    positives and no predictions scores 0, as an absent class does in macro-F1."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or len(p) == 0:
        raise ValueError("expected_f1 needs probabilities of shape [n > 0, classes]")
    predicted = p.argmax(1)
    scores = []
    for c in range(p.shape[1]):
        chosen = predicted == c
        tp = p[chosen, c].sum()
        fp = (1.0 - p[chosen, c]).sum()
        fn = p[~chosen, c].sum()
        denominator = 2 * tp + fp + fn
        scores.append(float(2 * tp / denominator) if denominator > 0 else 0.0)
    return float(np.mean(scores)), tuple(scores)


def compare(
    reference_embeddings: np.ndarray,
    recent_embeddings: np.ndarray,
    reference_probabilities: np.ndarray,
    recent_probabilities: np.ndarray,
    *,
    reference_truth: Sequence[int] | np.ndarray | None = None,
    permutations: int = 1000,
    seed: int = 0,
) -> DriftStatistics:
    """Test whether the recent sample differs from the reference, and estimate the model's
    macro-F1 on it.

    Args:
        reference_embeddings: [n, d] pooled embeddings of the reference texts.
        recent_embeddings: [m, d] the same for the recent texts.
        reference_probabilities: [n, classes] calibrated probabilities (argmax = label).
        recent_probabilities: [m, classes] the same for the recent texts.
        reference_truth: [n] the reference texts' true class indices: the expected macro-F1
            is then corrected by the estimator's error on the reference.
        permutations: Permutations shared by both tests.
        seed: Seeds the permutations and the bandwidth's subsample (same seed, same answer).

    Raises:
        ValueError: Empty samples or mismatched shapes.
    """
    x = np.asarray(reference_embeddings, dtype=np.float64)
    y = np.asarray(recent_embeddings, dtype=np.float64)
    px = np.asarray(reference_probabilities, dtype=np.float64)
    py = np.asarray(recent_probabilities, dtype=np.float64)
    if len(x) < 2 or len(y) < 2:
        raise ValueError("each sample needs at least two points")
    if x.shape[1] != y.shape[1] or px.shape[1] != py.shape[1]:
        raise ValueError("the two samples have different widths")
    if len(px) != len(x) or len(py) != len(y):
        raise ValueError("one probability row per embedding row is needed")
    if permutations < 1:
        raise ValueError("permutations must be at least 1")
    rng = np.random.default_rng(seed)
    pooled = np.vstack([x, y])
    bandwidth = median_bandwidth(pooled, rng)
    kernel = np.exp(-squared_distances(pooled, pooled) / bandwidth)
    n, classes = len(x), px.shape[1]
    groups = _group_permutations(n, len(y), permutations, rng)
    mmd, witness = mmd_test(kernel, n, groups)
    labels = np.concatenate([px.argmax(1), py.argmax(1)])
    label_test = chi_square_test(labels, n, classes, groups)
    raw, per_class = expected_f1(py)
    macro, reference_true, reference_expected = raw, None, None
    if reference_truth is not None:
        truth = np.asarray(reference_truth, dtype=np.int64)
        if truth.shape != (n,):
            raise ValueError("one reference label per reference row is needed")
        reference_true = macro_f1(truth, px.argmax(1), classes)
        reference_expected = expected_f1(px)[0]
        macro = float(np.clip(raw - (reference_expected - reference_true), 0.0, 1.0))
    return DriftStatistics(
        mmd=mmd,
        labels=label_test,
        p_value=bonferroni(mmd.p_value, label_test.p_value),
        bandwidth=bandwidth,
        witness=witness,
        expected_macro_f1=macro,
        expected_f1=per_class,
        reference_labels=_shares(labels[:n], classes),
        recent_labels=_shares(labels[n:], classes),
        expected_macro_f1_raw=raw,
        reference_macro_f1=reference_true,
        reference_expected_macro_f1=reference_expected,
    )


def macro_f1(truth: np.ndarray, predicted: np.ndarray, classes: int) -> float:
    """Macro-F1 over ``classes`` classes (a class absent from both scores 0, as in
    :func:`expected_f1`)."""
    scores = []
    for c in range(classes):
        tp = float(np.sum((predicted == c) & (truth == c)))
        denominator = float(np.sum(predicted == c) + np.sum(truth == c))
        scores.append(2 * tp / denominator if denominator > 0 else 0.0)
    return float(np.mean(scores))


def _shares(labels: Sequence[int] | np.ndarray, classes: int) -> tuple[float, ...]:
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=classes)
    return tuple(float(c) / max(1, len(labels)) for c in counts)
