"""The int8 experiment of bench/inference.py: a trained model's encoder, pooling and head
converted to TensorFlow Lite, as float32 and with dynamic-range int8 weights
(``tf.lite.Optimize.DEFAULT``: int8 kernels, activations quantized on the fly), run by
TensorFlow's own ``tf.lite.Interpreter`` (XNNPACK) after the model's in-graph tokenizer.

Bench-only: bertbot does not ship it (see bench/results/inference-notes.md for why).

The trained encoder's weights are read out of the exported Keras model and written again as
an encoder SavedModel by the same code that imports encoders (trainer.encoder.bert), since
the exported graph itself does not convert (TFLite cannot run its bfloat16 kernels).
"""

from __future__ import annotations

import json
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

INPUTS = ("input_word_ids", "input_mask", "input_type_ids")


def _hf_weights(encoder_layer: Any) -> dict[str, np.ndarray]:
    """The encoder layer's trained variables, keyed as a Hugging Face checkpoint."""
    from trainer.encoder.checkpoint import LAYER_TENSORS

    values = {
        v.name.split(":")[0]: np.asarray(v.numpy(), np.float32) for v in encoder_layer.weights
    }
    weights = {
        "embeddings.word_embeddings.weight": values["embeddings/word_embeddings"],
        "embeddings.position_embeddings.weight": values["embeddings/position_embeddings"],
        "embeddings.token_type_embeddings.weight": values["embeddings/type_embeddings"],
        "embeddings.LayerNorm.weight": values["embeddings/layer_norm/gamma"],
        "embeddings.LayerNorm.bias": values["embeddings/layer_norm/beta"],
        "pooler.dense.weight": values["pooler/kernel"].T,
        "pooler.dense.bias": values["pooler/bias"],
    }
    layer = 0
    while f"transformer/layer_{layer}/attention/query/kernel" in values:
        for _, tf_name, hf_name, shape in LAYER_TENSORS:
            value = values[f"transformer/layer_{layer}/{tf_name}"]
            weights[f"encoder.layer.{layer}.{hf_name}"] = value.T if len(shape) == 2 else value
        layer += 1
    return weights


def _bert_config(encoder_json: dict[str, Any]) -> Any:
    from trainer.encoder.checkpoint import BertConfig

    arch = encoder_json["architecture"]
    return BertConfig(
        vocab_size=encoder_json["vocab_size"],
        hidden_size=encoder_json["hidden_size"],
        num_layers=encoder_json["num_layers"],
        num_heads=encoder_json["num_heads"],
        intermediate_size=arch["intermediate_size"],
        hidden_act=arch["hidden_act"],
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        max_position_embeddings=arch["max_position_embeddings"],
        type_vocab_size=arch["type_vocab_size"],
        layer_norm_eps=arch["layer_norm_eps"],
    )


def convert(float32_artifact: Path, *, quantize: bool) -> tuple[bytes, Any]:
    """The model after its tokenizer as a TFLite flat buffer, and its tokenizer.

    Args:
        float32_artifact: An exported model served in float32 (``reexport`` makes one).
        quantize: Dynamic-range int8 weights; else float32.
    """
    from trainer.encoder.bert import save_encoder
    from trainer.layers import load_keras_classifier
    from trainer.tf_runtime import tf

    model = load_keras_classifier(str(float32_artifact))
    training = json.loads((float32_artifact / "training.json").read_text())
    config = _bert_config(training["base_encoder"])
    preprocessor = model.get_layer("preprocessor").resolved_object
    head = model.get_layer("classifier")
    kernel, bias = tf.constant(head.kernel.numpy()), tf.constant(head.bias.numpy())
    cls_pooling = training["hyperparameters"].get("pooling") == "cls"
    with tempfile.TemporaryDirectory() as scratch:
        save_encoder(Path(scratch) / "encoder", config, _hf_weights(model.get_layer("encoder")))
        encoder = tf.saved_model.load(str(Path(scratch) / "encoder"))
        specs = [tf.TensorSpec([None, None], tf.int32, name=name) for name in INPUTS]

        @tf.function(input_signature=specs)
        def body(word_ids: Any, mask: Any, type_ids: Any) -> Any:
            inputs = dict(zip(INPUTS, (word_ids, mask, type_ids), strict=True))
            outputs = encoder(inputs, training=False)
            if cls_pooling:
                pooled = outputs["pooled_output"]
            else:  # MaskedMean, written without tf.newaxis (TFLite cannot slice with it)
                weights = tf.expand_dims(tf.cast(mask, tf.float32), -1)
                total = tf.reduce_sum(outputs["sequence_output"] * weights, 1)
                pooled = total / tf.maximum(tf.reduce_sum(weights, 1), 1.0)
            return tf.nn.softmax(tf.matmul(pooled, kernel) + bias, axis=-1)

        converter = tf.lite.TFLiteConverter.from_concrete_functions(
            [body.get_concrete_function()], encoder
        )
        if quantize:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        return converter.convert(), preprocessor


class TFLiteClassifier:
    """Probabilities for texts: the in-graph tokenizer (TensorFlow), then the TFLite model.

    Batches like SavedModelClassifier.predict: texts sorted by length, cut into batches, each
    padded to its longest text. One interpreter, so calls are serialised by a lock (a TFLite
    interpreter is not thread-safe).
    """

    def __init__(self, flat_buffer: bytes, preprocessor: Any, *, batch: int, threads: int) -> None:
        import warnings

        from trainer.tf_runtime import tf

        self._tf = tf
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
            self._interpreter = tf.lite.Interpreter(model_content=flat_buffer, num_threads=threads)
        self._inputs = {
            next(name for name in INPUTS if name in d["name"]): d["index"]
            for d in self._interpreter.get_input_details()
        }
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._preprocessor = preprocessor
        self._batch = batch
        self._shape: tuple[int, ...] | None = None
        self._lock = threading.Lock()
        self.size_mb = len(flat_buffer) / 1e6

    def _run(self, texts: list[str]) -> np.ndarray:
        packed = self._preprocessor(self._tf.constant(texts))
        arrays = {name: packed[name].numpy() for name in INPUTS}
        shape = arrays["input_word_ids"].shape
        with self._lock:
            if shape != self._shape:
                for index in self._inputs.values():
                    self._interpreter.resize_tensor_input(index, shape)
                self._interpreter.allocate_tensors()
                self._shape = shape
            for name, index in self._inputs.items():
                self._interpreter.set_tensor(index, arrays[name])
            self._interpreter.invoke()
            return np.array(self._interpreter.get_tensor(self._output))

    def predict(self, texts: list[str]) -> np.ndarray:
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), 0), np.float32)
        for start in range(0, len(order), self._batch):
            index = order[start : start + self._batch]
            probabilities = self._run([texts[i] for i in index])
            if out.shape[1] == 0:
                out = np.zeros((len(texts), probabilities.shape[1]), np.float32)
            out[index] = probabilities
        return out
