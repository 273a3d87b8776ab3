"""The encoder SavedModel: the BERT layers, input ids -> pooled_output, sequence_output."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from trainer.encoder.checkpoint import LAYER_TENSORS, BertConfig
from trainer.tf_runtime import tf

# Added to attention scores of padding positions; exp() of it is exactly 0 in float32.
ATTENTION_MASK_VALUE = -1e9


def save_encoder(
    path: Path,
    cfg: BertConfig,
    weights: Mapping[str, np.ndarray],
    compute_dtype: str = "float32",
) -> None:
    low_precision = compute_dtype != "float32"
    # "bfloat16_weights": kernels stored in bfloat16 (inference only: nothing is cast per call).
    stored_low = compute_dtype == "bfloat16_weights"
    fast = tf.bfloat16

    def matmul(a: Any, b: Any, **kwargs: Any) -> Any:
        # Mixed precision: inputs cast down for the multiply, the result back to float32, so
        # variables, gradients, LayerNorm and softmax stay float32.
        if not low_precision:
            return tf.matmul(a, b, **kwargs)
        return tf.cast(tf.matmul(tf.cast(a, fast), tf.cast(b, fast), **kwargs), tf.float32)

    def variable(name: str, key: str, kernel: bool = False) -> Any:
        value = weights[key].T if kernel else weights[key]
        if kernel and stored_low:
            return tf.Variable(
                tf.cast(np.ascontiguousarray(value), fast), name=name, trainable=False
            )
        return tf.Variable(np.ascontiguousarray(value), name=name, trainable=True)

    emb = {
        "word": variable("embeddings/word_embeddings", "embeddings.word_embeddings.weight"),
        "position": variable(
            "embeddings/position_embeddings", "embeddings.position_embeddings.weight"
        ),
        "type": variable("embeddings/type_embeddings", "embeddings.token_type_embeddings.weight"),
        "ln_gamma": variable("embeddings/layer_norm/gamma", "embeddings.LayerNorm.weight"),
        "ln_beta": variable("embeddings/layer_norm/beta", "embeddings.LayerNorm.bias"),
    }
    layers = [
        {
            key: variable(
                f"transformer/layer_{n}/{tf_name}", f"encoder.layer.{n}.{hf_name}", len(shape) == 2
            )
            for key, tf_name, hf_name, shape in LAYER_TENSORS
        }
        for n in range(cfg.num_layers)
    ]
    pooler = {
        "kernel": variable("pooler/kernel", "pooler.dense.weight", True),
        "bias": variable("pooler/bias", "pooler.dense.bias"),
    }
    all_variables = [
        *emb.values(),
        *(v for layer in layers for v in layer.values()),
        *pooler.values(),
    ]

    h, nh, dh = cfg.hidden_size, cfg.num_heads, cfg.head_size
    eps = cfg.layer_norm_eps

    def activation(x: Any) -> Any:
        if cfg.hidden_act == "gelu":
            return tf.nn.gelu(x, approximate=False)
        if cfg.hidden_act == "relu":
            return tf.nn.relu(x)
        return tf.nn.gelu(x, approximate=True)

    def dense(x: Any, kernel: Any, bias: Any) -> Any:
        # [batch, len, in] -> [batch, len, out] as one 2-D matmul.
        shape = tf.shape(x)
        y = matmul(tf.reshape(x, [-1, kernel.shape[0]]), kernel) + bias
        return tf.reshape(y, tf.concat([shape[:-1], [kernel.shape[1]]], axis=0))

    def layer_norm(x: Any, gamma: Any, beta: Any) -> Any:
        mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
        return (x - mean) * tf.math.rsqrt(variance + eps) * gamma + beta

    def dropout(x: Any, rate: float, training: bool) -> Any:
        return tf.nn.dropout(x, rate=rate) if training and rate > 0 else x

    def forward(inputs: Mapping[str, Any], training: bool) -> dict[str, Any]:
        word_embeddings = tf.gather(emb["word"], inputs["input_word_ids"])
        return forward_from_embeddings(
            word_embeddings, inputs["input_mask"], inputs["input_type_ids"], training
        )

    def forward_from_embeddings(
        word_embeddings: Any, mask: Any, type_ids: Any, training: bool
    ) -> dict[str, Any]:
        batch, length = tf.shape(type_ids)[0], tf.shape(type_ids)[1]

        # No tf.newaxis slices here or below: TFLite cannot convert them at dynamic shapes.
        x = word_embeddings + tf.gather(emb["type"], type_ids) + emb["position"][:length]
        x = dropout(
            layer_norm(x, emb["ln_gamma"], emb["ln_beta"]), cfg.hidden_dropout_prob, training
        )
        additive_mask = (1.0 - tf.cast(mask, tf.float32)) * ATTENTION_MASK_VALUE
        additive_mask = tf.reshape(additive_mask, [batch, 1, 1, length])
        scale = 1.0 / math.sqrt(dh)

        def heads(t: Any) -> Any:  # [batch, len, h] -> [batch, heads, len, head_size]
            return tf.transpose(tf.reshape(t, [batch, length, nh, dh]), [0, 2, 1, 3])

        encoder_outputs = []
        for layer in layers:
            q = heads(dense(x, layer["q_kernel"], layer["q_bias"]))
            k = heads(dense(x, layer["k_kernel"], layer["k_bias"]))
            v = heads(dense(x, layer["v_kernel"], layer["v_bias"]))
            scores = matmul(q, k, transpose_b=True) * scale + additive_mask
            probs = dropout(
                tf.nn.softmax(scores, axis=-1), cfg.attention_probs_dropout_prob, training
            )
            context = tf.reshape(tf.transpose(matmul(probs, v), [0, 2, 1, 3]), [batch, length, h])
            attention = dropout(
                dense(context, layer["o_kernel"], layer["o_bias"]),
                cfg.hidden_dropout_prob,
                training,
            )
            attention = layer_norm(attention + x, layer["attn_ln_gamma"], layer["attn_ln_beta"])
            intermediate = activation(dense(attention, layer["i_kernel"], layer["i_bias"]))
            output = dropout(
                dense(intermediate, layer["out_kernel"], layer["out_bias"]),
                cfg.hidden_dropout_prob,
                training,
            )
            x = layer_norm(output + attention, layer["out_ln_gamma"], layer["out_ln_beta"])
            encoder_outputs.append(x)

        pooled = tf.tanh(matmul(x[:, 0, :], pooler["kernel"]) + pooler["bias"])
        return {
            "pooled_output": pooled,
            "sequence_output": x,
            "encoder_outputs": encoder_outputs,
        }

    @tf.function
    def call(inputs: Mapping[str, Any], training: bool = False) -> dict[str, Any]:
        return forward(inputs, training)

    specs = {
        key: tf.TensorSpec([None, None], tf.int32, name=key)
        for key in ("input_word_ids", "input_mask", "input_type_ids")
    }
    # The two traces hub.KerasLayer picks from with its `training` argument.
    call.get_concrete_function(specs, training=False)
    call.get_concrete_function(specs, training=True)

    @tf.function(input_signature=list(specs.values()))
    def serve(input_word_ids: Any, input_mask: Any, input_type_ids: Any) -> dict[str, Any]:
        outputs = forward(
            {
                "input_word_ids": input_word_ids,
                "input_mask": input_mask,
                "input_type_ids": input_type_ids,
            },
            training=False,
        )
        return {key: outputs[key] for key in ("pooled_output", "sequence_output")}

    # Explanations (integrated gradients) start from the word embeddings: the lookup and the
    # rest of the forward pass as two functions, so a caller can interpolate in between.
    ids_spec = tf.TensorSpec([None, None], tf.int32, name="input_word_ids")

    @tf.function(input_signature=[ids_spec])
    def word_embeddings(input_word_ids: Any) -> Any:
        return tf.gather(emb["word"], input_word_ids)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None, h], tf.float32, name="input_embeddings"),
            specs["input_mask"],
            specs["input_type_ids"],
        ]
    )
    def call_with_embeddings(
        input_embeddings: Any, input_mask: Any, input_type_ids: Any
    ) -> dict[str, Any]:
        outputs = forward_from_embeddings(
            input_embeddings, input_mask, input_type_ids, training=False
        )
        return {key: outputs[key] for key in ("pooled_output", "sequence_output")}

    # The attributes tf_hub's "reusable SavedModel" interface expects (what hub.KerasLayer reads).
    root = tf.train.Checkpoint()
    root.embeddings = emb
    root.layers = layers
    root.pooler = pooler
    root.variables = all_variables
    # The serving variant's bfloat16 kernels are not trained (and not listed as trainable).
    root.trainable_variables = [] if stored_low else list(all_variables)
    root.regularization_losses = []
    root.__call__ = call
    root.word_embeddings = word_embeddings
    root.call_with_embeddings = call_with_embeddings
    tf.saved_model.save(root, str(path), signatures={"serving_default": serve})
