"""Drift statistics (trainer.drift) on synthetic samples: power, calibration, estimates."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from trainer.drift import bonferroni, compare, expected_f1, median_bandwidth, squared_distances


def gaussian(n: int, dim: int, shift: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(n, dim))
    points[:, 0] += shift
    return points


def probabilities_for(points: np.ndarray) -> np.ndarray:
    """A fixed 3-class softmax 'model' reading the first two coordinates."""
    logits = np.stack([points[:, 0], points[:, 1], -points[:, 0] - points[:, 1]], axis=1)
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_a_shifted_sample_drifts_and_an_unshifted_one_does_not() -> None:
    reference = gaussian(200, 16, 0.0, seed=1)
    shifted = gaussian(200, 16, 1.0, seed=2)
    same = gaussian(200, 16, 0.0, seed=3)
    drift = compare(
        reference, shifted, probabilities_for(reference), probabilities_for(shifted), seed=0
    )
    calm = compare(reference, same, probabilities_for(reference), probabilities_for(same), seed=0)
    assert drift.mmd.p_value == pytest.approx(1 / 1001)  # nothing permuted came close
    assert drift.drifted(0.01) and drift.p_value == pytest.approx(2 / 1001)
    assert not calm.drifted(0.01) and calm.p_value > 0.05
    assert drift.mmd.statistic > 3 * calm.mmd.statistic
    # the same seed gives the same answer
    again = compare(reference, same, probabilities_for(reference), probabilities_for(same), seed=0)
    assert again.p_value == calm.p_value and again.mmd.statistic == calm.mmd.statistic


def test_the_label_test_sees_a_shift_the_model_reads_even_when_embeddings_hardly_move() -> None:
    rng = np.random.default_rng(0)
    reference = gaussian(300, 64, 0.0, seed=14)
    recent = gaussian(300, 64, 0.0, seed=15)
    # same texts' distribution, but the model's answers moved to class 0
    p_reference = np.tile([0.2, 0.5, 0.3], (300, 1)) + rng.normal(0, 0.01, (300, 3))
    p_recent = np.tile([0.5, 0.3, 0.2], (300, 1)) + rng.normal(0, 0.01, (300, 3))
    found = compare(reference, recent, p_reference, p_recent, permutations=500, seed=1)
    assert found.mmd.p_value > 0.05
    assert found.labels.p_value == pytest.approx(1 / 501)
    assert found.drifted(0.01)
    assert found.reference_labels[1] == 1.0 and found.recent_labels[0] == 1.0


def test_witness_ranks_the_points_that_moved_first() -> None:
    reference = gaussian(150, 8, 0.0, seed=6)
    recent = gaussian(150, 8, 0.0, seed=7)
    # ten points from somewhere new, close together (a new topic)
    recent[:10] = 2.0 + 0.3 * np.random.default_rng(8).normal(size=(10, 8))
    found = compare(
        reference, recent, probabilities_for(reference), probabilities_for(recent), seed=0
    )
    top = found.most_drifted(10)
    assert set(top[:4]) <= set(range(10))
    assert len(set(top) & set(range(10))) >= 9
    assert np.median(found.witness[:10]) > np.percentile(found.witness[10:], 95)


def test_false_positive_rate_is_near_alpha_over_many_nulls() -> None:
    alpha, trials = 0.05, 400
    mmd_rejections = combined_rejections = 0
    for trial in range(trials):
        x = gaussian(30, 4, 0.0, seed=10_000 + 2 * trial)
        y = gaussian(30, 4, 0.0, seed=10_001 + 2 * trial)
        found = compare(
            x, y, probabilities_for(x), probabilities_for(y), permutations=199, seed=trial
        )
        mmd_rejections += found.mmd.p_value < alpha
        combined_rejections += found.drifted(alpha)
    # Binomial(400, 0.05): mean 20, sd 4.4. A valid test rejects at most about alpha of
    # the time; a broken one (e.g. p = k / n, or a biased null) lands far outside.
    assert 8 <= mmd_rejections <= 33
    assert combined_rejections <= 33  # Bonferroni: conservative, never above alpha


def test_expected_macro_f1_matches_the_realised_one_when_calibrated() -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(0.0, 1.6, size=(20_000, 3))
    logits[:, 0] += 0.5  # unbalanced classes
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    truth = np.array([rng.choice(3, p=row) for row in p])  # calibrated by construction
    estimate, per_class = expected_f1(p)
    realised = f1_score(truth, p.argmax(1), average="macro")
    assert estimate == pytest.approx(realised, abs=0.01)
    realised_per_class = f1_score(truth, p.argmax(1), average=None)
    assert np.allclose(per_class, realised_per_class, atol=0.02)
    # an overconfident model (sharpened probabilities) overestimates: the estimate is only
    # as good as the calibration
    sharp = np.exp(3 * logits) / np.exp(3 * logits).sum(1, keepdims=True)
    assert expected_f1(sharp)[0] > realised + 0.1


def test_expected_f1_by_hand() -> None:
    p = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    # class 0: TP .9+.6, FP .1+.4, FN .2 -> 3.0/(3.0+.5+.2); class 1: TP .8, FP .2, FN .5
    macro, per_class = expected_f1(p)
    assert per_class == pytest.approx((3.0 / 3.7, 1.6 / 2.3))
    assert macro == pytest.approx((3.0 / 3.7 + 1.6 / 2.3) / 2)
    with pytest.raises(ValueError, match="shape"):
        expected_f1(np.zeros((0, 2)))


def test_helpers() -> None:
    a = np.array([[0.0, 0.0], [3.0, 4.0]])
    assert squared_distances(a, a).tolist() == [[0.0, 25.0], [25.0, 0.0]]
    assert median_bandwidth(a, np.random.default_rng(0)) == 25.0
    assert median_bandwidth(np.zeros((5, 2)), np.random.default_rng(0)) == 1.0
    assert bonferroni(0.004, 0.5) == 0.008 and bonferroni(0.6, 0.9) == 1.0
    with pytest.raises(ValueError, match="two points"):
        compare(a[:1], a, np.ones((1, 2)) / 2, np.ones((2, 2)) / 2)


def test_the_reference_labels_correct_an_over_confident_estimate() -> None:
    """An over-confident model overestimates its macro-F1 everywhere; measured on the labelled
    reference, that error is taken off the recent sample's estimate."""
    rng = np.random.default_rng(5)

    def sample(n: int, shift: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        logits = rng.normal(0.0, 1.4, size=(n, 3))
        logits[:, 0] += shift
        truth_p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        truth = np.array([rng.choice(3, p=row) for row in truth_p])
        served = np.exp(1.6 * logits) / np.exp(1.6 * logits).sum(1, keepdims=True)
        embeddings = np.c_[logits, rng.normal(size=(n, 2))]
        return embeddings, served, truth

    ref_x, ref_p, ref_y = sample(3000, 0.0)
    new_x, new_p, new_y = sample(3000, 0.4)  # a moderate shift of the class mix
    realised = f1_score(new_y, new_p.argmax(1), average="macro")
    stats = compare(ref_x, new_x, ref_p, new_p, reference_truth=ref_y, permutations=20, seed=0)
    assert stats.expected_macro_f1_raw > realised + 0.05  # over-confident: optimistic
    assert abs(stats.expected_macro_f1 - realised) < 0.02  # corrected on the reference
    assert stats.reference_macro_f1 == pytest.approx(
        f1_score(ref_y, ref_p.argmax(1), average="macro")
    )
    assert stats.reference_expected_macro_f1 == pytest.approx(expected_f1(ref_p)[0])
    without = compare(ref_x, new_x, ref_p, new_p, permutations=20, seed=0)
    assert without.expected_macro_f1 == without.expected_macro_f1_raw
    assert without.reference_macro_f1 is None
    with pytest.raises(ValueError, match="one reference label per reference row"):
        compare(ref_x, new_x, ref_p, new_p, reference_truth=ref_y[:10], permutations=20)
