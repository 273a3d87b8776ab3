"""Import orchestration: a checkpoint in, a complete encoder directory out (or nothing).

TensorFlow is imported only once the SavedModels are built, so importing this module stays cheap.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from trainer.encoder.base import EncoderImportError, ProgressFn, reporter
from trainer.encoder.checkpoint import POOLER_INIT_NOTE, VOCAB_FILE, Checkpoint, read_checkpoint
from trainer.encoder.info import (
    BF16_ENCODER_SUBDIR,
    BF16_SERVING_SUBDIR,
    ENCODER_FORMAT_VERSION,
    ENCODER_INFO_FILE,
    ENCODER_SUBDIR,
    PREPROCESSOR_SUBDIR,
    EncoderInfo,
)

logger = logging.getLogger(__name__)


def cpu_has_fast_bfloat16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True where the CPU's flags show bfloat16 in hardware (AMX or AVX512-BF16).

    Decides only whether the mixed-precision *training* encoder is built. Serving precision is
    measured instead (:func:`trainer.encoder.tuning.tune_precision`): flags say what the CPU
    can do, not whether TensorFlow's kernels make it faster.
    """
    try:
        flags = cpuinfo.read_text()
    except OSError:
        return False
    return " amx_bf16" in flags or " avx512_bf16" in flags


