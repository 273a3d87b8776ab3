"""The encoder directory: its layout, and :class:`EncoderInfo` read from its ``encoder.json``."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.encoder.base import EncoderImportError
from trainer.encoder.checkpoint import VOCAB_FILE, read_json_object
from trainer.encoder.precision import PrecisionChoice

ENCODER_INFO_FILE = "encoder.json"
PREPROCESSOR_SUBDIR = "preprocessor"
ENCODER_SUBDIR = "encoder"
ENCODER_FORMAT_VERSION = 1
BF16_ENCODER_SUBDIR = "encoder_bf16"
BF16_SERVING_SUBDIR = "encoder_bf16_serving"


@dataclass(frozen=True)
class EncoderInfo:
    """What an encoder directory holds; written as ``encoder.json`` beside the SavedModels.

    Attributes:
        name: Human-readable name, e.g. ``all-MiniLM-L6-v2``.
        path: The encoder directory (not stored in the JSON; set when loading).
        vocab_size: Rows of the word embedding matrix.
        hidden_size: Width of ``sequence_output`` and ``pooled_output``.
        num_layers: Transformer layers.
        num_heads: Attention heads per layer.
        max_seq_length: The preprocessor truncates to this many tokens, [CLS] and [SEP] included.
        do_lower_case: Whether the preprocessor lower-cases (and strips accents).
        source: Where the checkpoint came from (a path or a package requirement).
        source_sha256: sha256 of each checkpoint file that was read.
        pooler_from_checkpoint: False when the checkpoint had no pooler weights and the pooler was
            initialised to the identity (see ``POOLER_INIT_NOTE``).
        bfloat16_variant: True when ``encoder_bf16/`` holds the same encoder with its matrix
            multiplies in bfloat16 (variables, LayerNorm and softmax stay float32): mixed
            precision for training on CPUs with AMX or AVX512-BF16.
        serving_precision: How this CPU serves the encoder, as measured by
            :func:`trainer.encoder.tuning.tune_precision` (None: not measured yet, so float32).
            ``encoder_bf16_serving/`` holds the candidate with its kernels stored in bfloat16.
    """

    name: str
    path: Path
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    max_seq_length: int
    do_lower_case: bool
    source: str
    source_sha256: dict[str, str]
    pooler_from_checkpoint: bool = True
    bfloat16_variant: bool = False
    serving_precision: PrecisionChoice | None = None

    @property
    def preprocessor_path(self) -> Path:
        """The preprocessor SavedModel directory."""
        return self.path / PREPROCESSOR_SUBDIR

    @property
    def encoder_path(self) -> Path:
        """The encoder SavedModel directory."""
        return self.path / ENCODER_SUBDIR

    @property
    def bfloat16_encoder_path(self) -> Path | None:
        """The mixed-precision encoder SavedModel, if imported."""
        return self.path / BF16_ENCODER_SUBDIR if self.bfloat16_variant else None

    @property
    def bfloat16_serving_path(self) -> Path:
        """The encoder SavedModel with bfloat16 kernels, for serving (a precision candidate)."""
        return self.path / BF16_SERVING_SUBDIR

    @property
    def serving_weights(self) -> str:
        """``float32`` or ``bfloat16``: the measured choice, float32 until one is measured."""
        return self.serving_precision.weights if self.serving_precision else "float32"


def load_encoder_info(encoder_dir: Path) -> EncoderInfo:
    """Reads ``encoder.json`` of an encoder directory and checks the directory is complete.

    Args:
        encoder_dir: A directory written by :func:`import_hf_bert`.

    Returns:
        Its :class:`EncoderInfo`, with ``path`` set to ``encoder_dir``.

    Raises:
        EncoderImportError: The directory, a SavedModel, the vocabulary or ``encoder.json`` is
            missing, or ``encoder.json`` is malformed.
    """
    encoder_dir = Path(encoder_dir)
    if not encoder_dir.is_dir():
        raise EncoderImportError(f"encoder directory {encoder_dir} does not exist")
    required = (
        ENCODER_INFO_FILE,
        VOCAB_FILE,
        f"{PREPROCESSOR_SUBDIR}/saved_model.pb",
        f"{ENCODER_SUBDIR}/saved_model.pb",
    )
    missing = [rel for rel in required if not (encoder_dir / rel).is_file()]
    if missing:
        raise EncoderImportError(
            f"encoder directory {encoder_dir} is incomplete: missing {', '.join(missing)}"
        )
    info_path = encoder_dir / ENCODER_INFO_FILE
    data = read_json_object(info_path)
    version = data.get("format_version")
    if version != ENCODER_FORMAT_VERSION:
        raise EncoderImportError(
            f"{info_path} has format_version {version!r}; this bertbot reads "
            f"{ENCODER_FORMAT_VERSION}: re-import the encoder"
        )
    try:
        sha = data["source_sha256"]
        if not isinstance(sha, dict):
            raise TypeError("source_sha256 must be an object")
        return EncoderInfo(
            name=_typed(data, "name", str),
            path=encoder_dir,
            vocab_size=_typed(data, "vocab_size", int),
            hidden_size=_typed(data, "hidden_size", int),
            num_layers=_typed(data, "num_layers", int),
            num_heads=_typed(data, "num_heads", int),
            max_seq_length=_typed(data, "max_seq_length", int),
            do_lower_case=_typed(data, "do_lower_case", bool),
            source=_typed(data, "source", str),
            source_sha256={str(k): str(v) for k, v in sha.items()},
            pooler_from_checkpoint=_typed(data, "pooler_from_checkpoint", bool),
            bfloat16_variant=bool(data.get("bfloat16_variant", False)),
            serving_precision=(
                PrecisionChoice.from_json(data["serving_precision"])
                if data.get("serving_precision")
                else None
            ),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise EncoderImportError(f"{info_path} is malformed: {exc}") from exc


def record_precision(encoder_dir: Path, choice: PrecisionChoice) -> None:
    """Store a measured serving precision in ``encoder.json`` (replaced atomically)."""
    info_path = Path(encoder_dir) / ENCODER_INFO_FILE
    data = read_json_object(info_path)
    data["serving_precision"] = choice.to_json()
    handle, tmp = tempfile.mkstemp(prefix=".encoder.", suffix=".json", dir=info_path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, info_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _typed(data: Mapping[str, Any], key: str, kind: type) -> Any:
    value = data[key]
    if kind is int and isinstance(value, bool):
        raise TypeError(f"{key!r} must be {kind.__name__}, got {value!r}")
    if not isinstance(value, kind):
        raise TypeError(f"{key!r} must be {kind.__name__}, got {value!r}")
    return value
