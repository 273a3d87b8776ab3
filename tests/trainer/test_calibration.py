"""Temperature scaling, ECE and Brier: the maths on known inputs, and a tiny model end to end."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from trainer.calibration import (
    MIN_TEMPERATURE,
    brier_score,
    calibrate,
    expected_calibration_error,
    fit_temperature,
    softmax,
)
from trainer.datasets import Example


def overconfident_sample(n: int = 4000, scale: float = 4.0, seed: int = 0):  # type: ignore[no-untyped-def]
    """Labels drawn from softmax(z) (calibrated by construction), logits reported as scale * z."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, size=(n, 3))
    p = softmax(z)
    y = np.array([rng.choice(3, p=row) for row in p])
    return z * scale, y


def test_ece_by_hand() -> None:
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    y = np.array([0, 1, 0, 1])
    # bins (0.8, 0.8667]... : 0.9 -> bin 13, 0.6 -> bin 8, 0.7 -> bin 10 (15 bins)
    # |0.5 - 0.9| * 2/4 + |1 - 0.6| * 1/4 + |1 - 0.7| * 1/4
    assert expected_calibration_error(probabilities, y) == pytest.approx(0.2 + 0.1 + 0.075)
    assert brier_score(probabilities, y) == pytest.approx(
        np.mean([0.02, 1.62, 0.32, 0.18])  # (p - onehot)^2 summed per row
    )


def test_fitting_the_temperature_undoes_overconfidence() -> None:
    logits, y = overconfident_sample()
    temperature = fit_temperature(logits, y)
    assert temperature == pytest.approx(4.0, rel=0.1)
    before = expected_calibration_error(softmax(logits), y)
    after = expected_calibration_error(softmax(logits, temperature), y)
    assert before > 0.15 and after < 0.03
    # Temperature never changes which label wins.
    assert (softmax(logits, temperature).argmax(1) == logits.argmax(1)).all()


def test_an_underconfident_model_gets_a_temperature_below_one_but_not_below_the_bound() -> None:
    logits, y = overconfident_sample(scale=0.7)
    assert fit_temperature(logits, y) == pytest.approx(0.7, rel=0.1)
    logits, y = overconfident_sample(scale=0.2)
    assert fit_temperature(logits, y) == pytest.approx(MIN_TEMPERATURE, rel=1e-3)


def test_a_split_without_errors_keeps_the_raw_softmax() -> None:
    # Perfectly separated: the NLL keeps falling as T -> 0, which would serve ~1.0 for all.
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0], [0.5, 2.5]])
    assert fit_temperature(logits, [0, 1, 0, 1]) == 1.0


def test_calibrate_reports_both_splits_and_the_diagram_split() -> None:
    logits, y = overconfident_sample(n=3000)
    temperature, record = calibrate(logits[:1500], y[:1500], logits[1500:], y[1500:])
    assert record["temperature"] == temperature
    assert record["split"] == "eval"
    assert record["eval"]["ece_after"] < record["eval"]["ece_before"]
    assert record["eval"]["brier_after"] < record["eval"]["brier_before"]
    assert record["ece_after"] == record["eval"]["ece_after"]
    assert sum(row["n"] for row in record["bins_after"]) == 1500
    json.dumps(record)  # JSON-ready
    _, only_validation = calibrate(logits[:100], y[:100])
    assert only_validation["split"] == "validation" and "eval" not in only_validation


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="do not match"):
        fit_temperature(np.zeros((3, 2)), [0, 1])
    assert fit_temperature(np.zeros((1, 2)), [0]) == 1.0


def noisy_examples(count: int, seed: int) -> list[Example]:
    """Word lists decide the label, but a fifth of the labels are flipped: a model trained
    hard on them becomes over-confident."""
    rng = random.Random(seed)
    words = {"pos": ["good", "great", "ok"], "neg": ["bad", "not", "spam"]}
    filler = ["the", "cat", "sat", "on", "mat", "you", "is", "it"]
    examples = []
    for i in range(count):
        label = "pos" if i % 2 else "neg"
        text = rng.sample(words[label], 2) + rng.sample(filler, rng.randint(1, 5))
        rng.shuffle(text)
        if rng.random() < 0.2:
            label = "neg" if label == "pos" else "pos"
        examples.append(Example(" ".join(text) + f" {i}", label))
    return examples


@pytest.fixture(scope="module")
def overfit(tiny_encoder_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from trainer.train import TrainConfig, train

    config = TrainConfig(
        labels=("neg", "pos"),
        encoder_dir=str(tiny_encoder_dir),
        epochs=12,
        learning_rate=5e-3,
        batch_size=16,
        warmup_fraction=0.0,
        patience=100,
        validation_fraction=0.3,
        dropout=0.0,
    )
    out = tmp_path_factory.mktemp("overfit") / "model"
    return train(
        noisy_examples(400, seed=0),
        config,
        out,
        eval_examples=noisy_examples(300, seed=1),
        task="toy",
        version="3",
    )


def test_a_fitted_temperature_lowers_ece_of_an_overconfident_model(overfit) -> None:  # type: ignore[no-untyped-def]
    calibration = json.loads((overfit.artifact_dir / "metrics.json").read_text())["calibration"]
    assert overfit.temperature > 1.2, calibration  # it was over-confident
    assert calibration["eval"]["ece_after"] < calibration["eval"]["ece_before"], calibration
    assert calibration["validation"]["ece_after"] < calibration["validation"]["ece_before"]
    assert (overfit.artifact_dir / "reliability_diagram.png").read_bytes()[:4] == b"\x89PNG"
    card = (overfit.artifact_dir / "model_card.md").read_text()
    assert "## Calibration" in card and "reliability_diagram.png" in card


def test_the_temperature_survives_export_and_load(overfit) -> None:  # type: ignore[no-untyped-def]
    from trainer.serving import SavedModelClassifier

    manifest = json.loads((overfit.artifact_dir / "manifest.json").read_text())
    assert manifest["temperature"] == pytest.approx(overfit.temperature)
    model = SavedModelClassifier.load(overfit.artifact_dir, expected_sha256=overfit.sha256)
    assert model.temperature == pytest.approx(overfit.temperature)
    texts = ["good great the cat", "bad not spam", "ok", "not good"]
    served = np.array([[p.probabilities[k] for k in model.labels] for p in model.predict(texts)])
    logits = model.logits(texts)
    np.testing.assert_allclose(served, softmax(logits, overfit.temperature), atol=2e-3)
    # Calibrated confidences are less extreme than the raw softmax of the same logits.
    assert served.max(axis=1).mean() < softmax(logits).max(axis=1).mean()
    embeddings = model.embed(texts + ["x"])
    assert embeddings.shape == (5, 32) and np.isfinite(embeddings).all()
    assert model.embed([]).shape[0] == 0


def test_reexport_keeps_the_temperature(overfit, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from trainer.export import reexport
    from trainer.serving import SavedModelClassifier

    out = tmp_path / "again"
    reexport(overfit.artifact_dir, out, serving_precision="float32")
    model = SavedModelClassifier.load(out)
    assert model.temperature == pytest.approx(overfit.temperature)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["calibration"]["temperature"] == pytest.approx(overfit.temperature)
