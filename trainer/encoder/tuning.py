"""Measuring the serving candidates of an imported encoder on this CPU (``bertbot encoder
import`` and ``bertbot encoder tune-precision``), and recording the choice in ``encoder.json``.

Each candidate is the serving path without a trained head: the in-graph tokenizer, the encoder
(float32 or bfloat16 kernels; its body compiled with XLA or not), masked mean pooling, and a
fixed head that scores a text by its cosine similarity to three anchor sentences (temperature
0.05, as the sentence-transformers checkpoints are trained), so the probabilities are as sharp
as a fine-tuned classifier's and a precision that moves them shows. Texts are a fixed set of
chat-like messages of 1 to ~90 word pieces. Candidates are timed in interleaved rounds (each
round runs every candidate once, in a rotating order), so load from other processes spreads
over all of them instead of landing on one.

Imports TensorFlow: imported by the commands that tune, never at start-up.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from trainer.encoder.base import EncoderImportError, ProgressFn, reporter
from trainer.encoder.importer import cpu_has_fast_bfloat16, cpu_model_name
from trainer.encoder.info import EncoderInfo, load_encoder_info, record_precision
from trainer.encoder.precision import (
    CANDIDATES,
    REFERENCE,
    Candidate,
    CandidateFigures,
    PrecisionChoice,
    PrecisionRule,
    choose_precision,
)
from trainer.tf_runtime import tf

logger = logging.getLogger(__name__)

ANCHORS = (
    "thank you so much, this is wonderful news",
    "this is terrible, I am really angry about it",
    "WIN a free prize now! text CLAIM to 80082, txt stop to end",
)
ANCHOR_TEMPERATURE = 0.05
BATCH = 32

_PIECES = (
    "ok",
    "see you at the standup in five minutes",
    "can someone review my pull request before lunch?",
    "the deploy failed again, rolling back now",
    "Congratulations! You have been selected to receive a $1000 gift card. Call 0800 now!",
    "@airline my flight was cancelled and nobody at the desk can help, 3 hours in line",
    "lol that meeting could have been an email",
    "FREE entry in a weekly competition to win tickets, text WIN to 87121",
    "thanks for the quick fix, works great now :)",
    "I'm not sure the numbers in the Q3 report add up, can we double check?",
    "Reminder: the office is closed on Monday for the holiday.",
    "worst customer service ever. never flying with you again #fail",
    "Has anyone seen the charger that was on the table in room 4?",
    "Urgent! your account will be suspended, verify your details at http://bit.ly/x",
    "great talk today, the slides are in the shared drive",
    "hmm",
)


def tuning_texts() -> list[str]:
    """64 messages, from one word to several sentences (the same every time)."""
    texts = list(_PIECES)
    for n in range(len(texts), 64):
        count = 1 + n % 4
        texts.append(" ".join(_PIECES[(n * 7 + k * 5) % len(_PIECES)] for k in range(count)))
    return texts


def _bucket(size: Any, step: int) -> Any:
    return (size + step - 1) // step * step


def _power_of_two(size: Any) -> Any:
    return tf.cast(
        2 ** tf.math.ceil(tf.math.log(tf.cast(size, tf.float32)) / tf.math.log(2.0)), tf.int32
    )


class _Served:
    """One candidate's predict function: strings -> probabilities (as a NumPy array)."""

    def __init__(
        self, info: EncoderInfo, candidate: Candidate, head: Any, preprocessor: Any
    ) -> None:
        path = info.encoder_path if candidate.weights == "float32" else info.bfloat16_serving_path
        if not (path / "saved_model.pb").is_file():
            raise EncoderImportError(f"{path.name}/ is missing: re-import the encoder")
        self.encoder = tf.saved_model.load(str(path))
        encoder = self.encoder

        def body(word_ids: Any, mask: Any, type_ids: Any) -> Any:
            inputs = {"input_word_ids": word_ids, "input_mask": mask, "input_type_ids": type_ids}
            sequence = encoder(inputs, training=False)["sequence_output"]
            weights = tf.cast(mask, sequence.dtype)[:, :, tf.newaxis]
            pooled = tf.reduce_sum(sequence * weights, 1) / tf.maximum(
                tf.reduce_sum(weights, 1), 1.0
            )
            logits = tf.matmul(tf.math.l2_normalize(pooled, -1), head) / ANCHOR_TEMPERATURE
            return tf.nn.softmax(logits, axis=-1)

        compiled = tf.function(body, jit_compile=True) if candidate.jit else None

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def predict(texts: Any) -> Any:
            packed = preprocessor(texts)
            word_ids, mask, type_ids = (
                packed["input_word_ids"],
                packed["input_mask"],
                packed["input_type_ids"],
            )
            if compiled is None:
                return body(word_ids, mask, type_ids)
            # XLA compiles once per shape: pad to a few shapes (length to a multiple of 16,
            # batch to a power of two) so traffic does not recompile for every new length.
            size, length = tf.shape(word_ids)[0], tf.shape(word_ids)[1]
            padding = [[0, _power_of_two(size) - size], [0, _bucket(length, 16) - length]]
            return compiled(
                tf.pad(word_ids, padding), tf.pad(mask, padding), tf.pad(type_ids, padding)
            )[:size]

        self._predict = predict

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        return self._predict(tf.constant(list(texts))).numpy()


def _anchor_head(info: EncoderInfo, preprocessor: Any) -> Any:
    encoder = tf.saved_model.load(str(info.encoder_path))
    packed = preprocessor(tf.constant(list(ANCHORS)))
    sequence = encoder(packed, training=False)["sequence_output"]
    weights = tf.cast(packed["input_mask"], tf.float32)[:, :, tf.newaxis]
    pooled = tf.reduce_sum(sequence * weights, 1) / tf.reduce_sum(weights, 1)
    return tf.constant(tf.transpose(tf.math.l2_normalize(pooled, -1)).numpy())


