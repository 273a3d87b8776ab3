"""Keras pieces of the classifier, registered so that an exported model reloads as Keras.

Imported only where TensorFlow is needed (training, warm starts, benchmarks).
"""

from __future__ import annotations

from typing import Any

from trainer.tf_runtime import tf, tf_keras


@tf_keras.utils.register_keras_serializable(package="bertbot")
class MaskedMean(tf_keras.layers.Layer):
    """Mean of the token vectors where the attention mask is 1 (sentence-transformers pooling)."""

    def call(self, inputs: Any) -> Any:
        sequence, mask = inputs
        weights = tf.cast(mask, sequence.dtype)[:, :, tf.newaxis]
        total = tf.reduce_sum(sequence * weights, axis=1)
        return total / tf.maximum(tf.reduce_sum(weights, axis=1), 1.0)


@tf_keras.utils.register_keras_serializable(package="bertbot")
class WarmupLinearDecay(tf_keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak``, then linear decay to 0 at ``total_steps``.

    ``total_steps`` may be a variable, so a time budget can shorten the schedule mid-run.
    """

    def __init__(self, peak: float, warmup_steps: int, total_steps: Any) -> None:
        self.peak = peak
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps

    def __call__(self, step: Any) -> Any:
        step = tf.cast(step, tf.float32)
        total = tf.cast(self.total_steps, tf.float32)
        warm = tf.cast(max(self.warmup_steps, 1), tf.float32)
        up = self.peak * step / warm
        down = self.peak * tf.maximum(total - step, 0.0) / tf.maximum(total - warm, 1.0)
        return tf.where(step < warm, up, down)

    def get_config(self) -> dict[str, Any]:
        total = self.total_steps
        return {
            "peak": self.peak,
            "warmup_steps": self.warmup_steps,
            "total_steps": float(total.numpy()) if hasattr(total, "numpy") else float(total),
        }


def load_keras_classifier(artifact_dir: str) -> Any:
    """Reload an exported classifier as a Keras model (layers ``preprocessor``, ``encoder``,
    ``mean_pool``, ``dropout``, ``classifier``, ``probabilities``) with its trained weights."""
    from trainer.tf_runtime import hub

    return tf_keras.models.load_model(
        artifact_dir, custom_objects={"KerasLayer": hub.KerasLayer}, compile=False
    )