def cpu_model_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name as the kernel reports it (``unknown`` where it cannot tell)."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def import_hf_bert(
    checkpoint_dir: Path,
    out_dir: Path,
    *,
    name: str,
    max_seq_length: int = 128,
    progress: ProgressFn | None = None,
    do_lower_case: bool | None = None,
    source: str | None = None,
    overwrite: bool = False,
    bfloat16_variant: bool | None = None,
) -> EncoderInfo:
    """Converts a Hugging Face BERT checkpoint into preprocessor and encoder SavedModels.

    The result is built in a temporary directory next to ``out_dir`` and renamed into place, so
    ``out_dir`` is either complete or absent.

    Args:
        checkpoint_dir: Directory with ``config.json``, ``model.safetensors`` and ``vocab.txt``
            (and optionally ``tokenizer_config.json``).
        out_dir: Encoder directory to create.
        name: Name recorded in ``encoder.json``.
        max_seq_length: Longest token sequence the preprocessor emits, [CLS] and [SEP] included.
        progress: Called with a short message at each step.
        do_lower_case: Overrides the tokenizer's lower-casing. By default it comes from
            ``tokenizer_config.json``, or, without one, from the vocabulary (lower-case when no
            ordinary token has an upper-case letter).
        source: Recorded as :attr:`EncoderInfo.source`; defaults to the checkpoint's path.
        overwrite: Replace an existing ``out_dir`` instead of refusing.
        bfloat16_variant: Also write ``encoder_bf16/``, the mixed-precision training encoder
            (see :attr:`EncoderInfo.bfloat16_variant`); None: only where this CPU's flags show
            bfloat16 in hardware. ``encoder_bf16_serving/`` (bfloat16 kernels, a serving
            candidate) is always written, so the precision can be measured on any CPU.

    Returns:
        The :class:`EncoderInfo` written to ``out_dir/encoder.json``.

    Raises:
        EncoderImportError: A file is missing or unreadable, the config is not a BERT config,
            a weight tensor is missing or has the wrong shape, or ``out_dir`` already exists.
    """
    checkpoint_dir = Path(checkpoint_dir)
    out_dir = Path(out_dir)
    report = reporter(progress)
    if not name.strip():
        raise EncoderImportError("the encoder name must not be empty")
    if out_dir.exists() and not overwrite:
        raise EncoderImportError(f"{out_dir} already exists; remove it or pass overwrite=True")

    if bfloat16_variant is None:
        bfloat16_variant = cpu_has_fast_bfloat16()
    report(f"Reading the checkpoint in {checkpoint_dir}")
    checkpoint = read_checkpoint(checkpoint_dir, do_lower_case=do_lower_case)
    cfg = checkpoint.config
    if not 2 < max_seq_length <= cfg.max_position_embeddings:
        raise EncoderImportError(
            f"max_seq_length must be between 3 and max_position_embeddings "
            f"({cfg.max_position_embeddings}), got {max_seq_length}"
        )
    if not checkpoint.pooler_from_checkpoint:
        logger.warning("%s: %s", checkpoint_dir, POOLER_INIT_NOTE)

    info = EncoderInfo(
        name=name,
        path=out_dir,
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.hidden_size,
        num_layers=cfg.num_layers,
        num_heads=cfg.num_heads,
        max_seq_length=max_seq_length,
        do_lower_case=checkpoint.tokenizer.do_lower_case,
        source=source if source is not None else str(checkpoint_dir.resolve()),
        source_sha256=checkpoint.sha256,
        pooler_from_checkpoint=checkpoint.pooler_from_checkpoint,
        bfloat16_variant=bfloat16_variant,
    )

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    tmp_dir.chmod(0o755)  # mkdtemp makes it private; the result is an ordinary directory
    try:
        # TensorFlow is imported here, not at start-up.
        from trainer.encoder.bert import save_encoder
        from trainer.encoder.preprocessor import save_preprocessor

        vocab_path = tmp_dir / VOCAB_FILE
        vocab_path.write_text("".join(token + "\n" for token in checkpoint.vocab), encoding="utf-8")
        report("Building the preprocessor SavedModel")
        save_preprocessor(
            tmp_dir / PREPROCESSOR_SUBDIR,
            vocab_path=vocab_path,
            vocab=checkpoint.vocab,
            settings=checkpoint.tokenizer,
            max_seq_length=max_seq_length,
        )
        report("Building the encoder SavedModel")
        save_encoder(tmp_dir / ENCODER_SUBDIR, cfg, checkpoint.weights)
        if bfloat16_variant:
            report("Building the mixed-precision (bfloat16) encoder for training")
            save_encoder(tmp_dir / BF16_ENCODER_SUBDIR, cfg, checkpoint.weights, "bfloat16")
        report("Building the bfloat16 encoder (a serving candidate)")
        save_encoder(tmp_dir / BF16_SERVING_SUBDIR, cfg, checkpoint.weights, "bfloat16_weights")
        (tmp_dir / ENCODER_INFO_FILE).write_text(
            json.dumps(_info_to_json(info, checkpoint), indent=2, sort_keys=True) + "\n",
            encoding="utf-8",
        )
        _move_into_place(tmp_dir, out_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    report(f"Encoder {name!r} written to {out_dir}")
    return info


def _info_to_json(info: EncoderInfo, checkpoint: Checkpoint) -> dict[str, Any]:
    from trainer.encoder.preprocessor import MAX_CHARS_PER_WORD
    from trainer.tf_runtime import tf, tf_text

    cfg, tok = checkpoint.config, checkpoint.tokenizer
    data: dict[str, Any] = {
        "format_version": ENCODER_FORMAT_VERSION,
        "name": info.name,
        "vocab_size": info.vocab_size,
        "hidden_size": info.hidden_size,
        "num_layers": info.num_layers,
        "num_heads": info.num_heads,
        "max_seq_length": info.max_seq_length,
        "do_lower_case": info.do_lower_case,
        "source": info.source,
        "source_sha256": info.source_sha256,
        "pooler_from_checkpoint": info.pooler_from_checkpoint,
        "bfloat16_variant": info.bfloat16_variant,
        "tokenizer": {
            "strip_accents": tok.strip_accents,
            "tokenize_chinese_chars": tok.tokenize_chinese_chars,
            "cls_token": tok.cls_token,
            "sep_token": tok.sep_token,
            "pad_token": tok.pad_token,
            "unk_token": tok.unk_token,
            "max_chars_per_word": MAX_CHARS_PER_WORD,
            "vocab_tokens": len(checkpoint.vocab),
        },
        "architecture": {
            "intermediate_size": cfg.intermediate_size,
            "hidden_act": cfg.hidden_act,
            "hidden_dropout_prob": cfg.hidden_dropout_prob,
            "attention_probs_dropout_prob": cfg.attention_probs_dropout_prob,
            "max_position_embeddings": cfg.max_position_embeddings,
            "type_vocab_size": cfg.type_vocab_size,
            "layer_norm_eps": cfg.layer_norm_eps,
        },
        "created_with": {"tensorflow": tf.__version__, "tensorflow_text": tf_text.__version__},
    }
    if not info.pooler_from_checkpoint:
        data["pooler_note"] = POOLER_INIT_NOTE
    return data


def _move_into_place(tmp_dir: Path, out_dir: Path) -> None:
    if not out_dir.exists():
        os.rename(tmp_dir, out_dir)
        return
    old = out_dir.with_name(f".{out_dir.name}.{uuid.uuid4().hex}.old")
    os.rename(out_dir, old)
    os.rename(tmp_dir, out_dir)
    shutil.rmtree(old, ignore_errors=True)
