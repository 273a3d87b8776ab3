"""Fine-tuning: a function of data and config, writing one self-contained artifact.

``train(examples, config, out_dir) -> TrainResult``: no Slack, no database, no scheduler.
The model is ``hub.KerasLayer(preprocessor) -> hub.KerasLayer(encoder, trainable=True) ->
dropout -> dense``; the exported SavedModel maps raw strings to per-label probabilities.

This module holds the config, the result and the training loop; the pieces it drives live in
:mod:`trainer.train_data` (split, class weights, batches), :mod:`trainer.model` (the Keras
model and its compiled steps) and :mod:`trainer.export` (the serving SavedModel and its
companions). Those two import TensorFlow, so :func:`train` imports them when it starts: importing
this module (for :class:`TrainConfig`) stays cheap.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from trainer.calibration import calibrate
from trainer.datasets import Example
from trainer.train_data import class_weights, length_bucketed_batches, validation_split

logger = logging.getLogger(__name__)

MIN_EXAMPLES = 20
WARMUP_STEPS = 5


def _replan_step(step: int) -> bool:
    return step in (WARMUP_STEPS + 15, WARMUP_STEPS + 60) or (step > 100 and step % 200 == 0)


class TrainingError(RuntimeError):
    """Training could not produce an artifact; the message says why."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides how a model is trained (validated on creation).

    Attributes:
        labels: The task's labels, in output order.
        encoder_dir: An imported encoder (``preprocessor/`` and ``encoder/`` SavedModels).
        preprocessor_handle: A TF Hub handle (URL or path) instead of ``encoder_dir``.
        encoder_handle: A TF Hub handle of the encoder, with ``preprocessor_handle``.
        batch_size: Examples per step.
        learning_rate: Peak learning rate of AdamW.
        epochs: Passes over the training data (early stopping may end sooner).
        warmup_fraction: Share of steps with a linear warm-up; then linear decay to 0.
        weight_decay: Decoupled weight decay (not on biases and LayerNorm).
        dropout: Dropout before the classification layer.
        pooling: ``mean`` (masked mean of ``sequence_output``) or ``cls`` (``pooled_output``).
        class_weighting: ``balanced`` weighs each class by n / (k * count), else ``none``.
        validation_fraction: Share of the training examples held back for early stopping.
        evaluations_per_epoch: Validation passes per epoch (early stopping checkpoints).
        patience: Validations without improvement before stopping.
        max_minutes: Wall-clock budget for the training loop; the schedule shrinks to fit.
        seed: Seeds shuffling, the validation split, dropout and the head's initialisation.
        threads: TensorFlow intra-op threads (None: one per core).
        bucket_batches: Batches per length bucket (each batch is padded to its longest text).
        label_smoothing: Label smoothing of the cross-entropy.
        mixed_precision: Train with the encoder's bfloat16 variant (``encoder_bf16/``) and
            export with the float32 encoder; None: whenever the encoder has that variant.
        init_from: An exported model (same encoder and labels) to start from instead of the
            pretrained encoder and a fresh head: a warm start from production.
        serving_precision: The exported model's encoder: ``float32`` (exact), or ``bfloat16``
            (kernels stored in bfloat16: faster on some CPUs, class probabilities within
            ~1e-2). None: what ``bertbot encoder tune-precision`` measured as fastest on this
            CPU among the candidates that agree with float32 (float32 until it is measured).
        neighbour_index_size: How many training examples (a stratified, seeded sample) the
            artifact's neighbour index holds for explanations; 0: no index.
    """

    labels: tuple[str, ...]
    encoder_dir: str | None = None
    preprocessor_handle: str | None = None
    encoder_handle: str | None = None
    batch_size: int = 32
    learning_rate: float = 5e-5
    epochs: float = 3.0
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    dropout: float = 0.1
    pooling: Literal["mean", "cls"] = "mean"
    class_weighting: Literal["balanced", "none"] = "balanced"
    validation_fraction: float = 0.1
    evaluations_per_epoch: int = 1
    patience: int = 2
    max_minutes: float | None = None
    seed: int = 0
    threads: int | None = None
    bucket_batches: int = 50
    label_smoothing: float = 0.0
    mixed_precision: bool | None = None
    init_from: str | None = None
    serving_precision: Literal["float32", "bfloat16"] | None = None
    neighbour_index_size: int = 5000

    def __post_init__(self) -> None:
        problems = []
        if len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
            problems.append("labels must be at least two distinct names")
        if (self.encoder_dir is None) == (self.preprocessor_handle is None):
            problems.append("give either encoder_dir or preprocessor_handle + encoder_handle")
        if (self.preprocessor_handle is None) != (self.encoder_handle is None):
            problems.append("preprocessor_handle and encoder_handle go together")
        checks = [
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (0 < self.learning_rate < 1, "learning_rate must be in (0, 1)"),
            (self.epochs > 0, "epochs must be > 0"),
            (0 <= self.warmup_fraction < 1, "warmup_fraction must be in [0, 1)"),
            (0 <= self.weight_decay < 1, "weight_decay must be in [0, 1)"),
            (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (self.pooling in ("mean", "cls"), "pooling must be mean or cls"),
            (self.class_weighting in ("balanced", "none"), "class_weighting: balanced|none"),
            (0 < self.validation_fraction < 0.5, "validation_fraction must be in (0, 0.5)"),
            (self.evaluations_per_epoch >= 1, "evaluations_per_epoch must be >= 1"),
            (self.patience >= 1, "patience must be >= 1"),
            (self.max_minutes is None or self.max_minutes > 0, "max_minutes must be > 0"),
            (self.threads is None or self.threads >= 1, "threads must be >= 1"),
            (self.bucket_batches >= 1, "bucket_batches must be >= 1"),
            (0 <= self.label_smoothing < 0.5, "label_smoothing must be in [0, 0.5)"),
            (self.neighbour_index_size >= 0, "neighbour_index_size must be >= 0"),
        ]
        problems += [message for ok, message in checks if not ok]
        if problems:
            raise ValueError("invalid training config: " + "; ".join(problems))

    @classmethod
    def from_file(cls, path: Path, **defaults: Any) -> TrainConfig:
        """Read a JSON config; keys are this class's fields. ``defaults`` fill the rest."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ValueError(f"config file {path} does not exist") from exc
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"config file {path} is not valid JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise ValueError(f"config file {path} must hold a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(
                f"config file {path} has unknown keys {unknown}; known: {sorted(known)}"
            )
        if "labels" in raw:
            raw["labels"] = tuple(raw["labels"])
        return cls(**{**defaults, **raw})

    def hyperparameters(self) -> dict[str, Any]:
        values = asdict(self)
        values["labels"] = list(self.labels)
        return values


