"""Exporting a trained classifier: the serving SavedModel (raw strings in) with its labels,
metrics, model card and manifest, written atomically; and re-exporting one at another precision.

Imports TensorFlow: :mod:`trainer.train` imports this module only once training starts.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, Literal

from trainer.artifact import (
    CARD_FILE,
    CONFUSION_FILE,
    LABELS_FILE,
    METRICS_FILE,
    RELIABILITY_FILE,
    TRAINING_FILE,
    write_manifest,
)
from trainer.attribution import (
    EXPLAIN_SIGNATURE,
    embed_texts,
    explain_function,
    read_vocabulary,
)
from trainer.calibration import plot_reliability_diagram
from trainer.datasets import Example
from trainer.explain import (
    NEIGHBOUR_EXAMPLES_FILE,
    NEIGHBOUR_VECTORS_FILE,
    sample_for_index,
    write_neighbour_index,
)
from trainer.layers import load_keras_classifier
from trainer.metrics import model_card, plot_confusion_matrix
from trainer.model import build_classifier, encoder_handles
from trainer.tf_runtime import tf, tf_keras
from trainer.train import TrainConfig, TrainingError

logger = logging.getLogger(__name__)


def _encoder_description(config: TrainConfig) -> dict[str, Any]:
    if config.encoder_dir is not None:
        info_path = Path(config.encoder_dir) / "encoder.json"
        try:
            info = json.loads(info_path.read_text())
        except (OSError, ValueError):
            info = {}
        return {"encoder_dir": config.encoder_dir, **info}
    return {"preprocessor": config.preprocessor_handle, "encoder": config.encoder_handle}


def export_classifier(
    model: Any,
    out_dir: Path,
    *,
    labels: Sequence[str],
    task: str,
    version: str,
    metrics: dict[str, Any],
    hyperparameters: dict[str, Any],
    training: dict[str, Any],
    data: dict[str, Any],
    config: TrainConfig,
    temperature: float = 1.0,
    calibration: dict[str, Any] | None = None,
    index_examples: Sequence[Example] = (),
    copy_index_from: Path | None = None,
) -> str:
    """Write the serving SavedModel and its companions atomically; return the artifact sha256.

    The SavedModel's ``serving_default`` maps ``text`` (a batch of strings) to
    ``probabilities`` [batch, labels] (calibrated: ``softmax(logits / temperature)``),
    ``logits`` (raw), ``label`` and ``num_tokens`` (word pieces plus [CLS] and [SEP] before
    truncation, so callers can tell a truncated text). Its ``embed`` signature maps ``text``
    to ``embedding`` [batch, hidden]: the pooled representation the classification head reads.
    The temperature is recorded in the manifest and ``training.json``; ``calibration`` (ECE
    and reliability bins before and after it) goes into ``metrics.json`` and the model card,
    and its reliability diagram beside the confusion matrix.

    Its ``explain`` signature (:func:`trainer.attribution.explain_function`) gives
    integrated-gradient attributions, when the encoder was imported with the functions it
    needs; ``index_examples`` (up to ``config.neighbour_index_size`` of them, a stratified
    seeded sample) are embedded into the neighbour index files (:mod:`trainer.explain`);
    ``copy_index_from`` (an artifact of the same weights) gives its index instead.
    """
    if not temperature > 0:
        raise TrainingError(f"temperature must be positive, not {temperature}")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    tmp_dir.chmod(0o755)  # mkdtemp makes it private; the artifact is an ordinary directory
    try:
        if encoder_handles(config, role="train") != encoder_handles(config, role="serve"):
            # Serve the trained weights through the serving encoder (float32, or bfloat16
            # kernels), whatever precision training used.
            trained = model
            model = build_classifier(config, role="serve")
            model.set_weights(trained.get_weights())
        # A fresh Model over the same layers: saving it does not write the AdamW slots.
        probabilities = tf_keras.layers.Softmax(name="probabilities")(model.outputs[0])
        serving = tf_keras.Model(model.inputs, probabilities, name=f"{task}_classifier")
        logits_model = tf_keras.Model(model.inputs, model.outputs[0])
        embedding_model = tf_keras.Model(model.inputs, model.get_layer("dropout").input)
        preprocessor = model.get_layer("preprocessor")
        label_table = tf.constant(list(labels))
        inverse_temperature = tf.constant(1.0 / float(temperature), tf.float32)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(text: Any) -> dict[str, Any]:
            logits = logits_model(text, training=False)
            probs = tf.nn.softmax(logits * inverse_temperature, axis=-1)
            pieces = preprocessor.resolved_object.tokenize(text)
            while isinstance(pieces, tf.RaggedTensor) and pieces.ragged_rank > 1:
                pieces = pieces.merge_dims(-2, -1)
            return {
                "probabilities": probs,
                "logits": logits,
                "label": tf.gather(label_table, tf.argmax(logits, axis=-1)),
                "num_tokens": tf.cast(pieces.row_lengths(), tf.int32) + 2,
            }

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def embed(text: Any) -> dict[str, Any]:
            return {"embedding": embedding_model(text, training=False)}

        signatures = {"serving_default": serve, "embed": embed}
        vocabulary = (
            read_vocabulary(Path(config.encoder_dir)) if config.encoder_dir is not None else None
        )
        explain = (
            explain_function(
                model,
                vocabulary=vocabulary,
                inverse_temperature=inverse_temperature,
                pooling=config.pooling,
            )
            if vocabulary is not None
            else None
        )
        if explain is not None:
            signatures[EXPLAIN_SIGNATURE] = explain
        else:
            logger.warning(
                "%s v%s is exported without explanations: its encoder has no "
                "embedding-level functions (re-import it with `bertbot encoder import --force`)",
                task,
                version,
            )
        serving.save(str(tmp_dir), save_format="tf", include_optimizer=False, signatures=signatures)
        chosen = sample_for_index(
            [e.text for e in index_examples],
            [e.label for e in index_examples],
            config.neighbour_index_size,
            config.seed,
        )
        if chosen:
            texts = [index_examples[i].text for i in chosen]
            write_neighbour_index(
                tmp_dir,
                embed_texts(embedding_model, texts),
                texts,
                [index_examples[i].label for i in chosen],
            )
        elif copy_index_from is not None:
            for name in (NEIGHBOUR_VECTORS_FILE, NEIGHBOUR_EXAMPLES_FILE):
                if (copy_index_from / name).is_file():
                    shutil.copyfile(copy_index_from / name, tmp_dir / name)
        encoder = _encoder_description(config)
        (tmp_dir / LABELS_FILE).write_text(json.dumps(list(labels)) + "\n")
        if calibration is not None:
            metrics = {**metrics, "calibration": calibration}
        (tmp_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        (tmp_dir / TRAINING_FILE).write_text(
            json.dumps(
                {
                    "serving_encoder": encoder_handles(config, role="serve")[1],
                    "task": task,
                    "version": version,
                    "hyperparameters": hyperparameters,
                    "training": training,
                    "data": data,
                    "base_encoder": encoder,
                    "temperature": float(temperature),
                },
                indent=2,
                sort_keys=True,
                default=str,
            )
            + "\n"
        )
        shown = metrics.get("eval") or metrics["validation"]
        plot_confusion_matrix(
            shown,
            tmp_dir / CONFUSION_FILE,
            title=f"{task} v{version}: macro-F1 {shown['macro_f1']:.3f} (n={shown['n']})",
        )
        if calibration is not None and calibration.get("bins_after"):
            plot_reliability_diagram(
                {
                    "raw softmax": calibration.get("bins_before") or [],
                    f"T = {temperature:.2f}": calibration["bins_after"],
                },
                tmp_dir / RELIABILITY_FILE,
                title=(
                    f"{task} v{version} on its {calibration.get('split', 'validation')} split: "
                    f"ECE {calibration.get('ece_before', 0):.3f} -> "
                    f"{calibration.get('ece_after', 0):.3f}"
                ),
            )
        (tmp_dir / CARD_FILE).write_text(
            model_card(
                task=task,
                version=version,
                labels=labels,
                base_encoder=encoder,
                hyperparameters=hyperparameters,
                data=data,
                metrics=metrics,
                training={k: v for k, v in training.items() if k != "history"},
            )
        )
        sha256 = write_manifest(
            tmp_dir,
            extra={"task": task, "version": version, "temperature": float(temperature)},
        )
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked by train); a non-empty one is never replaced
        tmp_dir.rename(out_dir)
        return sha256
    except OSError as exc:
        raise TrainingError(f"could not write the model to {out_dir}: {exc}") from exc
    finally:
        if tmp_dir.exists():
            shutil.rmtree(tmp_dir, ignore_errors=True)


def reexport(
    artifact_dir: Path,
    out_dir: Path,
    *,
    serving_precision: Literal["float32", "bfloat16"],
    temperature: float | None = None,
    encoder_dir: Path | None = None,
    index_examples: Sequence[Example] = (),
) -> str:
    """Export an existing model again with another serving precision (same trained weights).

    Args:
        artifact_dir: The exported model.
        out_dir: Where the new artifact goes.
        serving_precision: The new artifact's encoder precision.
        temperature: Replaces the fitted temperature (None: keep it).
        encoder_dir: Rebuild the model on this imported encoder (same architecture) and copy
            the trained weights in: how a model whose encoder predates explanations gets an
            ``explain`` signature.
        index_examples: Examples for a new neighbour index; without them the artifact's own
            index (if any) is kept.

    Returns:
        The new artifact's sha256.
    """
    info = json.loads((artifact_dir / TRAINING_FILE).read_text())
    hyperparameters = dict(info["hyperparameters"])
    hyperparameters["labels"] = tuple(hyperparameters["labels"])
    known = {f.name for f in fields(TrainConfig)}
    config = replace(
        TrainConfig(**{k: v for k, v in hyperparameters.items() if k in known}),
        serving_precision=serving_precision,
    )
    metrics = json.loads((artifact_dir / METRICS_FILE).read_text())
    calibration = metrics.pop("calibration", None)
    model = load_keras_classifier(str(artifact_dir))
    inner = model.get_layer("classifier").output  # logits, before the exported Softmax
    logits_model = tf_keras.Model(model.inputs, inner)
    if encoder_dir is not None:
        config = replace(config, encoder_dir=str(encoder_dir), mixed_precision=False)
        rebuilt = build_classifier(config, role="serve")
        if [w.shape for w in rebuilt.get_weights()] != [
            w.shape for w in logits_model.get_weights()
        ]:
            raise TrainingError(f"{encoder_dir} is not the encoder {artifact_dir} was trained on")
        rebuilt.set_weights(logits_model.get_weights())
        logits_model = rebuilt
    return export_classifier(
        logits_model,
        out_dir,
        labels=json.loads((artifact_dir / LABELS_FILE).read_text()),
        task=info["task"],
        version=info["version"],
        metrics=metrics,
        hyperparameters=config.hyperparameters(),
        training=info["training"] | {"reexported_from": str(artifact_dir)},
        data=info.get("data", {}),
        config=config,
        temperature=float(info.get("temperature", 1.0)) if temperature is None else temperature,
        calibration=calibration if temperature is None else None,
        index_examples=index_examples,
        copy_index_from=None if index_examples else artifact_dir,
    )