def _batched(predict: Callable[[Sequence[str]], np.ndarray], ordered: list[str]) -> np.ndarray:
    return np.concatenate(
        [predict(ordered[start : start + BATCH]) for start in range(0, len(ordered), BATCH)]
    )


def measure_candidates(
    info: EncoderInfo,
    candidates: Sequence[Candidate] = CANDIDATES,
    *,
    rounds: int = 3,
    texts: Sequence[str] | None = None,
    progress: ProgressFn | None = None,
) -> list[CandidateFigures]:
    """Time each candidate (one text per call, and 32 per call) and compare its probabilities
    with float32's. A candidate that fails to build or run gets its error recorded."""
    report = reporter(progress)
    texts = list(texts if texts is not None else tuning_texts())
    ordered = sorted(texts, key=len)  # batches of similar length, as serving cuts them
    singles = texts[::4]
    preprocessor = tf.saved_model.load(str(info.preprocessor_path))
    head = _anchor_head(info, preprocessor)
    served: dict[str, _Served] = {}
    figures: dict[str, CandidateFigures] = {}
    probabilities: dict[str, np.ndarray] = {}
    for candidate in candidates:
        base = CandidateFigures(candidate.name, candidate.weights, candidate.jit)
        report(f"Preparing the {candidate.name} candidate")
        try:
            started = time.perf_counter()
            predict = _Served(info, candidate, head, preprocessor)
            probabilities[candidate.name] = _batched(predict, ordered)
            for text in singles:
                predict([text])
            warmup = time.perf_counter() - started
        except Exception as exc:  # noqa: BLE001 - XLA and TensorFlow raise many types
            message = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else repr(exc)
            logger.warning("precision candidate %s failed: %s", candidate.name, message)
            figures[candidate.name] = replace(base, error=message)
            continue
        served[candidate.name] = predict
        figures[candidate.name] = replace(base, warmup_s=round(warmup, 2))

    latencies: dict[str, list[float]] = {name: [] for name in served}
    rates: dict[str, list[float]] = {name: [] for name in served}
    names = list(served)
    for number in range(rounds):
        report(f"Timing round {number + 1} of {rounds}")
        shift = number % max(1, len(names))
        for name in names[shift:] + names[:shift]:
            predict = served[name]
            for text in singles:
                started = time.perf_counter()
                predict([text])
                latencies[name].append((time.perf_counter() - started) * 1000.0)
            started = time.perf_counter()
            _batched(predict, ordered)
            rates[name].append(len(ordered) / (time.perf_counter() - started))

    reference = probabilities.get(REFERENCE)
    for name in names:
        probs = probabilities[name]
        agreement = diff = None
        if reference is not None:
            diff = round(float(np.abs(probs - reference).max()), 5)
            agreement = round(float((probs.argmax(1) == reference.argmax(1)).mean()), 4)
        figures[name] = replace(
            figures[name],
            single_p50_ms=round(statistics.median(latencies[name]), 3),
            batch32_per_s=round(statistics.median(rates[name]), 1),
            max_abs_diff=diff,
            argmax_agreement=agreement,
        )
    return [figures[c.name] for c in candidates]


def intra_op_threads() -> int:
    """TensorFlow's intra-op threads in this process (its default is the CPU's cores)."""
    return tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count() or 1


XLA_CANDIDATES = (
    Candidate("float32+xla", "float32", jit=True),
    Candidate("bfloat16+xla", "bfloat16", jit=True),
)
"""The encoder body compiled with XLA (lengths padded to multiples of 16, batches to powers of
two, so shapes recur). Measured by bench/inference.py, not served: on the AMD EPYC measured it
won single texts but not batches (bench/results/inference-notes.md), and each new shape would
cost a compilation of seconds in a serving process."""


def decide(
    figures: Sequence[CandidateFigures],
    candidates: Sequence[Candidate] = CANDIDATES,
    rule: PrecisionRule | None = None,
) -> PrecisionChoice:
    """The choice among ``candidates`` by :func:`choose_precision`, with this CPU's details.

    Raises:
        EncoderImportError: float32 was not measured.
    """
    rule = rule or PrecisionRule()
    names = {c.name for c in candidates}
    considered = [f for f in figures if f.name in names]
    try:
        verdict = choose_precision(considered, rule)
    except ValueError as exc:
        raise EncoderImportError(str(exc)) from exc
    chosen = next(c for c in candidates if c.name == verdict.choice)
    return PrecisionChoice(
        choice=chosen.name,
        weights=chosen.weights,
        reason=verdict.reason,
        candidates=tuple(considered),
        threads=intra_op_threads(),
        cpu=cpu_model_name(),
        cpu_bfloat16=cpu_has_fast_bfloat16(),
        texts=len(tuning_texts()),
        measured_at=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        rule=rule,
    )


def tune_precision(
    encoder_dir: Path,
    *,
    rounds: int = 3,
    rule: PrecisionRule | None = None,
    progress: ProgressFn | None = None,
) -> PrecisionChoice:
    """Measure the candidates on this CPU, choose by :func:`choose_precision` and record the
    choice (with every candidate's figures) in the encoder's ``encoder.json``.

    Models exported afterwards serve with the chosen encoder; models exported before keep
    the one they were exported with until they are exported again (the next retrain).

    Raises:
        EncoderImportError: The encoder directory is incomplete, or float32 itself failed.
    """
    info = load_encoder_info(encoder_dir)
    figures = measure_candidates(info, CANDIDATES, rounds=rounds, progress=progress)
    choice = decide(figures, CANDIDATES, rule)
    record_precision(encoder_dir, choice)
    return choice