@dataclass(frozen=True)
class ProgressEvent:
    """What a long training run reports, for progress bars and logs."""

    phase: Literal["train", "validate", "calibrate", "export", "done"]
    step: int
    total_steps: int
    epoch: float
    elapsed_s: float
    eta_s: float | None
    loss: float | None = None
    examples_per_s: float | None = None
    validation_macro_f1: float | None = None
    message: str = ""


ProgressFn = Callable[[ProgressEvent], None]


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` produced."""

    artifact_dir: Path
    sha256: str
    labels: tuple[str, ...]
    metrics: dict[str, Any]
    hyperparameters: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    best_step: int = 0
    train_seconds: float = 0.0
    examples_per_second: float = 0.0
    stopped_by: str = "epochs"
    temperature: float = 1.0


def with_overrides(config: TrainConfig, **overrides: Any) -> TrainConfig:
    """A copy of ``config`` with the non-None overrides applied."""
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})


def train(
    examples: Sequence[Example],
    config: TrainConfig,
    out_dir: Path,
    *,
    eval_examples: Sequence[Example] | None = None,
    progress: ProgressFn | None = None,
    task: str = "task",
    version: str = "0",
    data_description: dict[str, Any] | None = None,
) -> TrainResult:
    """Fine-tune a classifier and export it as one self-contained artifact.

    Args:
        examples: Training examples (a validation share is split off for early stopping).
        config: Hyper-parameters and the encoder.
        out_dir: Where the artifact goes; must not exist yet (it is written atomically).
        eval_examples: A held-out set scored after training (``metrics["eval"]``).
        progress: Called with a :class:`ProgressEvent` as training goes.
        task: The task name, for the model card.
        version: The version name, recorded in the artifact.
        data_description: What the data were (source, counts, hash), for the model card.

    Returns:
        The artifact's location, sha256, metrics and training history.

    Raises:
        ValueError: The examples carry unknown labels or are too few.
        TrainingError: The encoder is missing or the artifact could not be written.
    """
    started = time.monotonic()
    report = progress or (lambda event: None)
    labels = list(config.labels)
    label_index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({e.label for e in examples} - set(labels))
    if unknown:
        raise ValueError(f"examples have labels {unknown} that are not in {labels}")
    if eval_examples:
        unknown = sorted({e.label for e in eval_examples} - set(labels))
        if unknown:
            raise ValueError(f"eval examples have labels {unknown} that are not in {labels}")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise TrainingError(f"{out_dir} exists and is not empty; choose another --out")

    train_part, validation = validation_split(examples, config.validation_fraction, config.seed)
    if len(examples) < MIN_EXAMPLES or not validation:
        raise ValueError(
            f"{len(examples)} examples are too few to train and validate; "
            f"give at least {MIN_EXAMPLES}"
        )
    train_counts = Counter(e.label for e in train_part)
    if len(train_counts) < 2:
        raise ValueError(f"training data hold only one label ({next(iter(train_counts))})")

    from trainer.export import export_classifier
    from trainer.model import Trainer, configure_threads, evaluate

    configure_threads(config.threads)
    from trainer.tf_runtime import tf, tf_keras

    tf_keras.utils.set_random_seed(config.seed)
    rng = np.random.default_rng(config.seed)

    texts = [e.text for e in train_part]
    targets = np.array([label_index[e.label] for e in train_part], dtype=np.int32)
    weights_per_class = (
        class_weights(targets, len(labels))
        if config.class_weighting == "balanced"
        else np.ones(len(labels), dtype=np.float32)
    )
    steps_per_epoch = math.ceil(len(texts) / config.batch_size)
    planned_steps = max(1, int(math.ceil(steps_per_epoch * config.epochs)))
    evaluate_every = max(1, steps_per_epoch // config.evaluations_per_epoch)
    trainer = Trainer(config, planned_steps)
    lengths = [len(text) for text in texts]
    budget_s = None if config.max_minutes is None else config.max_minutes * 60.0

    history: list[dict[str, Any]] = []
    best_f1, best_step, best_weights = -1.0, 0, None
    evaluations_without_gain = 0
    step = 0
    seen = 0
    loop_started = time.monotonic()
    stopped_by = "epochs"
    original_steps = planned_steps
    warm_clock: tuple[int, float] | None = None
    batches: list[np.ndarray] = []
    losses: list[float] = []

    def validate() -> float:
        nonlocal best_f1, best_step, best_weights, evaluations_without_gain
        metrics = evaluate(trainer, validation, labels, config.batch_size)
        f1 = metrics["macro_f1"]
        elapsed = time.monotonic() - loop_started
        history.append(
            {
                "step": step,
                "epoch": round(step / steps_per_epoch, 3),
                "loss": float(np.mean(losses[-evaluate_every:])) if losses else None,
                "validation_macro_f1": f1,
                "validation_accuracy": metrics["accuracy"],
                "elapsed_s": round(elapsed, 1),
            }
        )
        if f1 > best_f1:
            best_f1, best_step = f1, step
            best_weights = trainer.model.get_weights()
            evaluations_without_gain = 0
        else:
            evaluations_without_gain += 1
        report(
            ProgressEvent(
                "validate",
                step,
                planned_steps,
                step / steps_per_epoch,
                elapsed,
                None,
                validation_macro_f1=f1,
                message=f"validation macro-F1 {f1:.4f} (best {best_f1:.4f} at step {best_step})",
            )
        )
        return float(f1)

    while step < planned_steps:
        if not batches:
            batches = length_bucketed_batches(
                lengths, config.batch_size, config.bucket_batches, rng
            )
        index = batches.pop()
        batch_texts = tf.constant([texts[i] for i in index])
        batch_labels = targets[index]
        loss = trainer.train_step(
            batch_texts, tf.constant(batch_labels), tf.constant(weights_per_class[batch_labels])
        )
        losses.append(float(loss))
        step += 1
        seen += len(index)
        elapsed = time.monotonic() - loop_started
        if step == WARMUP_STEPS:
            warm_clock = (step, time.monotonic())
        if budget_s is not None and warm_clock is not None and _replan_step(step):
            # Fit the schedule to the budget so the learning rate reaches 0 inside it; the
            # first steps (tracing) are left out of the per-step estimate.
            per_step = (time.monotonic() - warm_clock[1]) / (step - warm_clock[0])
            fits = step + int((budget_s - elapsed) * 0.95 / per_step)
            replanned = min(original_steps, max(step + 1, fits))
            if replanned != planned_steps:
                logger.info(
                    "time budget %.1f min: ~%d of %d steps fit; schedule set to %d",
                    config.max_minutes,
                    fits,
                    original_steps,
                    replanned,
                )
                planned_steps = replanned
                trainer.total_steps.assign(float(planned_steps))
                evaluate_every = max(1, min(evaluate_every, planned_steps // 2))
        rate = seen / elapsed if elapsed > 0 else None
        if warm_clock is not None and step > warm_clock[0]:
            recent = (time.monotonic() - warm_clock[1]) / (step - warm_clock[0])
            eta = (planned_steps - step) * recent
        else:
            eta = (planned_steps - step) * elapsed / step
        report(
            ProgressEvent(
                "train",
                step,
                planned_steps,
                step / steps_per_epoch,
                elapsed,
                eta,
                loss=losses[-1],
                examples_per_s=rate,
            )
        )
        if not math.isfinite(losses[-1]):
            raise TrainingError(f"the loss diverged at step {step} ({losses[-1]})")
        if step % evaluate_every == 0 or step == planned_steps:
            validate()
            if evaluations_without_gain >= config.patience and step < planned_steps:
                stopped_by = "early_stopping"
                break
        if budget_s is not None and time.monotonic() - loop_started >= budget_s:
            stopped_by = "time_budget"
            if not history or history[-1]["step"] != step:
                validate()
            break

    train_seconds = time.monotonic() - loop_started
    if best_weights is not None:
        trainer.model.set_weights(best_weights)
    validation_logits = trainer.predict_logits([e.text for e in validation], config.batch_size * 2)
    metrics: dict[str, Any] = {
        "validation": evaluate(
            trainer, validation, labels, config.batch_size, logits=validation_logits
        ),
    }
    eval_logits = None
    if eval_examples:
        eval_logits = trainer.predict_logits([e.text for e in eval_examples], config.batch_size * 2)
        metrics["eval"] = evaluate(
            trainer, eval_examples, labels, config.batch_size, logits=eval_logits
        )
    temperature, calibration = calibrate(
        validation_logits,
        [label_index[e.label] for e in validation],
        eval_logits,
        [label_index[e.label] for e in eval_examples or []],
    )
    metrics["calibration"] = calibration
    report(
        ProgressEvent(
            "calibrate",
            step,
            planned_steps,
            step / steps_per_epoch,
            time.monotonic() - started,
            None,
            message=(
                f"temperature {temperature:.3f}: validation ECE "
                f"{calibration['ece_before']:.4f} -> {calibration['ece_after']:.4f}"
            ),
        )
    )

    hyperparameters = config.hyperparameters()
    training_info = {
        "steps": step,
        "planned_steps": planned_steps,
        "best_step": best_step,
        "stopped_by": stopped_by,
        "train_seconds": round(train_seconds, 1),
        "examples_per_second": round(seen / train_seconds, 2) if train_seconds else None,
        "train_examples": len(train_part),
        "validation_examples": len(validation),
        "eval_examples": len(eval_examples or []),
        "train_label_counts": dict(sorted(train_counts.items())),
        "class_weights": {
            label: float(w) for label, w in zip(labels, weights_per_class, strict=True)
        },
    }
    report(
        ProgressEvent(
            "export",
            step,
            planned_steps,
            step / steps_per_epoch,
            time.monotonic() - started,
            None,
            message=f"exporting to {out_dir}",
        )
    )
    sha256 = export_classifier(
        trainer.model,
        out_dir,
        labels=labels,
        task=task,
        version=version,
        metrics=metrics,
        hyperparameters=hyperparameters,
        training=training_info | {"history": history},
        data=data_description or {},
        config=config,
        temperature=temperature,
        calibration=calibration,
        index_examples=examples,
    )
    report(
        ProgressEvent(
            "done",
            step,
            planned_steps,
            step / steps_per_epoch,
            time.monotonic() - started,
            0.0,
            message="done",
        )
    )
    return TrainResult(
        artifact_dir=out_dir,
        sha256=sha256,
        labels=tuple(labels),
        metrics=metrics,
        hyperparameters=hyperparameters,
        history=history,
        steps=step,
        best_step=best_step,
        train_seconds=train_seconds,
        examples_per_second=seen / train_seconds if train_seconds else 0.0,
        stopped_by=stopped_by,
        temperature=temperature,
    )
