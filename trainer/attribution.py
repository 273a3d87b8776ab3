"""The exported model's ``explain`` signature and the neighbour index of its training data.

Imports TensorFlow: :mod:`trainer.export` imports this module once training starts.
See :mod:`trainer.explain` for what an explanation is and how it is read.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trainer.tf_runtime import tf

logger = logging.getLogger(__name__)

EXPLAIN_SIGNATURE = "explain"
MAX_STEPS = 64  # the signature clips ``steps`` to this; settings allow at most 32
MIN_STEPS = 4  # what a token budget leaves the longest texts


def read_vocabulary(encoder_dir: Path) -> list[str] | None:
    """The word pieces of an imported encoder, by id (None when it has no vocab.txt)."""
    try:
        return (encoder_dir / "vocab.txt").read_text("utf-8").splitlines()
    except OSError:
        return None


def quadrature_tables(max_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [0, 1] for 1..max_steps points, row n-1 for n
    (zero-padded): the path integral of integrated gradients at a given cost.

    For the smooth paths of a classifier they are far more exact than the midpoint rule
    with as many steps, so the attributions add up to the change of probability (the
    completeness gap shrinks) without more model rows.
    """
    nodes = np.zeros((max_steps, max_steps), dtype=np.float32)
    weights = np.zeros((max_steps, max_steps), dtype=np.float32)
    for n in range(1, max_steps + 1):
        x, w = np.polynomial.legendre.leggauss(n)
        nodes[n - 1, :n] = (x + 1.0) / 2.0
        weights[n - 1, :n] = w / 2.0
    return nodes, weights


