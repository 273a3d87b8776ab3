"""Every gate rule on both sides of its threshold, and the seeded paired bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from trainer.calibration import expected_calibration_error
from trainer.gate import (
    GateConfig,
    GateDecision,
    decide,
    macro_f1_from_weights,
    paired_bootstrap,
    permutation_test,
    weighted_ece,
)

LABELS = ["neg", "neu", "pos"]


def _data(n: int = 600, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [LABELS[i] for i in rng.integers(0, 3, size=n)]


def _predict(
    truth: list[str], accuracy: float, seed: int, wrong_as: str | None = None
) -> list[str]:
    """Predictions right with the given probability; errors go to another label."""
    rng = np.random.default_rng(seed)
    out = []
    for label in truth:
        if rng.random() < accuracy:
            out.append(label)
        else:
            out.append(wrong_as or LABELS[(LABELS.index(label) + 1) % 3])
    return out


def test_macro_f1_from_weights_matches_sklearn() -> None:
    rng = np.random.default_rng(1)
    y_true, y_pred = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    weights = np.stack([np.ones(200), rng.integers(0, 3, 200).astype(float)])
    ours = macro_f1_from_weights(weights, y_true, y_pred, 3)
    assert ours[0] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    expanded_true = np.repeat(y_true, weights[1].astype(int))
    expanded_pred = np.repeat(y_pred, weights[1].astype(int))
    assert ours[1] == pytest.approx(
        f1_score(expanded_true, expanded_pred, average="macro", labels=[0, 1, 2], zero_division=0)
    )


def test_bootstrap_is_seeded_and_reproducible() -> None:
    truth = np.array([LABELS.index(y) for y in _data()])
    better = np.array([LABELS.index(y) for y in _predict(list(np.array(LABELS)[truth]), 0.8, 1)])
    worse = np.array([LABELS.index(y) for y in _predict(list(np.array(LABELS)[truth]), 0.7, 2)])
    first = paired_bootstrap(truth, better, worse, 3, resamples=1000, seed=7)
    assert first == paired_bootstrap(truth, better, worse, 3, resamples=1000, seed=7)
    assert first != paired_bootstrap(truth, better, worse, 3, resamples=1000, seed=8)
    assert first[0] > 0.99  # clearly better
    reverse = paired_bootstrap(truth, worse, better, 3, resamples=1000, seed=7)
    assert reverse[0] < 0.01


def test_a_clearly_better_candidate_is_promoted() -> None:
    truth = _data()
    decision = decide(
        truth, _predict(truth, 0.85, 1), _predict(truth, 0.70, 2), LABELS, GateConfig()
    )
    assert decision.promote, decision.reason
    assert decision.delta_macro_f1 > 0.1 and decision.p_improvement > 0.99
    assert {c.name for c in decision.checks} == {
        "min_eval",
        "min_delta",
        "confidence",
        "max_class_drop",
    }


@pytest.mark.parametrize(("min_delta", "promoted"), [(0.0, True), (0.5, False)])
def test_min_delta_boundary(min_delta: float, promoted: bool) -> None:
    truth = _data()
    candidate, production = _predict(truth, 0.85, 1), _predict(truth, 0.75, 2)
    decision = decide(truth, candidate, production, LABELS, GateConfig(min_delta=min_delta))
    assert decision.promote is promoted
    # Exactly at the threshold passes.
    exact = GateConfig(min_delta=round(decision.delta_macro_f1, 12) - 1e-12)
    assert next(
        c
        for c in decide(truth, candidate, production, LABELS, exact).checks
        if c.name == "min_delta"
    ).passed


def test_confidence_boundary() -> None:
    truth = _data(400)
    production = _predict(truth, 0.80, 3)
    # The candidate fixes 6 of production's errors and makes 3 new ones: a small gain.
    wrong = [i for i, (t, p) in enumerate(zip(truth, production, strict=True)) if t != p]
    right = [i for i, (t, p) in enumerate(zip(truth, production, strict=True)) if t == p]
    candidate = list(production)
    for i in wrong[:6]:
        candidate[i] = truth[i]
    for i in right[:3]:
        candidate[i] = LABELS[(LABELS.index(truth[i]) + 1) % 3]
    probe = decide(truth, candidate, production, LABELS, GateConfig(min_delta=0.0))
    p = probe.p_improvement
    assert p is not None and 0.05 < p < 0.999, p  # a small, uncertain gain
    below = decide(
        truth,
        candidate,
        production,
        LABELS,
        GateConfig(min_delta=0.0, confidence=min(p + 0.001, 0.999)),
    )
    above = decide(
        truth,
        candidate,
        production,
        LABELS,
        GateConfig(min_delta=0.0, confidence=max(p - 0.001, 0.001)),
    )
    assert not below.promote and "P(delta > 0)" in below.reason
    assert above.promote == (
        probe.class_f1_drops[max(probe.class_f1_drops, key=probe.class_f1_drops.get)] <= 0.05
    )


def test_max_class_drop_boundary() -> None:
    truth = _data()
    production = _predict(truth, 0.8, 5)
    # The candidate is better overall but gives up "pos" on half of its examples.
    candidate = [y if y != "pos" else ("neg" if i % 2 == 0 else y) for i, y in enumerate(truth)]
    decision = decide(truth, candidate, production, LABELS, GateConfig(min_delta=0.0))
    assert decision.delta_macro_f1 > 0
    drop = decision.class_f1_drops["pos"]
    assert drop > 0.05
    strict = decide(
        truth, candidate, production, LABELS, GateConfig(min_delta=0.0, max_class_drop=drop - 1e-9)
    )
    lenient = decide(
        truth, candidate, production, LABELS, GateConfig(min_delta=0.0, max_class_drop=drop + 1e-9)
    )
    assert not strict.promote and "per-class F1 drop" in strict.reason
    assert next(c for c in lenient.checks if c.name == "max_class_drop").passed


def test_a_shifted_boundary_between_two_classes_is_not_a_lost_class() -> None:
    """Trading a class's recall for its precision is not the collapse the guard is for.

    Production calls a fifth of the neutral texts negative; the candidate calls 8% of the
    negative ones neutral and only 5% of the neutral ones negative. Negative recall falls
    by 0.08 (more than max_class_drop), but negative precision rises and so does its F1.
    """
    truth = _data(3000)
    rng = np.random.default_rng(11)
    draws = rng.random(len(truth))
    production = [
        "neg" if (y == "neu" and r < 0.20) else y for y, r in zip(truth, draws, strict=True)
    ]
    candidate = [
        "neu" if (y == "neg" and r < 0.08) else "neg" if (y == "neu" and r < 0.05) else y
        for y, r in zip(truth, draws, strict=True)
    ]
    decision = decide(truth, candidate, production, LABELS, GateConfig())
    assert decision.production is not None
    recall_drop = (
        decision.production["per_class"]["neg"]["recall"]
        - decision.candidate["per_class"]["neg"]["recall"]
    )
    assert recall_drop > 0.05
    assert decision.class_f1_drops["neg"] < 0
    assert decision.promote, decision.reason


@pytest.mark.parametrize(("size", "promoted"), [(199, False), (200, True)])
def test_min_eval_boundary(size: int, promoted: bool) -> None:
    truth = _data(size)
    decision = decide(truth, truth, _predict(truth, 0.6, 6), LABELS, GateConfig(min_eval=200))
    assert decision.promote is promoted
    if not promoted:
        assert "199 eval examples" in decision.reason


def test_first_model_must_beat_the_majority_baseline() -> None:
    truth = ["neg"] * 300 + ["pos"] * 100 + ["neu"] * 100
    assert not decide(truth, ["neg"] * 500, None, LABELS, GateConfig()).promote
    good = decide(truth, _predict(truth, 0.7, 7), None, LABELS, GateConfig())
    assert good.promote and good.reason.startswith("first model")


def test_corrections_are_reported_separately() -> None:
    truth = _data()
    mask = [i % 5 == 0 for i in range(len(truth))]
    decision = decide(
        truth,
        _predict(truth, 0.9, 8),
        _predict(truth, 0.7, 9),
        LABELS,
        GateConfig(),
        corrections_mask=mask,
    )
    assert decision.corrections is not None and decision.corrections["n"] == sum(mask)
    assert decision.corrections["candidate_macro_f1"] > decision.corrections["production_macro_f1"]
    assert decision.to_json()["checks"][0]["name"] == "min_eval"


def _with_corrections(
    corr_accuracy_candidate: float,
    corr_accuracy_production: float = 0.70,
    *,
    n_corrections: int = 60,
    seed_candidate_accuracy: float = 0.80,
) -> tuple[list[str], list[str], list[str], list[bool]]:
    """3,000 seed eval examples (production 0.8 accurate) plus in-domain corrections."""
    seed_truth = _data(3000, seed=11)
    corr_truth = _data(n_corrections, seed=13)
    truth = seed_truth + corr_truth
    production = _predict(seed_truth, 0.8, 12) + _predict(corr_truth, corr_accuracy_production, 14)
    seed_candidate = (
        production[:3000]
        if seed_candidate_accuracy == 0.80
        else _predict(seed_truth, seed_candidate_accuracy, 16)
    )
    candidate = seed_candidate + _predict(corr_truth, corr_accuracy_candidate, 15)
    return truth, candidate, production, [False] * 3000 + [True] * n_corrections


def test_a_gain_on_the_corrections_counts_though_the_seed_eval_is_unchanged() -> None:
    truth, candidate, production, mask = _with_corrections(0.85)
    decision = decide(truth, candidate, production, LABELS, GateConfig(), corrections_mask=mask)
    assert decision.promote, decision.reason
    assert decision.scope == "corrections"
    assert {c.name for c in decision.checks} == {
        "min_eval",
        "min_delta",
        "confidence",
        "learned_corrections",
        "max_regression",
        "max_class_drop",
    }
    assert decision.delta_macro_f1 == pytest.approx(
        decision.corrections["candidate_macro_f1"] - decision.corrections["production_macro_f1"]
    )
    assert decision.rest is not None and decision.rest["n"] == 3000
    # Judged on the whole eval set, 60 of 3,060 examples are too few to be significant.
    overall = decide(truth, candidate, production, LABELS, GateConfig())
    assert not overall.promote and overall.scope == "all"


@pytest.mark.parametrize(("min_correction_eval", "scope"), [(60, "corrections"), (61, "all")])
def test_min_correction_eval_boundary(min_correction_eval: int, scope: str) -> None:
    truth, candidate, production, mask = _with_corrections(0.85)
    config = GateConfig(min_correction_eval=min_correction_eval)
    decision = decide(truth, candidate, production, LABELS, config, corrections_mask=mask)
    assert decision.scope == scope
    assert decision.promote is (scope == "corrections")


def test_the_bootstrap_on_corrections_resamples_only_them() -> None:
    truth, candidate, production, mask = _with_corrections(0.85)
    decision = decide(truth, candidate, production, LABELS, GateConfig(), corrections_mask=mask)
    index = {label: i for i, label in enumerate(LABELS)}
    picked = [i for i, flag in enumerate(mask) if flag]

    def encode(ys: list[str]) -> np.ndarray:
        return np.array([index[ys[i]] for i in picked])

    expected = paired_bootstrap(
        encode(truth), encode(candidate), encode(production), 3, resamples=1000, seed=0
    )
    assert decision.p_improvement == pytest.approx(expected[0])


def test_max_regression_boundary() -> None:
    """A gain on the corrections may not be bought with a loss on the seed eval set."""
    truth, candidate, production, mask = _with_corrections(0.95, seed_candidate_accuracy=0.78)
    probe = decide(
        truth, candidate, production, LABELS, GateConfig(max_class_drop=1.0), corrections_mask=mask
    )
    regression = next(c for c in probe.checks if c.name == "max_regression").value
    assert regression > 0
    strict = GateConfig(max_class_drop=1.0, max_regression=regression - 1e-9)
    lenient = GateConfig(max_class_drop=1.0, max_regression=regression + 1e-9)
    rejected = decide(truth, candidate, production, LABELS, strict, corrections_mask=mask)
    promoted = decide(truth, candidate, production, LABELS, lenient, corrections_mask=mask)
    assert not rejected.promote and "other 3000 eval examples" in rejected.reason
    assert promoted.promote, promoted.reason


def test_class_f1_is_guarded_on_the_seed_part_when_judging_corrections() -> None:
    truth, candidate, production, mask = _with_corrections(0.95)
    # The candidate stops predicting "pos" for a third of the seed examples.
    candidate = [
        ("neg" if (y == "pos" and i % 3 == 0 and not mask[i]) else c)
        for i, (y, c) in enumerate(zip(truth, candidate, strict=True))
    ]
    decision = decide(
        truth,
        candidate,
        production,
        LABELS,
        GateConfig(max_regression=1.0),
        corrections_mask=mask,
    )
    assert not decision.promote
    assert decision.class_f1_drops["pos"] > 0.05
    assert "per-class F1 drop on the other" in decision.reason


def test_corrections_nothing_can_learn_are_rejected() -> None:
    """Shuffled corrections: the candidate learnt the label mix, not the texts.

    Production is worse than chance on them, so the candidate's chance-level agreement is a
    large, 'significant' gain by the bootstrap alone; the permutation test rejects it.
    """
    rng = np.random.default_rng(21)
    seed_truth = _data(3000, seed=11)
    seed_pred = _predict(seed_truth, 0.8, 12)
    corr_truth = [LABELS[i] for i in rng.choice(3, size=80, p=[0.6, 0.2, 0.2])]
    production_corr = ["pos"] * 80  # systematically wrong on the new domain
    candidate_corr = [LABELS[i] for i in rng.choice(3, size=80, p=[0.6, 0.2, 0.2])]
    truth = seed_truth + corr_truth
    mask = [False] * 3000 + [True] * 80
    decision = decide(
        truth,
        seed_pred + candidate_corr,
        seed_pred + production_corr,
        LABELS,
        GateConfig(),
        corrections_mask=mask,
    )
    checks = {c.name: c for c in decision.checks}
    assert checks["min_delta"].passed and checks["confidence"].passed
    assert not checks["learned_corrections"].passed
    assert not decision.promote and "beats chance" in decision.reason


def test_chance_level_boundary() -> None:
    """Corrections the candidate barely agrees with beyond chance (p about 0.05).

    A gate at the permutation test's old level (0.10) promoted such a candidate: the
    learning-loop benchmark once let a model trained on shuffled labels through at p = 0.092.
    The default level (0.01) rejects it; the setting moves the line exactly at the p-value.
    """
    rng = np.random.default_rng(17)
    corr_truth = rng.choice(3, size=64, p=[0.6, 0.2, 0.2])
    candidate_corr = rng.choice(3, size=64, p=[0.6, 0.2, 0.2])
    candidate_corr[:6] = corr_truth[:6]  # 6 of 64 learnt, the rest the label mix
    seed_truth = _data(3000, seed=11)
    seed_pred = _predict(seed_truth, 0.8, 12)

    def gate(config: GateConfig) -> GateDecision:
        return decide(
            seed_truth + [LABELS[i] for i in corr_truth],
            seed_pred + [LABELS[i] for i in candidate_corr],
            seed_pred + ["pos"] * 64,
            LABELS,
            config,
            corrections_mask=[False] * 3000 + [True] * 64,
        )

    default = gate(GateConfig())
    checks = {c.name: c for c in default.checks}
    p_value = checks["learned_corrections"].value
    assert 0.01 < p_value <= 0.10 and default.corrections["permutation_p"] == p_value
    assert [c.name for c in default.checks if not c.passed] == ["learned_corrections"]
    assert not default.promote and "need <= 0.01" in default.reason
    assert gate(GateConfig(chance_level=0.10)).promote
    assert gate(GateConfig(chance_level=p_value)).promote
    assert not gate(GateConfig(chance_level=p_value - 1e-9)).promote
    with pytest.raises(ValueError, match="chance_level"):
        GateConfig(chance_level=0.0)


def test_permutation_test_is_seeded_and_separates_signal_from_chance() -> None:
    truth = np.array([LABELS.index(y) for y in _data(80, seed=3)])
    good = np.array([LABELS.index(y) for y in _predict(list(np.array(LABELS)[truth]), 0.7, 4)])
    first = permutation_test(truth, good, 3, permutations=1000, seed=1)
    assert first == permutation_test(truth, good, 3, permutations=1000, seed=1)
    assert first[0] < 0.01
    # Predictions unrelated to the labels pass at about the test's level, not more: the
    # p-value is uniform under chance, so the default level lets through about 1% of them.
    rng = np.random.default_rng(5)
    p_values = [
        permutation_test(truth, rng.integers(0, 3, 80), 3, permutations=500, seed=i)[0]
        for i in range(300)
    ]
    assert np.mean([p <= 0.10 for p in p_values]) <= 0.15
    assert np.mean([p <= GateConfig().chance_level for p in p_values]) <= 0.03
    assert np.median(p_values) > 0.3


def test_a_mask_of_the_wrong_length_is_an_error() -> None:
    truth = _data(300)
    with pytest.raises(ValueError, match="corrections_mask"):
        decide(truth, truth, truth, LABELS, GateConfig(), corrections_mask=[True])


def _probabilities(predictions: list[str], confidence: float) -> np.ndarray:
    """Every prediction made with the same top-class probability."""
    rest = (1.0 - confidence) / (len(LABELS) - 1)
    out = np.full((len(predictions), len(LABELS)), rest)
    out[np.arange(len(predictions)), [LABELS.index(p) for p in predictions]] = confidence
    return out


@pytest.mark.parametrize(
    ("under_confidence", "passes"),
    [
        (0.015, True),  # within the tolerance
        (0.03, True),  # beyond it, but 600 examples cannot tell it from noise (P ~0.8)
        (0.08, False),  # beyond it, and worse in (nearly) every resample
    ],
)
def test_the_ece_rule_on_both_sides_of_its_threshold(under_confidence: float, passes: bool) -> None:
    truth = _data()
    candidate = _predict(truth, 0.9, seed=1)
    production = _predict(truth, 0.7, seed=2)
    accuracy = {
        name: float(np.mean([a == b for a, b in zip(pred, truth, strict=True)]))
        for name, pred in (("candidate", candidate), ("production", production))
    }
    # Production's confidence equals its accuracy (ECE 0); the candidate says less than it
    # knows by under_confidence, so its ECE is exactly that.
    config = GateConfig(max_ece_increase=0.02)
    decision = decide(
        truth,
        candidate,
        production,
        LABELS,
        config,
        candidate_probabilities=_probabilities(candidate, accuracy["candidate"] - under_confidence),
        production_probabilities=_probabilities(production, accuracy["production"]),
    )
    assert decision.production is not None
    assert decision.production["ece"] == pytest.approx(0.0, abs=1e-9)
    assert decision.candidate["ece"] == pytest.approx(under_confidence)
    check = next(c for c in decision.checks if c.name == "max_ece_increase")
    assert check.value == pytest.approx(under_confidence) and check.passed is passes
    p_worse = float(check.detail.split("P(worse) ")[1].split(";")[0])
    assert check.passed == (under_confidence <= 0.02 or p_worse < config.confidence)
    assert decision.promote is passes  # every other rule passes: the ECE rule decides
    assert "calibration error" in decision.reason  # reported either way


def test_weighted_ece_is_the_ece_under_resampling() -> None:
    rng = np.random.default_rng(2)
    probabilities = rng.dirichlet([1.0, 1.0, 1.0], size=300)
    truth = rng.integers(0, 3, size=300)
    weights = np.stack([np.ones(300), rng.integers(0, 3, size=300).astype(float)])
    ours = weighted_ece(weights, probabilities, truth)
    assert ours[0] == pytest.approx(expected_calibration_error(probabilities, truth))
    expanded = np.repeat(np.arange(300), weights[1].astype(int))
    assert ours[1] == pytest.approx(
        expected_calibration_error(probabilities[expanded], truth[expanded])
    )


def test_the_ece_rule_boundary_is_inclusive() -> None:
    truth = ["neg", "pos"] * 150
    everything_right = list(truth)
    production_p = _probabilities(everything_right, 0.95)  # ECE 0.05
    at_limit = _probabilities(everything_right, 0.93)  # ECE 0.07: +0.02 exactly
    beyond = _probabilities(everything_right, 0.929)  # +0.021
    config = GateConfig(max_ece_increase=0.02, min_eval=10)
    for probabilities, passed in ((at_limit, True), (beyond, False)):
        decision = decide(
            truth,
            everything_right,
            everything_right,
            LABELS,
            config,
            candidate_probabilities=probabilities,
            production_probabilities=production_p,
        )
        check = next(c for c in decision.checks if c.name == "max_ece_increase")
        assert check.passed is passed, check


def test_without_probabilities_there_is_no_ece_rule_and_shapes_are_checked() -> None:
    truth = _data()
    candidate, production = _predict(truth, 0.9, seed=1), _predict(truth, 0.7, seed=2)
    decision = decide(truth, candidate, production, LABELS, GateConfig())
    assert "max_ece_increase" not in {c.name for c in decision.checks}
    assert "ece" not in decision.candidate
    with pytest.raises(ValueError, match="probabilities of shape"):
        decide(
            truth,
            candidate,
            production,
            LABELS,
            GateConfig(),
            candidate_probabilities=np.zeros((3, 3)),
        )
    first = decide(
        truth,
        candidate,
        None,
        LABELS,
        GateConfig(),
        candidate_probabilities=_probabilities(candidate, 0.9),
    )
    assert first.candidate["ece"] == pytest.approx(0.0, abs=0.03)  # right ~90% at 0.9
