"""Reading and checking a Hugging Face BERT checkpoint: config.json, vocab.txt, safetensors weights.

A checkpoint is a directory with ``config.json``, ``model.safetensors`` and ``vocab.txt`` (and
optionally ``tokenizer_config.json``). Weights are read with ``safetensors.numpy``; nothing here
imports TensorFlow.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainer.artifact import sha256_file
from trainer.encoder.base import EncoderImportError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
VOCAB_FILE = "vocab.txt"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
CHECKPOINT_FILES = (CONFIG_FILE, WEIGHTS_FILE, VOCAB_FILE)

POOLER_INIT_NOTE = (
    "The checkpoint has no pooler weights: the pooler was initialised to the identity matrix with "
    "zero bias, so pooled_output = tanh(sequence_output[:, 0]) until fine-tuning changes it."
)

# One transformer layer: (key used in the forward pass, TF variable name, HF tensor name, HF
# shape as dimension letters: h hidden, i intermediate). The two-dimensional tensors are dense
# kernels: stored [in, out] in the encoder; Hugging Face's Linear weights are [out, in].
LAYER_TENSORS = (
    ("q_kernel", "attention/query/kernel", "attention.self.query.weight", "hh"),
    ("q_bias", "attention/query/bias", "attention.self.query.bias", "h"),
    ("k_kernel", "attention/key/kernel", "attention.self.key.weight", "hh"),
    ("k_bias", "attention/key/bias", "attention.self.key.bias", "h"),
    ("v_kernel", "attention/value/kernel", "attention.self.value.weight", "hh"),
    ("v_bias", "attention/value/bias", "attention.self.value.bias", "h"),
    ("o_kernel", "attention/output/kernel", "attention.output.dense.weight", "hh"),
    ("o_bias", "attention/output/bias", "attention.output.dense.bias", "h"),
    ("attn_ln_gamma", "attention_layer_norm/gamma", "attention.output.LayerNorm.weight", "h"),
    ("attn_ln_beta", "attention_layer_norm/beta", "attention.output.LayerNorm.bias", "h"),
    ("i_kernel", "intermediate/kernel", "intermediate.dense.weight", "ih"),
    ("i_bias", "intermediate/bias", "intermediate.dense.bias", "i"),
    ("out_kernel", "output/kernel", "output.dense.weight", "hi"),
    ("out_bias", "output/bias", "output.dense.bias", "h"),
    ("out_ln_gamma", "output_layer_norm/gamma", "output.LayerNorm.weight", "h"),
    ("out_ln_beta", "output_layer_norm/beta", "output.LayerNorm.bias", "h"),
)

_SUPPORTED_ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "relu")


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    hidden_act: str
    hidden_dropout_prob: float
    attention_probs_dropout_prob: float
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_heads


@dataclass(frozen=True)
class TokenizerSettings:
    do_lower_case: bool
    strip_accents: bool
    tokenize_chinese_chars: bool
    cls_token: str
    sep_token: str
    pad_token: str
    unk_token: str


@dataclass(frozen=True)
class Checkpoint:
    config: BertConfig
    tokenizer: TokenizerSettings
    vocab: list[str]
    weights: dict[str, np.ndarray]  # canonical HF names without a "bert." prefix, float32
    pooler_from_checkpoint: bool
    sha256: dict[str, str]


def read_checkpoint(checkpoint_dir: Path, *, do_lower_case: bool | None) -> Checkpoint:
    if not checkpoint_dir.is_dir():
        raise EncoderImportError(f"checkpoint directory {checkpoint_dir} does not exist")
    missing = [f for f in CHECKPOINT_FILES if not (checkpoint_dir / f).is_file()]
    if missing:
        raise EncoderImportError(
            f"checkpoint {checkpoint_dir} is missing {', '.join(missing)} "
            f"(a Hugging Face BERT checkpoint needs {', '.join(CHECKPOINT_FILES)})"
        )
    config = _read_config(checkpoint_dir / CONFIG_FILE)
    vocab = _read_vocab(checkpoint_dir / VOCAB_FILE)
    settings = _tokenizer_settings(checkpoint_dir, vocab, do_lower_case)
    missing_special = [
        t
        for t in (settings.cls_token, settings.sep_token, settings.pad_token, settings.unk_token)
        if t not in vocab
    ]
    if missing_special:
        raise EncoderImportError(
            f"{checkpoint_dir / VOCAB_FILE} lacks the special tokens {', '.join(missing_special)}"
        )
    if len(vocab) > config.vocab_size:
        raise EncoderImportError(
            f"{checkpoint_dir / VOCAB_FILE} has {len(vocab)} tokens but config.json's vocab_size "
            f"is {config.vocab_size}"
        )
    weights, pooler_from_checkpoint = _read_weights(checkpoint_dir / WEIGHTS_FILE, config)
    sha = {f: sha256_file(checkpoint_dir / f) for f in CHECKPOINT_FILES}
    tokenizer_config = checkpoint_dir / TOKENIZER_CONFIG_FILE
    if tokenizer_config.is_file():
        sha[TOKENIZER_CONFIG_FILE] = sha256_file(tokenizer_config)
    return Checkpoint(
        config=config,
        tokenizer=settings,
        vocab=vocab,
        weights=weights,
        pooler_from_checkpoint=pooler_from_checkpoint,
        sha256=sha,
    )


def read_json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EncoderImportError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise EncoderImportError(f"{path} must hold a JSON object")
    return data


def _read_config(path: Path) -> BertConfig:
    raw = read_json_object(path)
    model_type = raw.get("model_type")
    if model_type != "bert":
        raise EncoderImportError(
            f"{path} has model_type {model_type!r}; only BERT checkpoints "
            "(model_type 'bert') can be imported"
        )
    position_type = raw.get("position_embedding_type", "absolute")
    if position_type != "absolute":
        raise EncoderImportError(
            f"{path} has position_embedding_type {position_type!r}; only 'absolute' is supported"
        )
    hidden_act = raw.get("hidden_act", "gelu")
    if hidden_act not in _SUPPORTED_ACTIVATIONS:
        raise EncoderImportError(
            f"{path} has hidden_act {hidden_act!r}; supported: {', '.join(_SUPPORTED_ACTIVATIONS)}"
        )
    try:
        cfg = BertConfig(
            vocab_size=_positive_int(raw, "vocab_size"),
            hidden_size=_positive_int(raw, "hidden_size"),
            num_layers=_positive_int(raw, "num_hidden_layers"),
            num_heads=_positive_int(raw, "num_attention_heads"),
            intermediate_size=_positive_int(raw, "intermediate_size"),
            hidden_act=hidden_act,
            hidden_dropout_prob=float(raw.get("hidden_dropout_prob", 0.1)),
            attention_probs_dropout_prob=float(raw.get("attention_probs_dropout_prob", 0.1)),
            max_position_embeddings=_positive_int(raw, "max_position_embeddings", 512),
            type_vocab_size=_positive_int(raw, "type_vocab_size", 2),
            layer_norm_eps=float(raw.get("layer_norm_eps", 1e-12)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise EncoderImportError(f"{path} is not a usable BERT config: {exc}") from exc
    if cfg.hidden_size % cfg.num_heads:
        raise EncoderImportError(
            f"{path}: hidden_size {cfg.hidden_size} is not a multiple of "
            f"num_attention_heads {cfg.num_heads}"
        )
    for rate in (cfg.hidden_dropout_prob, cfg.attention_probs_dropout_prob):
        if not 0.0 <= rate < 1.0:
            raise EncoderImportError(f"{path}: dropout probabilities must be in [0, 1)")
    return cfg


def _positive_int(raw: Mapping[str, Any], key: str, default: int | None = None) -> int:
    if key not in raw:
        if default is None:
            raise KeyError(f"missing {key!r}")
        return default
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{key!r} must be a positive integer, got {value!r}")
    return value


def _read_vocab(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EncoderImportError(f"cannot read {path}: {exc}") from exc
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    # Hugging Face strips the trailing "\n" of each line and keeps everything else; a vocabulary
    # written on Windows keeps its "\r" there too, which would never match, so drop it.
    vocab = [line.removesuffix("\r") for line in lines]
    if not vocab:
        raise EncoderImportError(f"{path} is empty")
    seen: set[str] = set()
    for index, token in enumerate(vocab):
        if not token or token in seen:
            problem = "is empty" if not token else f"repeats {token!r}"
            raise EncoderImportError(f"{path} line {index + 1} {problem}")
        seen.add(token)
    return vocab


def _tokenizer_settings(
    checkpoint_dir: Path, vocab: list[str], do_lower_case: bool | None
) -> TokenizerSettings:
    path = checkpoint_dir / TOKENIZER_CONFIG_FILE
    raw = read_json_object(path) if path.is_file() else {}
    if do_lower_case is None:
        if "do_lower_case" in raw:
            do_lower_case = bool(raw["do_lower_case"])
        else:
            do_lower_case = not any(
                token != token.lower()
                for token in vocab
                if not (token.startswith("[") and token.endswith("]"))
            )
    strip_accents = raw.get("strip_accents")
    return TokenizerSettings(
        do_lower_case=do_lower_case,
        strip_accents=do_lower_case if strip_accents is None else bool(strip_accents),
        tokenize_chinese_chars=bool(raw.get("tokenize_chinese_chars", True)),
        cls_token=_special_token(raw, "cls_token", "[CLS]"),
        sep_token=_special_token(raw, "sep_token", "[SEP]"),
        pad_token=_special_token(raw, "pad_token", "[PAD]"),
        unk_token=_special_token(raw, "unk_token", "[UNK]"),
    )


def _special_token(raw: Mapping[str, Any], key: str, default: str) -> str:
    value = raw.get(key, default)
    if isinstance(value, dict):  # serialised AddedToken
        value = value.get("content", default)
    return value if isinstance(value, str) and value else default


def _expected_shapes(cfg: BertConfig) -> dict[str, tuple[int, ...]]:
    h = cfg.hidden_size
    dims = {"h": h, "i": cfg.intermediate_size}
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (cfg.vocab_size, h),
        "embeddings.position_embeddings.weight": (cfg.max_position_embeddings, h),
        "embeddings.token_type_embeddings.weight": (cfg.type_vocab_size, h),
        "embeddings.LayerNorm.weight": (h,),
        "embeddings.LayerNorm.bias": (h,),
    }
    for n in range(cfg.num_layers):
        for _, _, hf_name, shape in LAYER_TENSORS:
            shapes[f"encoder.layer.{n}.{hf_name}"] = tuple(dims[d] for d in shape)
    return shapes


_POOLER_KEYS = ("pooler.dense.weight", "pooler.dense.bias")


def _aliases(key: str) -> tuple[str, ...]:
    # Checkpoints converted from the original TF BERT name LayerNorm parameters gamma/beta.
    if key.endswith("LayerNorm.weight"):
        return (key, key.removesuffix("weight") + "gamma")
    if key.endswith("LayerNorm.bias"):
        return (key, key.removesuffix("bias") + "beta")
    return (key,)


def _read_weights(path: Path, cfg: BertConfig) -> tuple[dict[str, np.ndarray], bool]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, TypeError, ValueError) as exc:
        raise EncoderImportError(f"cannot read {path} with safetensors.numpy: {exc}") from exc

    prefixes = [p for p in ("", "bert.") if f"{p}embeddings.word_embeddings.weight" in tensors]
    if not prefixes:
        raise EncoderImportError(
            f"{path} holds no BERT weights: expected 'embeddings.word_embeddings.weight' "
            "(optionally prefixed with 'bert.')"
        )
    prefix = prefixes[0]

    def find(key: str) -> np.ndarray | None:
        for alias in _aliases(key):
            if prefix + alias in tensors:
                return tensors[prefix + alias]
        return None

    expected = _expected_shapes(cfg)
    h = cfg.hidden_size
    pooler_present = [find(k) is not None for k in _POOLER_KEYS]
    pooler_from_checkpoint = all(pooler_present)
    if any(pooler_present):  # both, or report the one that is missing
        expected.update({"pooler.dense.weight": (h, h), "pooler.dense.bias": (h,)})

    missing = [prefix + k for k in expected if find(k) is None]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        shown = ", ".join(missing[:5]) + more
        raise EncoderImportError(
            f"{path} is missing {len(missing)} weight tensor(s) that config.json implies: {shown}"
        )
    weights: dict[str, np.ndarray] = {}
    for key, shape in expected.items():
        array = find(key)
        assert array is not None  # checked above
        if tuple(array.shape) != shape:
            raise EncoderImportError(
                f"{path}: tensor {prefix + key} has shape {tuple(array.shape)}, but config.json "
                f"implies {shape}"
            )
        if not np.issubdtype(array.dtype, np.floating):
            raise EncoderImportError(f"{path}: tensor {prefix + key} has dtype {array.dtype}")
        weights[key] = np.ascontiguousarray(array, dtype=np.float32)
    if not pooler_from_checkpoint:
        weights["pooler.dense.weight"] = np.eye(h, dtype=np.float32)
        weights["pooler.dense.bias"] = np.zeros((h,), dtype=np.float32)
    return weights, pooler_from_checkpoint