def explain_function(
    model: Any, *, vocabulary: Sequence[str], inverse_temperature: Any, pooling: str
) -> Any | None:
    """The ``explain`` signature of a built classifier; None when its encoder cannot run one.

    ``explain(text [1], steps [], token_budget [])`` returns, for the first text: ``steps``
    (those used: fewer for a text whose (steps + 2) x pieces exceed ``token_budget``, at
    least 4; a budget of 0 caps nothing); ``tokens`` and
    ``token_ids`` [pieces] (with [CLS], [SEP]); ``attributions`` [pieces]: integrated
    gradients of the predicted label's calibrated log-odds (``log p / (1 - p)``), summed over
    the hidden dimension; ``probabilities`` and ``baseline_probabilities`` [labels];
    ``log_odds`` and ``baseline_log_odds``; ``embedding`` [hidden] (what the ``embed``
    signature returns); ``num_tokens`` (before truncation).

    Log-odds rather than the probability: a confident model's probability jumps from ~0 to
    ~1 over a short stretch of the path, which a few interpolation steps miss (gaps of 0.3
    and more at 16 steps on the tiny test model); log-odds change smoothly along it.

    The baseline keeps [CLS] and [SEP] and puts the [PAD] embedding at every text piece;
    the ``steps`` Gauss-Legendre points between it and the text (:func:`quadrature_tables`),
    the text and the baseline go through the encoder as one batch.
    """
    encoder = model.get_layer("encoder").resolved_object
    if not hasattr(encoder, "call_with_embeddings") or not hasattr(encoder, "word_embeddings"):
        return None
    ids = {token: i for i, token in enumerate(vocabulary)}
    if not {"[CLS]", "[SEP]", "[PAD]"} <= set(ids):
        logger.warning("the vocabulary has no [CLS]/[SEP]/[PAD]: no explain signature")
        return None
    cls_id, sep_id, pad_id = ids["[CLS]"], ids["[SEP]"], ids["[PAD]"]
    preprocessor = model.get_layer("preprocessor").resolved_object
    mean_pool = model.get_layer("mean_pool") if pooling == "mean" else None
    head = model.get_layer("classifier")
    vocabulary_table = tf.constant(list(vocabulary))
    nodes, weights = quadrature_tables(MAX_STEPS)
    node_table, weight_table = tf.constant(nodes), tf.constant(weights)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="text"),
            tf.TensorSpec([], tf.int32, name="steps"),
            tf.TensorSpec([], tf.int32, name="token_budget"),
        ]
    )
    def explain(text: Any, steps: Any, token_budget: Any) -> dict[str, Any]:
        text = text[:1]
        inputs = preprocessor(text)
        word_ids, mask, type_ids = (
            inputs["input_word_ids"],
            inputs["input_mask"],
            inputs["input_type_ids"],
        )
        embedded = encoder.word_embeddings(word_ids)  # [1, len, hidden]
        padding = encoder.word_embeddings(tf.fill(tf.shape(word_ids), pad_id))
        special = tf.logical_or(tf.equal(word_ids, cls_id), tf.equal(word_ids, sep_id))
        baseline = tf.where(tf.expand_dims(special, -1), embedded, padding)
        steps = tf.clip_by_value(steps, 1, MAX_STEPS)
        # The model reads (steps + 2) rows of the text's pieces: a long text gets fewer steps
        # (not fewer than MIN_STEPS), so one explanation costs at most about token_budget.
        length = tf.shape(word_ids)[1]
        affordable = tf.where(token_budget > 0, token_budget // length - 2, MAX_STEPS)
        steps = tf.maximum(tf.minimum(steps, affordable), tf.minimum(steps, MIN_STEPS))
        alphas = tf.gather(node_table, steps - 1)[:steps]
        weights = tf.gather(weight_table, steps - 1)[:steps]
        alphas = tf.concat([alphas, [1.0, 0.0]], axis=0)  # then the text, then the baseline
        rows = steps + 2
        path = baseline + tf.reshape(alphas, [-1, 1, 1]) * (embedded - baseline)
        path_mask = tf.tile(mask, [rows, 1])
        path_types = tf.tile(type_ids, [rows, 1])
        with tf.GradientTape() as tape:
            tape.watch(path)
            outputs = encoder.call_with_embeddings(path, path_mask, path_types)
            if mean_pool is not None:
                pooled = mean_pool([outputs["sequence_output"], path_mask])
            else:
                pooled = outputs["pooled_output"]
            logits = head(pooled) * inverse_temperature  # calibrated
            target = tf.stop_gradient(tf.argmax(logits[steps], output_type=tf.int32))
            # The predicted label's log-odds: log p / (1 - p) = z_target - logsumexp(z_other).
            others = tf.where(
                tf.equal(tf.range(tf.shape(logits)[1]), target), tf.constant(-1e9), logits
            )
            log_odds = logits[:, target] - tf.reduce_logsumexp(others, axis=-1)
            score = tf.reduce_sum(log_odds)
        probabilities = tf.nn.softmax(logits, axis=-1)
        gradients = tape.gradient(score, path)[:steps]
        path_integral = tf.reduce_sum(tf.reshape(weights, [-1, 1, 1]) * gradients, axis=0)
        attributions = tf.reduce_sum(path_integral * (embedded - baseline)[0], axis=-1)
        pieces = preprocessor.tokenize(text)
        while isinstance(pieces, tf.RaggedTensor) and pieces.ragged_rank > 1:
            pieces = pieces.merge_dims(-2, -1)
        return {
            "tokens": tf.gather(vocabulary_table, word_ids[0]),
            "token_ids": word_ids[0],
            "attributions": attributions,
            "probabilities": probabilities[steps],
            "baseline_probabilities": probabilities[steps + 1],
            "log_odds": log_odds[steps],
            "baseline_log_odds": log_odds[steps + 1],
            "embedding": pooled[steps],
            "num_tokens": tf.cast(pieces.row_lengths()[0], tf.int32) + 2,
            "steps": steps,
        }

    return explain


def embed_texts(embedding_model: Any, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Pooled embeddings [n, hidden] of texts, batched by length, in input order."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)], reduce_retracing=True)
    def embed(batch: Any) -> Any:
        return embedding_model(batch, training=False)

    order = np.argsort([len(text) for text in texts], kind="stable")
    out: np.ndarray | None = None
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        values = embed(tf.constant([texts[i] for i in index])).numpy().astype(np.float32)
        if out is None:
            out = np.zeros((len(texts), values.shape[1]), dtype=np.float32)
        out[index] = values
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)
