"""Every gate rule on both sides of its threshold, and the seeded paired bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from trainer.gate import GateConfig, decide, macro_f1_from_weights, paired_bootstrap

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
        probe.recall_drops[max(probe.recall_drops, key=probe.recall_drops.get)] <= 0.05
    )


def test_max_class_drop_boundary() -> None:
    truth = _data()
    production = _predict(truth, 0.8, 5)
    # The candidate is better overall but sacrifices recall of "pos".
    candidate = [y if y != "pos" else ("neg" if i % 4 == 0 else y) for i, y in enumerate(truth)]
    decision = decide(truth, candidate, production, LABELS, GateConfig(min_delta=0.0))
    drop = decision.recall_drops["pos"]
    assert drop > 0
    strict = decide(
        truth, candidate, production, LABELS, GateConfig(min_delta=0.0, max_class_drop=drop - 1e-9)
    )
    lenient = decide(
        truth, candidate, production, LABELS, GateConfig(min_delta=0.0, max_class_drop=drop + 1e-9)
    )
    assert not strict.promote and "recall drop" in strict.reason
    assert next(c for c in lenient.checks if c.name == "max_class_drop").passed


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


def test_corrections_weigh_their_share_of_the_eval_set() -> None:
    """A gain on 60 in-domain corrections counts, though 3,000 seed examples are unchanged."""
    seed_truth = _data(3000, seed=11)
    seed_pred = _predict(seed_truth, 0.8, 12)
    corr_truth = _data(60, seed=13)
    truth = seed_truth + corr_truth
    production = seed_pred + _predict(corr_truth, 0.75, 14)
    candidate = seed_pred + _predict(corr_truth, 0.88, 15)
    mask = [False] * 3000 + [True] * 60
    equal = decide(
        truth,
        candidate,
        production,
        LABELS,
        GateConfig(correction_share=0.0),
        corrections_mask=mask,
    )
    weighted = decide(
        truth,
        candidate,
        production,
        LABELS,
        GateConfig(correction_share=0.5),
        corrections_mask=mask,
    )
    assert not equal.promote  # 60 of 3,060 examples: a small overall delta
    assert weighted.promote, weighted.reason
    weight = 0.5 * 3000 / (0.5 * 60)
    assert weighted.corrections["eval_weight"] == pytest.approx(weight)
    # The bootstrap resamples the same weighted set the point estimate uses.
    index = {label: i for i, label in enumerate(LABELS)}
    encode = lambda ys: np.array([index[y] for y in ys])  # noqa: E731
    example_weights = np.array([weight if flag else 1.0 for flag in mask])
    expected = paired_bootstrap(
        encode(truth),
        encode(candidate),
        encode(production),
        3,
        resamples=1000,
        seed=0,
        example_weights=example_weights,
    )
    unweighted = paired_bootstrap(
        encode(truth), encode(candidate), encode(production), 3, resamples=1000, seed=0
    )
    assert weighted.p_improvement == pytest.approx(expected[0])
    assert expected[1] > unweighted[1]  # the weighted gain's interval sits higher
