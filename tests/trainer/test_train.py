"""Fine-tuning, export and serving on the tiny random BERT (seconds, not minutes)."""

from __future__ import annotations

import json
import random
import threading
from pathlib import Path

import numpy as np
import pytest

from trainer.datasets import Example
from trainer.serving import SavedModelClassifier, ServingError
from trainer.train import TrainConfig, TrainingError, train
from trainer.train_data import class_weights, length_bucketed_batches, validation_split

POSITIVE = ["good", "great", "ok"]
NEGATIVE = ["bad", "not", "spam"]


def toy_examples(count: int, seed: int = 0) -> list[Example]:
    """Texts whose label is decided by which word list they draw from (learnable in seconds)."""
    rng = random.Random(seed)
    filler = ["the", "cat", "sat", "on", "mat", "you", "is", "it"]
    examples = []
    for i in range(count):
        label = "pos" if i % 3 else "neg"  # imbalanced 2:1
        words = rng.sample(POSITIVE if label == "pos" else NEGATIVE, 2)
        words += rng.sample(filler, rng.randint(0, 5))
        rng.shuffle(words)
        examples.append(Example(" ".join(words) + f" {i}", label))
    return examples


def test_validation_split_is_stable_and_disjoint() -> None:
    examples = toy_examples(300)
    first = validation_split(examples, 0.1, seed=0)
    again = validation_split(list(reversed(examples)), 0.1, seed=0)
    assert {e.text for e in first[1]} == {e.text for e in again[1]}
    assert not {e.text for e in first[0]} & {e.text for e in first[1]}
    assert 10 < len(first[1]) < 60
    other_seed = validation_split(examples, 0.1, seed=1)
    assert {e.text for e in other_seed[1]} != {e.text for e in first[1]}


def test_balanced_class_weights() -> None:
    weights = class_weights([0, 0, 0, 1], 3)
    assert weights[0] == pytest.approx(4 / (2 * 3)) and weights[1] == pytest.approx(4 / 2)
    assert weights[2] == 1.0  # absent class


def test_length_buckets_cover_every_example_once_with_similar_lengths() -> None:
    rng = np.random.default_rng(0)
    lengths = list(rng.integers(1, 200, size=1000))
    batches = length_bucketed_batches(lengths, batch_size=32, bucket_batches=10, rng=rng)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    spread = np.mean([np.ptp(np.asarray(lengths)[b]) for b in batches])
    random_spread = np.mean(
        [np.ptp(np.asarray(lengths)[rng.permutation(1000)[:32]]) for _ in range(20)]
    )
    assert spread < random_spread / 3


def test_config_is_validated_and_read_from_json(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="learning_rate"):
        TrainConfig(labels=("a", "b"), encoder_dir="x", learning_rate=5.0)
    with pytest.raises(ValueError, match="either encoder_dir"):
        TrainConfig(labels=("a", "b"))
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"epochs": 2, "dropout": 0.2}))
    config = TrainConfig.from_file(path, labels=("a", "b"), encoder_dir="x")
    assert config.epochs == 2 and config.dropout == 0.2
    path.write_text(json.dumps({"epochz": 2}))
    with pytest.raises(ValueError, match="unknown keys"):
        TrainConfig.from_file(path, labels=("a", "b"), encoder_dir="x")


