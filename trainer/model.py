"""The classifier as Keras builds and trains it: encoder handles, the model, a warm start, and
the compiled train and predict steps.

Imports TensorFlow: :mod:`trainer.train` imports this module only once training starts.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from trainer.artifact import LABELS_FILE
from trainer.calibration import softmax
from trainer.datasets import Example
from trainer.encoder import EncoderImportError, load_encoder_info
from trainer.encoder.importer import cpu_model_name
from trainer.layers import MaskedMean, WarmupLinearDecay, load_keras_classifier
from trainer.metrics import classification_metrics
from trainer.tf_runtime import hub, tf, tf_keras
from trainer.train import TrainConfig, TrainingError

logger = logging.getLogger(__name__)


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity (``os.cpu_count()`` where unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no sched_getaffinity on this platform
        return os.cpu_count() or 1


def thread_counts(threads: int | None) -> tuple[int, int]:
    """TensorFlow's (intra-op, inter-op) threads for training with ``threads`` (None: every core).

    Intra-op threads share out each op (the matrix products); inter-op threads run
    independent ops side by side, of which a fine-tune's graph has few: at most two, as
    for a capped run, rather than a second pool as large as the first.
    """
    intra = threads if threads is not None else available_cores()
    return intra, min(2, intra)


def configure_threads(threads: int | None) -> None:
    """Size TensorFlow's thread pools for training: ``threads`` intra-op threads, or one per core.

    TensorFlow fixes its pools when it runs its first op. Afterwards a different size cannot
    be set; then the training shares the pools the process has, and a warning says so (not
    when asked for every core and the pools are TensorFlow's default, one thread per core).
    """
    intra, inter = thread_counts(threads)
    pools = tf.config.threading
    current = (
        pools.get_intra_op_parallelism_threads(),
        pools.get_inter_op_parallelism_threads(),
    )
    if current == (intra, inter):
        return
    try:
        pools.set_intra_op_parallelism_threads(intra)
        pools.set_inter_op_parallelism_threads(inter)
    except RuntimeError:
        if threads is None and current[0] == 0:
            return
        logger.warning(
            "TensorFlow already runs in this process (intra-op threads: %s); training "
            "shares its threads instead of using %d",
            current[0] or "one per core",
            intra,
        )


def encoder_handles(config: TrainConfig, *, role: Literal["train", "serve"]) -> tuple[str, str]:
    """Preprocessor and encoder handles for training (maybe mixed precision) or serving."""
    if config.encoder_dir is not None:
        root = Path(config.encoder_dir)
        preprocessor, encoder = root / "preprocessor", root / "encoder"
        for path in (preprocessor, encoder):
            if not (path / "saved_model.pb").is_file():
                raise TrainingError(
                    f"{path} is not a SavedModel; import an encoder with `bertbot encoder import`"
                )
        variant = root / ("encoder_bf16" if role == "train" else "encoder_bf16_serving")
        available = (variant / "saved_model.pb").is_file()
        if role == "train":
            wanted = config.mixed_precision  # None: whenever the encoder has the variant
        elif config.serving_precision is not None:
            wanted = config.serving_precision == "bfloat16"
        else:  # what was measured on this CPU (float32 until it is)
            try:
                info = load_encoder_info(root)
            except EncoderImportError as exc:
                raise TrainingError(str(exc)) from exc
            wanted = info.serving_weights == "bfloat16"
            measured = info.serving_precision
            if measured is not None and measured.cpu != cpu_model_name():
                logger.warning(
                    "the serving precision (%s) was measured on %s, this is %s: "
                    "`bertbot encoder tune-precision` measures it here",
                    measured.choice,
                    measured.cpu,
                    cpu_model_name(),
                )
        if wanted and not available:
            raise TrainingError(f"bfloat16 {role} needs {variant}; re-import the encoder")
        if available and wanted is not False:
            encoder = variant
        return str(preprocessor), str(encoder)
    assert config.preprocessor_handle and config.encoder_handle
    if config.mixed_precision or config.serving_precision == "bfloat16":
        raise TrainingError("bfloat16 needs an imported encoder (encoder_dir)")
    return config.preprocessor_handle, config.encoder_handle


def build_classifier(config: TrainConfig, *, role: Literal["train", "serve"] = "train") -> Any:
    """The Keras model: strings -> logits, with the encoder fine-tuned."""
    preprocessor_handle, encoder_handle = encoder_handles(config, role=role)
    text = tf_keras.Input(shape=(), dtype=tf.string, name="text")
    preprocessor = hub.KerasLayer(preprocessor_handle, name="preprocessor")
    encoder = hub.KerasLayer(encoder_handle, trainable=role == "train", name="encoder")
    encoder_inputs = preprocessor(text)
    outputs = encoder(encoder_inputs)
    if config.pooling == "cls":
        pooled = outputs["pooled_output"]
    else:
        pooled = MaskedMean(name="mean_pool")(
            [outputs["sequence_output"], encoder_inputs["input_mask"]]
        )
    hidden = tf_keras.layers.Dropout(config.dropout, name="dropout")(pooled)
    logits = tf_keras.layers.Dense(
        len(config.labels),
        kernel_initializer=tf_keras.initializers.TruncatedNormal(stddev=0.02, seed=config.seed),
        name="classifier",
    )(hidden)
    return tf_keras.Model(text, logits, name="bertbot_classifier")


def warm_start(model: Any, artifact_dir: Path, labels: Sequence[str]) -> None:
    """Copy an exported model's trained weights into a freshly built classifier."""
    try:
        exported_labels = json.loads((artifact_dir / LABELS_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise TrainingError(f"cannot warm-start from {artifact_dir}: {exc}") from exc
    if list(exported_labels) != list(labels):
        raise TrainingError(
            f"cannot warm-start from {artifact_dir}: its labels {exported_labels} differ "
            f"from {list(labels)}"
        )
    source = load_keras_classifier(str(artifact_dir))
    weights = source.get_weights()
    shapes = [w.shape for w in model.get_weights()]
    if [w.shape for w in weights] != shapes:
        raise TrainingError(f"cannot warm-start from {artifact_dir}: another architecture")
    model.set_weights(weights)


class Trainer:
    """The training loop's state: model, optimizer, compiled steps."""

    def __init__(self, config: TrainConfig, planned_steps: int) -> None:
        self.tf = tf
        self.config = config
        self.model = build_classifier(config)
        if config.init_from is not None:
            warm_start(self.model, Path(config.init_from), config.labels)
        self.total_steps = tf.Variable(float(planned_steps), trainable=False, dtype=tf.float32)

        warmup = int(round(config.warmup_fraction * planned_steps))
        schedule = WarmupLinearDecay(config.learning_rate, warmup, self.total_steps)
        self.optimizer = tf_keras.optimizers.AdamW(
            learning_rate=schedule,
            weight_decay=config.weight_decay,
            beta_1=0.9,
            beta_2=0.999,
            epsilon=1e-6,
            global_clipnorm=1.0,
        )
        self.optimizer.exclude_from_weight_decay(
            var_names=["bias", "LayerNorm", "layer_norm", "layernorm", "gamma", "beta"]
        )
        num_classes = len(config.labels)
        smoothing = config.label_smoothing
        model, optimizer = self.model, self.optimizer

        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.string),
                tf.TensorSpec([None], tf.int32),
                tf.TensorSpec([None], tf.float32),
            ],
            reduce_retracing=True,
        )
        def train_step(texts: Any, labels: Any, weights: Any) -> Any:
            targets = tf.one_hot(labels, num_classes)
            if smoothing:
                targets = targets * (1.0 - smoothing) + smoothing / num_classes
            with tf.GradientTape() as tape:
                logits = model(texts, training=True)
                per_example = tf.nn.softmax_cross_entropy_with_logits(targets, logits)
                loss = tf.reduce_sum(per_example * weights) / tf.reduce_sum(weights)
            variables = model.trainable_variables
            gradients = tape.gradient(loss, variables)
            optimizer.apply_gradients(zip(gradients, variables, strict=True))
            return loss

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)], reduce_retracing=True)
        def predict_step(texts: Any) -> Any:
            return model(texts, training=False)  # logits

        self.train_step = train_step
        self.predict_step = predict_step

    def predict_logits(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        """Raw logits [n, labels], batched by length, in input order."""
        order = np.argsort([len(text) for text in texts], kind="stable")
        logits = np.zeros((len(texts), len(self.config.labels)), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            batch = self.tf.constant([texts[i] for i in index])
            logits[index] = self.predict_step(batch).numpy()
        return logits

    def predict_proba(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        """Uncalibrated softmax probabilities [n, labels]."""
        return softmax(self.predict_logits(texts, batch_size)).astype(np.float32)


def evaluate(
    trainer: Trainer,
    examples: Sequence[Example],
    labels: Sequence[str],
    batch_size: int,
    *,
    logits: np.ndarray | None = None,
) -> dict[str, Any]:
    """Classification metrics of the trainer's model on examples (or on their given logits)."""
    if logits is None:
        logits = trainer.predict_logits([e.text for e in examples], batch_size * 2)
    predicted = [labels[i] for i in logits.argmax(axis=1)]
    return classification_metrics([e.label for e in examples], predicted, labels)
