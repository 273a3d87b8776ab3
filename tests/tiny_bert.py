"""A tiny random BERT checkpoint in Hugging Face layout, and a NumPy reference forward pass.

``write_tiny_bert_checkpoint`` writes ``config.json``, ``model.safetensors`` (via
``safetensors.numpy``) and ``vocab.txt`` for a 2-layer, hidden-32, 4-head BERT with a vocabulary of
about a hundred word pieces, so tests can import and fine-tune an encoder in seconds. Imports no
TensorFlow.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PUNCTUATION = list(".,!?'-:()[]#")
LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)]
WORDS = (
    "the cat sat on mat hello world spam ham free win prize call now good bad great you is it not"
    " ok caf na ##ive stra ##ße ß"
).split()
TINY_VOCAB = SPECIAL_TOKENS + PUNCTUATION + LETTERS + [f"##{c}" for c in LETTERS] + WORDS

# What the shared `tiny_encoder_dir` fixture (tests/trainer/conftest.py) imports with.
TINY_MAX_SEQ_LENGTH = 32

TINY_CONFIG: dict[str, Any] = {
    "architectures": ["BertModel"],
    "model_type": "bert",
    "vocab_size": len(TINY_VOCAB),
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 128,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "initializer_range": 0.02,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
}


def tiny_bert_weights(seed: int = 0, config: Mapping[str, Any] = TINY_CONFIG) -> dict[str, Any]:
    """Random float32 weights keyed by Hugging Face names (no ``bert.`` prefix), pooler included.

    Scales are large enough that attention patterns and the pooler's tanh are far from trivial.
    """
    rng = np.random.default_rng(seed)
    h, i = config["hidden_size"], config["intermediate_size"]

    def normal(*shape: int, scale: float = 0.2) -> np.ndarray:
        return rng.normal(0.0, scale, size=shape).astype(np.float32)

    def layer_norm(prefix: str) -> dict[str, np.ndarray]:
        return {
            f"{prefix}.weight": (1.0 + normal(h, scale=0.1)).astype(np.float32),
            f"{prefix}.bias": normal(h, scale=0.1),
        }

    weights: dict[str, Any] = {
        "embeddings.word_embeddings.weight": normal(config["vocab_size"], h, scale=1.0),
        "embeddings.position_embeddings.weight": normal(
            config["max_position_embeddings"], h, scale=0.5
        ),
        "embeddings.token_type_embeddings.weight": normal(config["type_vocab_size"], h, scale=0.5),
        **layer_norm("embeddings.LayerNorm"),
    }
    for n in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{n}."
        for proj in ("query", "key", "value"):
            weights[f"{p}attention.self.{proj}.weight"] = normal(h, h)
            weights[f"{p}attention.self.{proj}.bias"] = normal(h, scale=0.1)
        weights[f"{p}attention.output.dense.weight"] = normal(h, h)
        weights[f"{p}attention.output.dense.bias"] = normal(h, scale=0.1)
        weights.update(layer_norm(f"{p}attention.output.LayerNorm"))
        weights[f"{p}intermediate.dense.weight"] = normal(i, h)
        weights[f"{p}intermediate.dense.bias"] = normal(i, scale=0.1)
        weights[f"{p}output.dense.weight"] = normal(h, i)
        weights[f"{p}output.dense.bias"] = normal(h, scale=0.1)
        weights.update(layer_norm(f"{p}output.LayerNorm"))
    weights["pooler.dense.weight"] = normal(h, h)
    weights["pooler.dense.bias"] = normal(h, scale=0.1)
    return weights


def write_tiny_bert_checkpoint(
    directory: Path,
    seed: int = 0,
    *,
    config_overrides: Mapping[str, Any] | None = None,
    weights: Mapping[str, np.ndarray] | None = None,
    key_prefix: str = "",
) -> Path:
    """Writes a tiny Hugging Face-format BERT checkpoint and returns its directory.

    Args:
        directory: Created if missing.
        seed: Seed for the random weights.
        config_overrides: Entries to change in ``config.json`` (the weights follow the default
            config unless ``weights`` is given).
        weights: Tensors to write instead of ``tiny_bert_weights(seed)`` (HF names, no prefix).
        key_prefix: Prefix for every tensor name, e.g. ``"bert."`` as in ``BertForMaskedLM``.

    Returns:
        ``directory``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = {**TINY_CONFIG, **(config_overrides or {})}
    tensors = dict(tiny_bert_weights(seed) if weights is None else weights)
    # Real checkpoints carry this int64 buffer; the importer must ignore it.
    tensors.setdefault(
        "embeddings.position_ids",
        np.arange(TINY_CONFIG["max_position_embeddings"], dtype=np.int64)[None, :],
    )
    save_file(
        {key_prefix + k: np.ascontiguousarray(v) for k, v in tensors.items()},
        str(directory / "model.safetensors"),
    )
    (directory / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    (directory / "vocab.txt").write_text("".join(t + "\n" for t in TINY_VOCAB), encoding="utf-8")
    return directory


def numpy_bert_forward(
    weights: Mapping[str, np.ndarray],
    input_word_ids: np.ndarray,
    input_mask: np.ndarray,
    input_type_ids: np.ndarray,
    config: Mapping[str, Any] = TINY_CONFIG,
) -> tuple[np.ndarray, np.ndarray]:
    """BERT forward pass in float64 NumPy, written from the Hugging Face definition.

    Returns:
        ``(sequence_output [batch, len, hidden], pooled_output [batch, hidden])``.
    """
    w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
    eps = config["layer_norm_eps"]
    heads = config["num_attention_heads"]
    batch, length = input_word_ids.shape
    head_size = config["hidden_size"] // heads

    def linear(x: np.ndarray, name: str) -> np.ndarray:
        return x @ w[f"{name}.weight"].T + w[f"{name}.bias"]

    def layer_norm(x: np.ndarray, name: str) -> np.ndarray:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + eps) * w[f"{name}.weight"] + w[f"{name}.bias"]

    erf = np.vectorize(math.erf)

    def split(x: np.ndarray) -> np.ndarray:
        return x.reshape(batch, length, heads, head_size).transpose(0, 2, 1, 3)

    x = (
        w["embeddings.word_embeddings.weight"][input_word_ids]
        + w["embeddings.position_embeddings.weight"][np.arange(length)][None]
        + w["embeddings.token_type_embeddings.weight"][input_type_ids]
    )
    x = layer_norm(x, "embeddings.LayerNorm")
    bias = np.where(input_mask[:, None, None, :] > 0, 0.0, -np.inf)
    for n in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{n}."
        q = split(linear(x, p + "attention.self.query"))
        k = split(linear(x, p + "attention.self.key"))
        v = split(linear(x, p + "attention.self.value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(head_size) + bias
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        probs = scores / scores.sum(-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, length, -1)
        attention = layer_norm(
            linear(context, p + "attention.output.dense") + x, p + "attention.output.LayerNorm"
        )
        inter = linear(attention, p + "intermediate.dense")
        inter = 0.5 * inter * (1.0 + erf(inter / math.sqrt(2.0)))
        x = layer_norm(linear(inter, p + "output.dense") + attention, p + "output.LayerNorm")
    pooled = np.tanh(linear(x[:, 0], "pooler.dense"))
    return x, pooled