@pytest.fixture(scope="module")
def trained(tiny_encoder_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("trained") / "model"
    config = TrainConfig(
        labels=("neg", "pos"),
        encoder_dir=str(tiny_encoder_dir),
        epochs=4,
        learning_rate=2e-3,
        batch_size=16,
        warmup_fraction=0.05,
    )
    events = []
    result = train(
        toy_examples(240),
        config,
        out,
        eval_examples=toy_examples(60, seed=1),
        progress=events.append,
        task="toy",
        version="7",
    )
    return result, events


def test_training_learns_the_task_and_reports_progress(trained) -> None:  # type: ignore[no-untyped-def]
    result, events = trained
    assert result.metrics["eval"]["macro_f1"] >= 0.9, result.metrics["eval"]
    assert result.history and result.best_step > 0
    train_events = [e for e in events if e.phase == "train"]
    assert train_events[-1].eta_s is not None and train_events[-1].examples_per_s > 0
    assert {e.phase for e in events} >= {"train", "validate", "export", "done"}
    # Best weights were restored: final validation F1 equals the best seen.
    best = max(h["validation_macro_f1"] for h in result.history)
    assert result.metrics["validation"]["macro_f1"] == pytest.approx(best)


def test_export_writes_a_self_contained_artifact(trained) -> None:  # type: ignore[no-untyped-def]
    result, _ = trained
    out = result.artifact_dir
    for name in [
        "saved_model.pb",
        "labels.json",
        "metrics.json",
        "model_card.md",
        "confusion_matrix.png",
        "training.json",
        "manifest.json",
    ]:
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"macro_f1", "accuracy", "per_class", "confusion_matrix"} <= set(metrics["eval"])
    assert json.loads((out / "labels.json").read_text()) == ["neg", "pos"]
    card = (out / "model_card.md").read_text()
    assert "toy classifier, version 7" in card and "tiny-bert" in card
    assert (out / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    # No optimizer slots in the export (AdamW would triple the size).
    assert not any("optimizer" in p.name.lower() for p in out.rglob("*"))


def test_serving_predicts_in_input_order_and_flags_truncation(trained) -> None:  # type: ignore[no-untyped-def]
    result, _ = trained
    classifier = SavedModelClassifier.load(result.artifact_dir, expected_sha256=result.sha256)
    assert (classifier.task, classifier.version, classifier.labels) == ("toy", "7", ("neg", "pos"))
    texts = ["good great", "bad spam not", "the cat " * 40 + "good"]
    predictions = classifier.predict(texts)
    assert [p.label for p in predictions[:2]] == ["pos", "neg"]
    for p in predictions:
        assert sum(p.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert p.model_version == "7" and p.latency_ms > 0
    assert not predictions[0].truncated and predictions[2].truncated
    assert predictions[2].num_tokens > classifier.max_seq_length
    assert classifier.predict([]) == []


def test_serving_is_thread_safe(trained) -> None:  # type: ignore[no-untyped-def]
    result, _ = trained
    classifier = SavedModelClassifier.load(result.artifact_dir)
    texts = [e.text for e in toy_examples(40, seed=3)]
    expected = [p.probabilities for p in classifier.predict(texts)]
    failures: list[BaseException] = []

    def hammer() -> None:
        try:
            for _ in range(5):
                got = [p.probabilities for p in classifier.predict(texts)]
                for a, b in zip(got, expected, strict=True):
                    assert a == pytest.approx(b, abs=1e-5)
        except BaseException as exc:  # noqa: BLE001
            failures.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures


def test_a_corrupt_or_unexpected_artifact_is_refused(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    result, _ = trained
    copy = tmp_path / "copy"
    shutil.copytree(result.artifact_dir, copy)
    with pytest.raises(ServingError, match="registry expects"):
        SavedModelClassifier.load(copy, expected_sha256="0" * 64)
    variables = next((copy / "variables").glob("variables.data-*"))
    data = bytearray(variables.read_bytes())
    data[len(data) // 2] ^= 0xFF
    variables.write_bytes(bytes(data))
    with pytest.raises(ServingError, match="corrupt"):
        SavedModelClassifier.load(copy)


def test_bad_inputs_are_refused_before_training(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    config = TrainConfig(labels=("neg", "pos"), encoder_dir=str(tiny_encoder_dir))
    with pytest.raises(ValueError, match="not in"):
        train([Example("x", "maybe")] * 30, config, tmp_path / "a")
    with pytest.raises(ValueError, match="too few"):
        train(toy_examples(3), config, tmp_path / "b")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "keep.txt").write_text("mine")
    with pytest.raises(TrainingError, match="not empty"):
        train(toy_examples(60), config, tmp_path / "c")
    assert (tmp_path / "c" / "keep.txt").read_text() == "mine"
    missing = TrainConfig(labels=("neg", "pos"), encoder_dir=str(tmp_path / "nowhere"))
    with pytest.raises(TrainingError, match="encoder import"):
        train(toy_examples(60), missing, tmp_path / "d")


def test_time_budget_stops_training_and_still_exports(
    tiny_encoder_dir: Path, tmp_path: Path
) -> None:
    config = TrainConfig(
        labels=("neg", "pos"),
        encoder_dir=str(tiny_encoder_dir),
        epochs=50,
        max_minutes=0.05,  # 3 seconds for what would take far longer
        batch_size=8,
    )
    result = train(toy_examples(200), config, tmp_path / "m")
    assert result.stopped_by == "time_budget"
    assert result.train_seconds < 20
    assert (tmp_path / "m" / "saved_model.pb").is_file()


def test_a_full_disk_while_exporting_fails_cleanly(
    tiny_encoder_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    import trainer.export as export_module

    def no_space(*args: object, **kwargs: object) -> str:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export_module, "write_manifest", no_space)
    config = TrainConfig(labels=("neg", "pos"), encoder_dir=str(tiny_encoder_dir), epochs=1)
    with pytest.raises(TrainingError, match="No space left on device"):
        train(toy_examples(60), config, tmp_path / "models" / "m")
    assert list((tmp_path / "models").iterdir()) == []  # no artifact, no temp files
